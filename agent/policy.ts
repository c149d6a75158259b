/**
 * The agent's local policy: the premises have the last word on which internal host:ports may
 * ever be dialled, whatever the relay asks. Parsed from `UNDERPASS_ALLOW`, e.g.
 * `10.0.0.0/8:21,30000-30010;ftp.corp:21;[fd00::/8]:22;192.168.1.5:*;*.corp.example:21`.
 *
 * Grammar: entries separated by `;` (blank entries ignored), each `<host>:<ports>` where
 * - host is an IPv4 address or CIDR (`10.0.0.0/8`; a bare address is a /32; a base that is not
 *   on the prefix boundary, `10.0.0.1/8`, stands for its network), an IPv6 address or CIDR in
 *   brackets (`[fd00::/8]`, a bare address is a /128), a host name (matched case-insensitively
 *   and exactly) or `*.` + a domain (matches every name below the domain, not the domain itself);
 * - ports is `*` or a comma list of ports and inclusive ranges (`21,30000-30010`).
 *
 * IPv4-mapped IPv6 addresses (`::ffff:10.0.0.1`) are IPv4 addresses everywhere here, so an
 * IPv4 entry covers them and an IPv6 entry does not.
 */
import { lookup as dnsLookup } from "node:dns/promises";
import { isIPv4, isIPv6 } from "node:net";
import { HostUnreachableError, NotAllowedError, ValidationError } from "../shared/errors.js";
import { formatPortRange, type PortRange, parsePortRange, rangeContains } from "../shared/net/port-range.js";

/** A numeric IP address: 32 bits for IPv4, 128 bits for IPv6. */
export interface IpAddress {
  readonly family: 4 | 6;
  readonly value: bigint;
}

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
const LABEL = /^[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?$/;
/** Most addresses named in a denial, to keep log lines short. */
const MAX_ADDRESSES_IN_REASON = 4;

// ---- addresses ---------------------------------------------------------------------------

function parseIPv4(text: string): bigint | undefined {
  if (!isIPv4(text)) return undefined;
  let value = 0n;
  for (const octet of text.split(".")) value = (value << 8n) | BigInt(Number(octet));
  return value;
}

function parseIPv6(text: string): bigint | undefined {
  const address = text.replace(/%.*$/, ""); // a zone id (fe80::1%eth0) does not change the address
  if (!isIPv6(address)) return undefined;
  const words: number[] = [];
  const [head = "", tail] = address.split("::");
  const toWords = (part: string): number[] =>
    part === ""
      ? []
      : part.split(":").flatMap((group) => {
          const v4 = group.includes(".") ? parseIPv4(group) : undefined;
          return v4 === undefined ? [Number.parseInt(group, 16)] : [Number(v4 >> 16n), Number(v4 & 0xffffn)];
        });
  const first = toWords(head);
  const last = tail === undefined ? [] : toWords(tail);
  words.push(...first, ...new Array<number>(8 - first.length - last.length).fill(0), ...last);
  let value = 0n;
  for (const word of words) value = (value << 16n) | BigInt(word);
  return value;
}

/** Parse an IP literal (IPv6 with or without brackets); an IPv4-mapped IPv6 address becomes IPv4. */
export function parseIp(text: string): IpAddress | undefined {
  const bare = text.startsWith("[") && text.endsWith("]") ? text.slice(1, -1) : text;
  const v4 = parseIPv4(bare);
  if (v4 !== undefined) return { family: 4, value: v4 };
  const v6 = parseIPv6(bare);
  if (v6 === undefined) return undefined;
  if (v6 >> 32n === 0xffffn) return { family: 4, value: v6 & 0xffffffffn };
  return { family: 6, value: v6 };
}

/** Dotted IPv4 or RFC 5952 IPv6 (lower case, longest run of two or more zero words as `::`). */
export function formatIp(ip: IpAddress): string {
  if (ip.family === 4) return [24n, 16n, 8n, 0n].map((s) => String((ip.value >> s) & 0xffn)).join(".");
  const words = [112n, 96n, 80n, 64n, 48n, 32n, 16n, 0n].map((s) => Number((ip.value >> s) & 0xffffn));
  let best = -1;
  let bestLength = 1;
  for (let i = 0; i < 8; ) {
    let j = i;
    while (j < 8 && words[j] === 0) j++;
    if (j - i > bestLength) [best, bestLength] = [i, j - i];
    i = j === i ? i + 1 : j;
  }
  const hex = words.map((w) => w.toString(16));
  if (best < 0) return hex.join(":");
  return `${hex.slice(0, best).join(":")}::${hex.slice(best + bestLength).join(":")}`;
}

function bits(family: 4 | 6): number {
  return family === 4 ? 32 : 128;
}

function inNetwork(ip: IpAddress, network: IpAddress, prefix: number): boolean {
  if (ip.family !== network.family) return false;
  const shift = BigInt(bits(ip.family) - prefix);
  return ip.value >> shift === network.value >> shift;
}

// ---- names --------------------------------------------------------------------------------

/** Lower case without one trailing dot, or undefined when not a syntactically valid DNS name. */
function normalizeName(text: string): string | undefined {
  const name = text.toLowerCase().replace(/\.$/, "");
  if (name.length === 0 || name.length > 253) return undefined;
  const labels = name.split(".");
  if (!labels.every((label) => LABEL.test(label))) return undefined;
  // A name whose last label is a number is an IPv4 address in some spelling (WHATWG URL host rules).
  if (/^(?:\d+|0x[0-9a-f]*)$/.test(labels[labels.length - 1]!)) return undefined;
  return name;
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
  const ip = parseIp(addressText);
  if (ip === undefined || (family === 6 && !isIPv6(addressText)) || (family === 4 && ip.family !== 4)) {
    return `"${addressText}" is not a valid IPv${family} address`;
  }
  if (family === 6 && addressText.includes("%")) return "a CIDR cannot carry an IPv6 zone id";
  let prefix = bits(family);
  if (slash >= 0) {
    const prefixText = text.slice(slash + 1);
    if (!/^\d{1,3}$/.test(prefixText) || Number(prefixText) > prefix) {
      return `prefix "/${prefixText}" is not in 0-${prefix} for IPv${family}`;
    }
    prefix = Number(prefixText);
  }
  // An IPv4-mapped network (inside ::ffff:0:0/96) is the IPv4 network it maps.
  if (family === 6 && ip.family === 4) {
    if (prefix < 96) return "an IPv4-mapped network needs a prefix of at least /96";
    prefix -= 96;
  }
  const shift = BigInt(bits(ip.family) - prefix);
  return { network: { family: ip.family, value: (ip.value >> shift) << shift }, prefix };
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
  const name = normalizeName(wildcard ? text.slice(2) : text);
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

function deny(reason: string, unreachable = false): PolicyDecision {
  const message = `local policy: ${reason}`;
  return {
    allowed: false,
    reason,
    error: unreachable ? new HostUnreachableError(message) : new NotAllowedError(message),
  };
}

function validPort(port: number): boolean {
  return Number.isInteger(port) && port >= 1 && port <= 65535;
}

function unbracket(host: string): string {
  return host.startsWith("[") && host.endsWith("]") ? host.slice(1, -1) : host;
}

function coversPort(entry: PolicyEntry, port: number): boolean {
  return entry.ports.some((range) => rangeContains(range, port));
}

class EntryPolicy implements Policy {
  readonly allowsAll = false;
  constructor(readonly entries: readonly PolicyEntry[]) {}

  check(host: string, port: number): PolicyDecision {
    if (!validPort(port)) return deny(`port ${port} is not in 1-65535`);
    const bare = unbracket(host.trim());
    const ip = parseIp(bare);
    if (ip !== undefined) {
      return this.ipAllowed(ip, port)
        ? allow(ip.family === 4 ? formatIp(ip) : bare)
        : deny(`${formatIp(ip)} port ${port} is not allowed`);
    }
    const name = normalizeName(bare);
    if (name === undefined) return deny(`"${host}" is not a valid host name or IP address`);
    const named = this.entries.some((e) => e.kind === "name" && coversPort(e, port) && nameMatches(e, name));
    return named ? allow(bare) : deny(`${name} port ${port} is not allowed by a host-name entry`);
  }

  async authorize(host: string, port: number, lookup: LookupFunction = dnsLookup): Promise<PolicyDecision> {
    const direct = this.check(host, port);
    const bare = unbracket(host.trim());
    if (direct.allowed || !validPort(port) || parseIp(bare) !== undefined) return direct;
    const name = normalizeName(bare);
    if (name === undefined) return direct;
    // Resolve only when an address could be allowed: the relay must not make the agent look up
    // arbitrary names (a DNS side channel) for ports no CIDR entry opens.
    if (!this.entries.some((e) => e.kind === "cidr" && coversPort(e, port))) {
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

  private ipAllowed(ip: IpAddress, port: number): boolean {
    return this.entries.some(
      (e) => e.kind === "cidr" && coversPort(e, port) && inNetwork(ip, e.network, e.prefix),
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
  const cidr = entry.prefix === bits(entry.network.family) ? host : `${host}/${entry.prefix}`;
  return entry.network.family === 6 ? `[${cidr}]:${ports}` : `${cidr}:${ports}`;
}

/** One line for the agent's start-up log. */
export function describePolicy(policy: Policy): string {
  if (policy.allowsAll) return "allow every host:port the relay asks for (UNDERPASS_ALLOW is unset)";
  return `allow ${policy.entries.map(formatEntry).join("; ")}`;
}
