/**
 * Where an FTP data connection goes, as the control channel spells it. Both ends of an FTP
 * conversation need these forms (the demo server reads what clients send; the relay reads the
 * client's commands and the server's replies and writes them again), so they are parsed and
 * written here once:
 * - RFC 959 §4.1.2: `PORT h1,h2,h3,h4,p1,p2`, and the same six numbers in PASV's `227` reply;
 * - RFC 1639 §2: `LPRT af,hal,h1,...,pal,p1,p2`, and the same list in LPSV's `228` reply
 *   (af 4 with hal 4 for IPv4, af 6 with hal 16 for IPv6; pal 2, as a TCP port has 2 bytes);
 * - RFC 2428 §2/§3: `EPRT <d><net-prt><d><net-addr><d><tcp-port><d>` (net-prt 1 IPv4, 2 IPv6;
 *   the delimiter one of ASCII 33-126), and EPSV's `229` reply `(<d><d><d><tcp-port><d>)`.
 * Pure functions on text; hosts come out in shared/net/ip.ts's canonical form.
 */
import { ValidationError } from "../errors.js";
import { formatIp, IP_BYTES, ipFromBytes, parseIp } from "../net/ip.js";

export interface HostPort {
  readonly host: string;
  readonly port: number;
}

/**
 * Why an argument names no data address; a server answers each with its own reply:
 * `syntax` 501; `protocol` an address family the command has no number for (522 for EPRT,
 * RFC 2428 §2; 521 for LPRT, RFC 1639 §4); `address` not an address of the family it claims,
 * 501; `port` port 0, 501.
 */
export type DataAddressProblem = "syntax" | "protocol" | "address" | "port";

export type DataAddressResult =
  | { readonly ok: true; readonly value: HostPort }
  | { readonly ok: false; readonly problem: DataAddressProblem; readonly message: string };

/** Six numbers `h1,h2,h3,h4,p1,p2`, each 1-3 digits (RFC 959 §4.1.2). */
const HOST_PORT_NUMBERS = /(\d{1,3}),(\d{1,3}),(\d{1,3}),(\d{1,3}),(\d{1,3}),(\d{1,3})/;
const PORT_ARGUMENT = new RegExp(`^${HOST_PORT_NUMBERS.source}$`);
/** A comma list of 1-3 digit numbers (RFC 1639 §2 long-host-port). */
const NUMBER_LIST = /^\d{1,3}(?:,\d{1,3})*$/;
/** The 229 reply's `(|||port|)`, with any delimiter of ASCII 33-126 (RFC 2428 §3). */
const EPSV_PORT = /\(([!-~])\1\1(\d{1,5})\1\)/;
/** RFC 2428 §2 net-prt. */
const EPRT_FAMILY = { "1": 4, "2": 6 } as const;
/** RFC 1639 §2: the port length, in bytes, of a TCP port. */
const LPRT_PORT_BYTES = 2;

const PORT_SYNTAX = "PORT takes h1,h2,h3,h4,p1,p2";
const EPRT_SYNTAX = "EPRT takes |family|address|port|";
const LPRT_SYNTAX = "LPRT takes af,hal,h1,...,pal,p1,p2";

function failure(problem: DataAddressProblem, message: string): DataAddressResult {
  return { ok: false, problem, message };
}

function withPort(host: string, port: number): DataAddressResult {
  if (port < 1 || port > 65535) return failure("port", `Bad port ${port}`);
  return { ok: true, value: { host, port } };
}

/** h1-h4 and p1-p2 as numbers, checked to be bytes. */
function fromSixNumbers(numbers: readonly number[], syntax: string): DataAddressResult {
  if (numbers.some((n) => n > 255)) return failure("syntax", syntax);
  const [h1, h2, h3, h4, p1 = 0, p2 = 0] = numbers;
  return withPort(`${h1}.${h2}.${h3}.${h4}`, p1 * 256 + p2);
}

/** The argument of `PORT`: exactly `h1,h2,h3,h4,p1,p2`, blanks around it allowed. */
export function parsePortAddress(arg: string): DataAddressResult {
  const m = PORT_ARGUMENT.exec(arg.trim());
  return m ? fromSixNumbers(m.slice(1).map(Number), PORT_SYNTAX) : failure("syntax", PORT_SYNTAX);
}

/** `h1,h2,h3,h4,p1,p2` anywhere in `text` (the parenthesis of a 227 reply, or none), or null. */
export function parseHostPortNumbers(text: string): HostPort | null {
  const m = HOST_PORT_NUMBERS.exec(text);
  const r = m ? fromSixNumbers(m.slice(1).map(Number), PORT_SYNTAX) : undefined;
  return r?.ok ? r.value : null;
}

/** The address and port of a final `227` reply line, or null when the line is not a valid one. */
export function parsePasvReply(line: string): HostPort | null {
  return line.startsWith("227 ") ? parseHostPortNumbers(line.slice(4)) : null;
}

/** The argument of `EPRT` (RFC 2428 §2), blanks around it allowed. */
export function parseEprtAddress(arg: string): DataAddressResult {
  const text = arg.trim();
  const d = text[0];
  if (d === undefined || d < "!" || d > "~") return failure("syntax", EPRT_SYNTAX);
  const parts = text.split(d);
  // "", net-prt, net-addr, tcp-port, ""
  const [, netPrt = "", host = "", portText = "", end] = parts;
  if (parts.length !== 5 || end !== "" || !/^\d{1,5}$/.test(portText)) return failure("syntax", EPRT_SYNTAX);
  if (netPrt !== "1" && netPrt !== "2") {
    return failure("protocol", `network protocol ${JSON.stringify(netPrt)} is not 1 (IPv4) or 2 (IPv6)`);
  }
  const ip = parseIp(host);
  if (ip?.family !== EPRT_FAMILY[netPrt]) return failure("address", `Bad address "${host}"`);
  return withPort(formatIp(ip), Number(portText));
}

/** The argument of `LPRT` (RFC 1639 §2), or the list inside a `228` reply's parenthesis. */
export function parseLprtAddress(arg: string): DataAddressResult {
  const text = arg.trim();
  if (!NUMBER_LIST.test(text)) return failure("syntax", LPRT_SYNTAX);
  const n = text.split(",").map(Number);
  if (n.some((x) => x > 255)) return failure("syntax", LPRT_SYNTAX);
  const [af = 0, hal = 0] = n;
  // RFC 1639 §2: af is the IP version number, 4 or 6, the same as IpFamily
  if (af !== 4 && af !== 6) {
    return failure("protocol", `address family ${af} is not 4 (IPv4) or 6 (IPv6)`);
  }
  // af | hal | h1..h(hal) | pal | p1..p(pal)
  if (hal !== IP_BYTES[af] || n[2 + hal] !== LPRT_PORT_BYTES || n.length !== 3 + hal + LPRT_PORT_BYTES) {
    return failure("syntax", LPRT_SYNTAX);
  }
  const [p1 = 0, p2 = 0] = n.slice(3 + hal);
  return withPort(formatIp(ipFromBytes(Uint8Array.from(n.slice(2, 2 + hal)))), p1 * 256 + p2);
}

/** The port of a final `229` reply line (`229 Entering Extended Passive Mode (|||6446|)`), or null. */
export function parseEpsvReply(line: string): number | null {
  if (!line.startsWith("229 ")) return null;
  const m = EPSV_PORT.exec(line);
  if (!m) return null;
  const port = Number(m[2]);
  return port >= 1 && port <= 65535 ? port : null;
}

/** `h1,h2,h3,h4,p1,p2` for `PORT` and `227`; throws a ValidationError for anything but IPv4. */
export function formatHostPortNumbers(host: string, port: number): string {
  const ip = parseIp(host);
  if (ip?.family !== 4)
    throw new ValidationError(`${host} is not an IPv4 address (PORT and 227 carry IPv4 only)`);
  return `${[...ip.bytes].join(",")},${port >> 8},${port & 0xff}`;
}

/** `af,hal,h1,...,pal,p1,p2` for `LPRT` and `228`; throws a ValidationError for a non-IP host. */
export function formatLongHostPort(host: string, port: number): string {
  const ip = parseIp(host);
  if (ip === undefined) throw new ValidationError(`${host} is not an IP address`);
  return [ip.family, ip.bytes.length, ...ip.bytes, LPRT_PORT_BYTES, port >> 8, port & 0xff].join(",");
}

/** `|1|addr|port|` or `|2|addr|port|` for `EPRT`, by the address family; `host` as given. */
export function formatEprtArgument(host: string, port: number): string {
  return `|${parseIp(host)?.family === 6 ? 2 : 1}|${host}|${port}|`;
}

/** `(|||port|)` for a `229` reply. */
export function formatEpsvPort(port: number): string {
  return `(|||${port}|)`;
}
