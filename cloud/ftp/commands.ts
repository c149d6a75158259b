/**
 * The few FTP control-channel lines an FTP-aware mapping reads and rewrites: the server's
 * passive-mode replies (227 PASV, 229 EPSV; RFC 959, RFC 2428) and the client's active-mode
 * commands (PORT, EPRT). Pure functions on text; the control proxy does the I/O.
 */
import { isIPv4, isIPv6 } from "node:net";

export interface HostPort {
  readonly host: string;
  readonly port: number;
}

const PASV_NUMBERS = /(\d{1,3}),(\d{1,3}),(\d{1,3}),(\d{1,3}),(\d{1,3}),(\d{1,3})/;
const PORT_ARGUMENT = /^\s*(\d{1,3}),(\d{1,3}),(\d{1,3}),(\d{1,3}),(\d{1,3}),(\d{1,3})\s*$/;

/** The address and port of a `227` reply line, or null when the line is not a valid one. */
export function parsePasvReply(line: string): HostPort | null {
  if (!line.startsWith("227 ")) return null;
  return parseHostPortNumbers(line.slice(4));
}

/** `h1,h2,h3,h4,p1,p2` anywhere in `text` (the parenthesis of a 227 reply), checked. */
export function parseHostPortNumbers(text: string): HostPort | null {
  return hostPort(PASV_NUMBERS.exec(text));
}

/** The argument of a PORT command: exactly `h1,h2,h3,h4,p1,p2`, checked. */
export function parsePortArgument(arg: string): HostPort | null {
  return hostPort(PORT_ARGUMENT.exec(arg));
}

function hostPort(m: RegExpExecArray | null): HostPort | null {
  if (!m) return null;
  const n = m.slice(1, 7).map(Number);
  if (n.some((x) => x > 255)) return null;
  const port = n[4]! * 256 + n[5]!;
  if (port === 0) return null;
  return { host: n.slice(0, 4).join("."), port };
}

/** A `227` reply that announces `host:port` (host must be IPv4). */
export function formatPasvReply(host: string, port: number): string {
  return `227 Entering Passive Mode (${hostPortNumbers(host, port)}).\r\n`;
}

/** `PORT h1,h2,h3,h4,p1,p2` for an IPv4 address. */
export function formatPortCommand(host: string, port: number): string {
  return `PORT ${hostPortNumbers(host, port)}\r\n`;
}

function hostPortNumbers(host: string, port: number): string {
  if (!isIPv4(host)) throw new Error(`${host} is not an IPv4 address`);
  return `${host.split(".").join(",")},${port >> 8},${port & 0xff}`;
}

/** The port of a `229` reply line (`229 Entering Extended Passive Mode (|||6446|)`), or null. */
export function parseEpsvReply(line: string): number | null {
  if (!line.startsWith("229 ")) return null;
  const m = /\(([!-~])\1\1(\d{1,5})\1\)/.exec(line);
  if (!m) return null;
  const port = Number(m[2]);
  return port >= 1 && port <= 65535 ? port : null;
}

/** The address and port of an `EPRT |1|10.0.0.1|6446|` argument, or null. */
export function parseEprtArgument(arg: string): HostPort | null {
  const d = arg[0];
  if (!d || d < "!" || d > "~") return null;
  const parts = arg.split(d);
  // "", family, address, port, ""
  if (parts.length !== 5 || parts[0] !== "" || parts[4] !== "") return null;
  const [, family, host, portText] = parts as [string, string, string, string, string];
  if (!/^\d{1,5}$/.test(portText)) return null;
  const port = Number(portText);
  if (port < 1 || port > 65535) return null;
  if (family === "1" && isIPv4(host)) return { host, port };
  if (family === "2" && isIPv6(host)) return { host, port };
  return null;
}

/** `EPRT |1|addr|port|` or `EPRT |2|addr|port|`, by the address family. */
export function formatEprtCommand(host: string, port: number): string {
  return `EPRT |${isIPv6(host) ? 2 : 1}|${host}|${port}|\r\n`;
}

/** The verb (upper case) and argument of a command line without its line end. */
export function splitCommand(line: string): { verb: string; arg: string } {
  // servers skip Telnet commands (IAC …) and leading blanks; so must whoever checks the verb
  const clean = line.replace(/\xff[\xfb-\xfe][\s\S]?|\xff[\xf0-\xfa\xff]/g, "").replace(/^[ \t]+/, "");
  const m = /^(\S*)[ \t]*(.*)$/.exec(clean)!;
  return { verb: m[1]!.toUpperCase(), arg: m[2]!.trim() };
}
