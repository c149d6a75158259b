/**
 * The few FTP control-channel lines an FTP-aware mapping reads and rewrites: the server's
 * passive-mode replies (227 PASV, 229 EPSV; RFC 959, RFC 2428) and the client's active-mode
 * commands (PORT, EPRT). The address forms are shared/ftp/data-address.ts's; this is the
 * relay's view of them: whole lines with their CRLF, `null` for whatever it must not act on,
 * and where a command's verb is. Pure functions on text; the control proxy does the I/O.
 */
import {
  type DataAddressResult,
  formatEprtArgument,
  formatHostPortNumbers,
  type HostPort,
  parseEprtAddress,
  parsePortAddress,
} from "../../shared/ftp/data-address.js";

export { type HostPort, parseEpsvReply, parsePasvReply } from "../../shared/ftp/data-address.js";

function hostPortOrNull(r: DataAddressResult): HostPort | null {
  return r.ok ? r.value : null;
}

/** The argument of a PORT command: exactly `h1,h2,h3,h4,p1,p2`, checked. */
export function parsePortArgument(arg: string): HostPort | null {
  return hostPortOrNull(parsePortAddress(arg));
}

/** The address and port of an `EPRT |1|10.0.0.1|6446|` argument, or null. */
export function parseEprtArgument(arg: string): HostPort | null {
  return hostPortOrNull(parseEprtAddress(arg));
}

/** A `227` reply that announces `host:port` (host must be IPv4). */
export function formatPasvReply(host: string, port: number): string {
  return `227 Entering Passive Mode (${formatHostPortNumbers(host, port)}).\r\n`;
}

/** `PORT h1,h2,h3,h4,p1,p2` for an IPv4 address. */
export function formatPortCommand(host: string, port: number): string {
  return `PORT ${formatHostPortNumbers(host, port)}\r\n`;
}

/** `EPRT |1|addr|port|` or `EPRT |2|addr|port|`, by the address family. */
export function formatEprtCommand(host: string, port: number): string {
  return `EPRT ${formatEprtArgument(host, port)}\r\n`;
}

/** The verb (upper case) and argument of a command line without its line end. */
export function splitCommand(line: string): { verb: string; arg: string; ambiguous: boolean } {
  // servers skip Telnet commands (IAC …) and leading blanks; so must whoever checks the verb
  const clean = line.replace(/\xff[\xfb-\xfe][\s\S]?|\xff[\xf0-\xfa\xff]/g, "").replace(/^[ \t]+/, "");
  // [\s\S]: a CR (or any line separator) inside a line is part of its argument, never a crash
  const m = /^(\S*)[ \t]*([\s\S]*)$/.exec(clean)!;
  // an IAC left over is no Telnet command RFC 854 defines: servers disagree on what such a
  // line says (one drops IAC and the byte after it and reads "P\xffAORT" as PORT), so whoever
  // checks the verb cannot know what the server will do with it
  return { verb: m[1]!.toUpperCase(), arg: m[2]!.trim(), ambiguous: clean.includes("\xff") };
}
