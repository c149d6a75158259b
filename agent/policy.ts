/**
 * The agent's local policy: the premises have the last word on which internal host:ports may
 * ever be dialled, whatever the relay asks. Parsed from `UNDERPASS_ALLOW`, e.g.
 * `10.0.0.0/8:21,30000-30010;ftp.corp:21;[fd00::/8]:22;192.168.1.5:*;*.corp.example:21`.
 *
 * Grammar: entries separated by `;` (blank entries ignored), each `<host>:<ports>` where
 * - host is an IPv4 address or CIDR (`10.0.0.0/8`; a bare address is a /32; a base that is not
 *   on the prefix boundary, `10.0.0.1/8`, stands for its network), an IPv6 address or CIDR in
 *   brackets (`[fd00::/8]`, a bare address is a /128), a host name (valid by the one rule of
 *   shared/net/host.ts, matched case-insensitively and exactly) or `*.` + a domain (matches
 *   every name below the domain, not the domain itself);
 * - ports is `*` or a comma list of ports and inclusive ranges (`21,30000-30010`).
 *
 * IPv4-mapped IPv6 addresses (`::ffff:10.0.0.1`) are IPv4 addresses everywhere here, so an
 * IPv4 entry covers them and an IPv6 entry does not. Networks are matched by `net.BlockList`.
 */
import { lookup as dnsLookup } from "node:dns/promises";
import { BlockList } from "node:net";
import { HostUnreachableError, NotAllowedError, ValidationError, withoutStack } from "../shared/errors.js";
import { normalizeHostName, unbracket } from "../shared/net/host.js";
import {
  formatIp,
  type IpAddress,
  ipBits,
  networkOf,
  parseIp as parseIpLiteral,
  socketFamily,
  unmapIp,
  withoutZone,
} from "../shared/net/ip.js";
import { formatPortRange, type PortRange, parsePortRange, rangeContains } from "../shared/net/port-range.js";

export { formatIp, type IpAddress };

/** What an entry matches: an IP network, or a host name (`*.` + domain when `wildcard`). */
export type PolicyTarget =
  | { readonly kind: "cidr"; readonly network: IpAddress; readonly prefix: number }
  | { readonly kind: "name"; readonly name: string; readonly wildcard: boolean };

/** One parsed policy entry; `ports` is `[1-65535]` for `*`. */
export type PolicyEntry = PolicyTarget & { readonly ports: readonly PortRange[] };

/** What the policy says about one host:port. A denial carries the error the dialer reports. */
export type PolicyDecision =
  | {
      readonly allowed: true /** Host to dial: the allowed name, or the exact allowed IP. */;
      readonly dialHost: string;
    }
  | {
      readonly allowed: false;
      readonly reason: string;
      /** NotAllowedError for a refusal, HostUnreachableError when the name does not resolve. */
      readonly error: NotAllowedError | HostUnreachableError;
    };

/** Resolves every address of a name, shaped like `dns.promises.lookup(name, { all: true })`. */
export type LookupFunction = (
  hostname: string,
  options: { all: true },
) => Promise<ReadonlyArray<{ readonly address: string; readonly family: number }>>;

export interface Policy {
  /** True for `allowAll()`: UNDERPASS_ALLOW is unset and the relay has the only say. */
  readonly allowsAll: boolean;
  readonly entries: readonly PolicyEntry[];
  /** Decision without DNS: IP literals against the CIDR entries, names against the name entries. */
  check(host: string, port: number): PolicyDecision;
  /**
   * Decision for a dial: a name matching a name entry is allowed as is; any other name is
   * resolved and allowed only through an address inside an allowed CIDR, which becomes
   * `dialHost` so that DNS cannot change between this check and the dial.
   */
  authorize(host: string, port: number, lookup?: LookupFunction): Promise<PolicyDecision>;
}

const ALL_PORTS: readonly PortRange[] = [{ start: 1, end: 65535 }];
/** Most addresses named in a denial, to keep log lines short. */
const MAX_ADDRESSES_IN_REASON = 4;

// ---- addresses and names -------------------------------------------------------------------

/**
 * An IP literal as the policy reads a host: brackets optional, a zone id ignored (it names an
 * interface, not other address bits), an IPv4-mapped IPv6 address as the IPv4 address it maps.
 */
export function parseIp(text: string): IpAddress | undefined {
  const ip = parseIpLiteral(unbracket(text));
  return ip === undefined ? undefined : unmapIp(withoutZone(ip));
}

function nameMatches(entry: Extract<PolicyTarget, { kind: "name" }>, name: string): boolean {
  return entry.wildcard ? name.endsWith(`.${entry.name}`) : name === entry.name;
}

// ---- parsing ------------------------------------------------------------------------------

function parsePorts(text: string): readonly PortRange[] | string {
  const trimmed = text.trim();
  if (trimmed === "") return 'no ports after ":" (use "*" for every port)';
  if (trimmed === "*") return ALL_PORTS;
  const ranges: PortRange[] = [];
  for (const item of trimmed.split(",")) {
    if (item.trim() === "*") return '"*" must stand alone in the port list';
    const range = parsePortRange(item);
    if (typeof range === "string") return item.trim() === "" ? "empty item in the port list" : range;
    ranges.push(range);
  }
  return ranges;
}

function parseCidr(text: string, family: 4 | 6): { network: IpAddress; prefix: number } | string {
  const slash = text.indexOf("/");
  const addressText = slash < 0 ? text : text.slice(0, slash);
  const literal = parseIpLiteral(addressText);
  if (literal?.family !== family) return `"${addressText}" is not a valid IPv${family} address`;
  if (literal.zone !== undefined) return "a CIDR cannot carry an IPv6 zone id";
  let prefix: number = ipBits(family);
  if (slash >= 0) {
    const prefixText = text.slice(slash + 1);
    if (!/^\d{1,3}$/.test(prefixText) || Number(prefixText) > prefix) {
      return `prefix "/${prefixText}" is not in 0-${prefix} for IPv${family}`;
    }
    prefix = Number(prefixText);
  }
  // An IPv4-mapped network (inside ::ffff:0:0/96) is the IPv4 network it maps.
  const ip = unmapIp(literal);
  if (ip !== literal) {
    if (prefix < 96) return "an IPv4-mapped network needs a prefix of at least /96";
    prefix -= 96;
  }
  return { network: networkOf(ip, prefix), prefix };
}

function parseHost(text: string): PolicyTarget | string {
  if (text.startsWith("[")) {
    const cidr = parseCidr(text.slice(1, -1), 6);
    return typeof cidr === "string" ? cidr : { kind: "cidr", ...cidr };
  }
  if (text === "" || text === "*")
    return `"${text}" is not a host (use 0.0.0.0/0 or [::/0] for every address)`;
  if (text.includes(":")) return "an IPv6 address must be in brackets, e.g. [fd00::/8]:22";
  if (/^[\d./]+$/.test(text)) {
    const cidr = parseCidr(text, 4);
    return typeof cidr === "string" ? cidr : { kind: "cidr", ...cidr };
  }
  if (text.includes("/")) return `"${text}" is neither an IPv4 CIDR nor a host name`;
  const wildcard = text.startsWith("*.");
  const name = normalizeHostName(wildcard ? text.slice(2) : text);
  if (name === undefined) return `"${text}" is not a valid host name`;
  return { kind: "name", name, wildcard };
}

/** Split `<host>:<ports>`; the ports follow the last ":", or the ":" right after an IPv6 "]". */
function splitEntry(text: string): { host: string; ports: string } | string {
  const missing = 'missing ":<ports>" (use ":*" for every port)';
  if (text.startsWith("[")) {
    const close = text.indexOf("]");
    if (close < 0) return 'missing "]" after the IPv6 address';
    const rest = text.slice(close + 1).trim();
    if (!rest.startsWith(":")) return rest === "" ? missing : `unexpected "${rest}" after "]"`;
    return { host: text.slice(0, close + 1), ports: rest.slice(1) };
  }
  const colon = text.lastIndexOf(":");
  if (colon < 0) return missing;
  return { host: text.slice(0, colon).trim(), ports: text.slice(colon + 1) };
}

function parseEntry(text: string): PolicyEntry | string {
  const parts = splitEntry(text);
  if (typeof parts === "string") return parts;
  const host = parseHost(parts.host);
  if (typeof host === "string") return host;
  const ports = parsePorts(parts.ports);
  if (typeof ports === "string") return ports;
  return { ...host, ports };
}

/** Parse `UNDERPASS_ALLOW`; throws a ValidationError listing every bad entry and why. */
export function parsePolicy(text: string): Policy {
  const entries: PolicyEntry[] = [];
  const issues: { path: string; message: string }[] = [];
  text.split(";").forEach((raw, index) => {
    const entryText = raw.trim();
    if (entryText === "") return;
    const entry = parseEntry(entryText);
    if (typeof entry === "string")
      issues.push({ path: `UNDERPASS_ALLOW[${index}]`, message: `"${entryText}": ${entry}` });
    else entries.push(entry);
  });
  if (issues.length === 0 && entries.length === 0) {
    issues.push({ path: "UNDERPASS_ALLOW", message: "no entries; unset it to let the relay decide alone" });
  }
  if (issues.length > 0) {
    throw new ValidationError(`invalid local policy: ${issues.map((i) => i.message).join("; ")}`, issues);
  }
  return new EntryPolicy(entries);
}

// ---- decisions ----------------------------------------------------------------------------

function allow(dialHost: string): PolicyDecision {
  return { allowed: true, dialHost };
}

/** A refusal is an answer, not a fault: its error carries no stack (shared/errors.ts). */
function deny(reason: string, unreachable = false): PolicyDecision {
  const message = `local policy: ${reason}`;
  return {
    allowed: false,
    reason,
    error: withoutStack(() =>
      unreachable ? new HostUnreachableError(message) : new NotAllowedError(message),
    ),
  };
}

function validPort(port: number): boolean {
  return Number.isInteger(port) && port >= 1 && port <= 65535;
}

function coversPort(entry: PolicyEntry, port: number): boolean {
  return entry.ports.some((range) => rangeContains(range, port));
}

type CidrEntry = Extract<PolicyEntry, { kind: "cidr" }>;

/** A CIDR entry and the `net.BlockList` that matches its network. */
interface Network {
  readonly entry: CidrEntry;
  readonly list: BlockList;
}

class EntryPolicy implements Policy {
  readonly allowsAll = false;
  readonly #networks: readonly Network[];

  constructor(readonly entries: readonly PolicyEntry[]) {
    this.#networks = entries
      .filter((e): e is CidrEntry => e.kind === "cidr")
      .map((entry) => {
        const list = new BlockList();
        list.addSubnet(formatIp(entry.network), entry.prefix, socketFamily(entry.network.family));
        return { entry, list };
      });
  }

  check(host: string, port: number): PolicyDecision {
    if (!validPort(port)) return deny(`port ${port} is not in 1-65535`);
    const bare = unbracket(host.trim());
    const ip = parseIp(bare);
    if (ip !== undefined) {
      return this.ipAllowed(ip, port)
        ? allow(ip.family === 4 ? formatIp(ip) : bare)
        : deny(`${formatIp(ip)} port ${port} is not allowed`);
    }
    const name = normalizeHostName(bare);
    if (name === undefined) return deny(`"${host}" is not a valid host name or IP address`);
    const named = this.entries.some((e) => e.kind === "name" && coversPort(e, port) && nameMatches(e, name));
    return named ? allow(bare) : deny(`${name} port ${port} is not allowed by a host-name entry`);
  }

  async authorize(host: string, port: number, lookup: LookupFunction = dnsLookup): Promise<PolicyDecision> {
    const direct = this.check(host, port);
    const bare = unbracket(host.trim());
    if (direct.allowed || !validPort(port) || parseIp(bare) !== undefined) return direct;
    const name = normalizeHostName(bare);
    if (name === undefined) return direct;
    // Resolve only when an address could be allowed: the relay must not make the agent look up
    // arbitrary names (a DNS side channel) for ports no CIDR entry opens.
    if (!this.#networks.some(({ entry }) => coversPort(entry, port))) {
      return deny(`${name} port ${port} is not allowed`);
    }
    let addresses: ReadonlyArray<{ readonly address: string }>;
    try {
      addresses = await lookup(bare, { all: true });
    } catch (err) {
      const code = (err as NodeJS.ErrnoException | undefined)?.code ?? String(err);
      return deny(`cannot resolve ${name}: ${code}`, true);
    }
    const seen: string[] = [];
    for (const { address } of addresses) {
      const ip = parseIp(address);
      if (ip === undefined) continue;
      if (this.ipAllowed(ip, port)) return allow(ip.family === 4 ? formatIp(ip) : address);
      seen.push(formatIp(ip));
    }
    if (seen.length === 0) return deny(`cannot resolve ${name}: no addresses`, true);
    const shown =
      seen.slice(0, MAX_ADDRESSES_IN_REASON).join(", ") +
      (seen.length > MAX_ADDRESSES_IN_REASON ? ", ..." : "");
    return deny(`${name} resolves to ${shown}, none allowed for port ${port}`);
  }

  /** `ip` is unmapped (parseIp): an IPv4-mapped address is an IPv4 address here. */
  private ipAllowed(ip: IpAddress, port: number): boolean {
    // BlockList compares an IPv4 address with an IPv6 network as the IPv4-mapped address, so
    // [::/0] alone would cover every IPv4 address: an address meets only its own family's networks.
    const text = formatIp(ip);
    const type = socketFamily(ip.family);
    return this.#networks.some(
      ({ entry, list }) =>
        entry.network.family === ip.family && coversPort(entry, port) && list.check(text, type),
    );
  }
}

/** The policy when UNDERPASS_ALLOW is unset: every host:port the relay asks for (the agent logs a warning). */
export function allowAll(): Policy {
  const decide = (host: string, port: number): PolicyDecision => {
    if (!validPort(port)) return deny(`port ${port} is not in 1-65535`);
    const bare = unbracket(host.trim());
    const ip = parseIp(bare);
    return allow(ip?.family === 4 ? formatIp(ip) : bare);
  };
  return {
    allowsAll: true,
    entries: [],
    check: decide,
    authorize: async (host, port) => decide(host, port),
  };
}

/** Canonical text of one entry, as it would be written in UNDERPASS_ALLOW. */
export function formatEntry(entry: PolicyEntry): string {
  const ports = entry.ports === ALL_PORTS ? "*" : entry.ports.map(formatPortRange).join(",");
  if (entry.kind === "name") return `${entry.wildcard ? "*." : ""}${entry.name}:${ports}`;
  const host = formatIp(entry.network);
  const cidr = entry.prefix === ipBits(entry.network.family) ? host : `${host}/${entry.prefix}`;
  return entry.network.family === 6 ? `[${cidr}]:${ports}` : `${cidr}:${ports}`;
}

/** One line for the agent's start-up log. */
export function describePolicy(policy: Policy): string {
  if (policy.allowsAll) return "allow every host:port the relay asks for (UNDERPASS_ALLOW is unset)";
  return `allow ${policy.entries.map(formatEntry).join("; ")}`;
}
