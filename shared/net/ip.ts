/**
 * IP addresses: the one parser and formatter of IPv4 and IPv6 literals.
 *
 * Text in is what `node:net`'s `isIP` accepts: dotted-decimal IPv4 without leading zeros or
 * shorthand (`10.1`, `0x0a000001` and `010.0.0.1` are not addresses), IPv6 in any RFC 4291 §2.2
 * spelling with an optional zone (`fe80::1%eth0`, RFC 4007 §11). Text out is dotted-decimal
 * IPv4, or IPv6 as RFC 5952 §4 writes it: lower-case hexadecimal without leading zeros, the
 * first longest run of two or more zero groups as `::`. Hexadecimal throughout, IPv4-mapped
 * addresses included (`::ffff:a00:1`), as WHATWG URL serializes them: RFC 5952 §5's mixed
 * notation is only a recommendation, and one spelling per address is what a key needs.
 */
import { BlockList, isIP } from "node:net";

export type IpFamily = 4 | 6;

/** An IP address in network byte order: 4 bytes for IPv4, 16 for IPv6. */
export interface IpAddress {
  readonly family: IpFamily;
  readonly bytes: Uint8Array;
  /** IPv6 zone (scope) as written after `%`; it does not change the address bits. */
  readonly zone?: string;
}

/** Address length in bytes: IPv4 (RFC 791), IPv6 (RFC 8200). */
export const IP_BYTES = { 4: 4, 6: 16 } as const satisfies Record<IpFamily, number>;

/** Address length in bits, the largest CIDR prefix of the family. */
export function ipBits(family: IpFamily): 32 | 128 {
  return family === 4 ? 32 : 128;
}

/** Parse an IPv4 or IPv6 literal, as written (no brackets; IPv4-mapped IPv6 stays IPv6). */
export function parseIp(text: string): IpAddress | undefined {
  const family = isIP(text);
  if (family === 4) return { family: 4, bytes: Uint8Array.from(text.split("."), Number) };
  if (family !== 6) return undefined;
  const percent = text.indexOf("%");
  const address = percent < 0 ? text : text.slice(0, percent);
  const bytes = new Uint8Array(IP_BYTES[6]);
  // isIP vouched for the syntax: at most one "::", hex groups of 1-4 digits, an optional
  // dotted IPv4 as the last 32 bits
  const [head = "", tail] = address.split("::");
  const headWords = groupsToWords(head);
  const tailWords = tail === undefined ? [] : groupsToWords(tail);
  // the words before "::" from the front, those after it from the back, zeros between
  const view = new DataView(bytes.buffer);
  for (let i = 0; i < headWords.length; i++) view.setUint16(i * 2, headWords[i]!);
  const tailStart = 8 - tailWords.length;
  for (let i = 0; i < tailWords.length; i++) view.setUint16((tailStart + i) * 2, tailWords[i]!);
  return percent < 0 ? { family: 6, bytes } : { family: 6, bytes, zone: text.slice(percent + 1) };
}

/** The 16-bit words of colon-separated groups; a dotted IPv4 group is two words. */
function groupsToWords(part: string): number[] {
  if (part === "") return [];
  return part.split(":").flatMap((group) => {
    if (!group.includes(".")) return [Number.parseInt(group, 16)];
    const [a = 0, b = 0, c = 0, d = 0] = group.split(".").map(Number);
    return [(a << 8) | b, (c << 8) | d];
  });
}

/** An address from its network-order bytes (4 or 16, not copied). */
export function ipFromBytes(bytes: Uint8Array): IpAddress {
  if (bytes.length === IP_BYTES[4]) return { family: 4, bytes };
  if (bytes.length === IP_BYTES[6]) return { family: 6, bytes };
  throw new RangeError(`an IP address has 4 or 16 bytes, not ${bytes.length}`);
}

/** Dotted-decimal IPv4, or RFC 5952 §4 IPv6 followed by `%zone` when there is one. */
export function formatIp(ip: IpAddress): string {
  const b = ip.bytes;
  if (ip.family === 4) return `${b[0]}.${b[1]}.${b[2]}.${b[3]}`;
  const words: number[] = [];
  for (let i = 0; i < 16; i += 2) words.push((b[i]! << 8) | b[i + 1]!);
  // RFC 5952 §4.2.2/§4.2.3: only a run of two or more zero words, the first of the longest
  let best = -1;
  let bestLength = 1;
  for (let i = 0; i < 8; ) {
    let j = i;
    while (j < 8 && words[j] === 0) j++;
    if (j - i > bestLength) [best, bestLength] = [i, j - i];
    i = j === i ? i + 1 : j;
  }
  const hex = words.map((w) => w.toString(16));
  const text =
    best < 0 ? hex.join(":") : `${hex.slice(0, best).join(":")}::${hex.slice(best + bestLength).join(":")}`;
  return ip.zone === undefined ? text : `${text}%${ip.zone}`;
}

/** True for an IPv4-mapped IPv6 address, `::ffff:0:0/96` (RFC 4291 §2.5.5.2). */
export function isIPv4Mapped(ip: IpAddress): boolean {
  if (ip.family !== 6) return false;
  for (let i = 0; i < 10; i++) if (ip.bytes[i] !== 0) return false;
  return ip.bytes[10] === 0xff && ip.bytes[11] === 0xff;
}

/** The IPv4 address inside an IPv4-mapped IPv6 address; any other address unchanged. */
export function unmapIp(ip: IpAddress): IpAddress {
  return isIPv4Mapped(ip) ? { family: 4, bytes: ip.bytes.slice(12) } : ip;
}

/** The same address without its zone. */
export function withoutZone(ip: IpAddress): IpAddress {
  return ip.zone === undefined ? ip : { family: ip.family, bytes: ip.bytes };
}

/** The network `ip/prefix` belongs to: the bits after `prefix` cleared (0 <= prefix <= bits). */
export function networkOf(ip: IpAddress, prefix: number): IpAddress {
  const bytes = ip.bytes.slice();
  for (let i = 0; i < bytes.length; i++) {
    const keep = Math.min(8, Math.max(0, prefix - i * 8)); // bits of this byte inside the prefix
    bytes[i] = bytes[i]! & ((0xff << (8 - keep)) & 0xff);
  }
  return { family: ip.family, bytes };
}

/** The address type `net.BlockList` and `net.SocketAddress` name the family by. */
export function socketFamily(family: IpFamily): "ipv4" | "ipv6" {
  return family === 4 ? "ipv4" : "ipv6";
}

/** 127.0.0.0/8 (RFC 1122 §3.2.1.3) and ::1 (RFC 4291 §2.5.3); BlockList also matches ::ffff:127.0.0.0/104. */
const LOOPBACK = new BlockList();
LOOPBACK.addSubnet("127.0.0.0", 8, "ipv4");
LOOPBACK.addAddress("::1", "ipv6");

/** True for a loopback address, IPv4-mapped loopback included. */
export function isLoopback(ip: IpAddress): boolean {
  return LOOPBACK.check(formatIp(withoutZone(ip)), socketFamily(ip.family));
}
