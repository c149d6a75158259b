/**
 * Hosts as clients, operators and the local policy name them: a DNS name, an IPv4 literal or
 * an IPv6 literal (bracketed as in a URL, RFC 3986 §3.2.2, or bare). One validator and one
 * canonical form for the whole project; the IP literals themselves are ip.ts's.
 *
 * DNS names follow RFC 1123 §2.1 labels (letters, digits, inner hyphens, up to 63 characters;
 * RFC 1035 §2.3.4: up to 253 characters in all) with two departures, both from how hosts are
 * really named and read:
 * - an underscore is a letter, as on-premise host names (`files_01.corp`) have them;
 * - a name whose last label is a number (`1.2.3`, `files.corp.0x10`) is refused: WHATWG URL
 *   and most resolvers read it as an IPv4 address in shorthand, so it never names a host.
 */
import { formatIp, isIPv4Mapped, parseIp, unmapIp } from "./ip.js";

/** RFC 1035 §2.3.4: 253 characters in presentation form (255 octets on the wire). */
export const MAX_DNS_NAME = 253;
/** RFC 1035 §2.3.4. */
export const MAX_DNS_LABEL = 63;
/** RFC 1123 §2.1 label, with `_` counted as a letter; the length is checked apart. */
const DNS_LABEL = /^[a-z0-9_](?:[a-z0-9_-]*[a-z0-9_])?$/i;
/** The WHATWG URL "ends in a number" rule: decimal digits, or `0x` and hex digits. */
const NUMERIC_LABEL = /^(?:\d+|0x[0-9a-f]*)$/i;

/** The host inside `[...]`; anything else unchanged. */
export function unbracket(host: string): string {
  return host.startsWith("[") && host.endsWith("]") ? host.slice(1, -1) : host;
}

/** Lower case without one trailing dot (the root), so `FTP.Corp.` and `ftp.corp` are one name. */
function canonicalName(name: string): string {
  const lower = name.toLowerCase();
  return lower.endsWith(".") && lower.length > 1 ? lower.slice(0, -1) : lower;
}

/**
 * Canonical form of a host as clients name it: lower-case, no trailing dot, IPv6 without
 * brackets and in RFC 5952 form, so that `FTP.Corp.` and `ftp.corp`, or `[FD00::0021]`
 * and `fd00::21`, are the same key. An IPv4-mapped IPv6 address stays IPv6 (see unmapIPv4).
 * Anything else, valid or not, is only lower-cased: this is a key, not a validator.
 */
export function normalizeHost(host: string): string {
  const h = unbracket(host.trim());
  const ip = parseIp(h);
  return ip === undefined ? canonicalName(h) : formatIp(ip);
}

/**
 * The IPv4 address inside an IPv4-mapped IPv6 address (`::ffff:10.0.0.1`, in any spelling) as
 * dotted IPv4; any other input unchanged. Node reports IPv4 peers of a dual-stack socket so.
 */
export function unmapIPv4(address: string): string {
  const ip = parseIp(address);
  return ip !== undefined && isIPv4Mapped(ip) ? formatIp(unmapIp(ip)) : address;
}

/**
 * `normalizeHost` after `unmapIPv4`: one key per host for addresses that sockets and PORT-like
 * commands report, where an IPv4 peer of a dual-stack socket (`::ffff:10.0.0.1`) is that IPv4 host.
 */
export function normalizeAddress(address: string): string {
  return normalizeHost(unmapIPv4(address));
}

/**
 * Why `name` (a DNS name without its trailing dot) is not a host name, or `undefined` when it
 * is one; `shown` is how the messages quote it.
 */
export function dnsNameProblem(name: string, shown: string = name): string | undefined {
  // SOCKS clients send IDNs in their xn-- form, so that is the only form that can ever match.
  // biome-ignore lint/suspicious/noControlCharactersInRegex: the range is all of ASCII
  if (/[^\x00-\x7f]/.test(name))
    return `"${shown}" is not ASCII; write an internationalised name in its xn-- form`;
  if (name.length > MAX_DNS_NAME) return `host name is longer than ${MAX_DNS_NAME} characters`;
  const labels = name.split(".");
  for (const label of labels) {
    if (label.length === 0) return `"${shown}" has an empty label`;
    if (label.length > MAX_DNS_LABEL) return `"${shown}" has a label longer than ${MAX_DNS_LABEL} characters`;
    if (!DNS_LABEL.test(label)) return `"${shown}" is not a valid host name, IPv4 or IPv6 address`;
  }
  if (NUMERIC_LABEL.test(labels[labels.length - 1] ?? "")) return `"${shown}" is not a valid IPv4 address`;
  return undefined;
}

/** A DNS name in canonical form, or `undefined` when `text` is not one (IP literals are not). */
export function normalizeHostName(text: string): string | undefined {
  const name = canonicalName(text);
  return dnsNameProblem(name) === undefined ? name : undefined;
}

/**
 * Why `input` is not a DNS name, an IPv4 or an IPv6 literal (IPv6 may be bracketed; no zone
 * ids: a zone names an interface of one machine, not a host), or `undefined` when it is one.
 * Blanks around it are ignored; `normalizeHost` gives the canonical form.
 */
export function hostProblem(input: string): string | undefined {
  let s = input.trim();
  if (s === "") return "host is empty";
  if (s.startsWith("[") || s.endsWith("]")) {
    if (!(s.startsWith("[") && s.endsWith("]"))) return `"${input}" has unbalanced brackets`;
    s = s.slice(1, -1);
    if (!s.includes(":")) return `"${input}": brackets are only for IPv6 literals`;
  }
  if (s.includes(":")) {
    if (s.includes("%")) return `"${input}": IPv6 zone ids are not supported`;
    return parseIp(s)?.family === 6 ? undefined : `"${input}" is not a valid IPv6 address`;
  }
  if (parseIp(s)?.family === 4) return undefined;
  return dnsNameProblem(s.endsWith(".") ? s.slice(0, -1) : s, input);
}
