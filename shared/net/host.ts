import { isIP } from "node:net";

/**
 * Canonical form of a host as clients name it: lower-case, no trailing dot, IPv6 without
 * brackets and in its shortest form, so that `FTP.Corp.` and `ftp.corp`, or `[FD00::0021]`
 * and `fd00::21`, are the same key.
 */
export function normalizeHost(host: string): string {
  let h = host.trim();
  if (h.startsWith("[") && h.endsWith("]")) h = h.slice(1, -1);
  if (isIP(h) === 6) return canonicalIPv6(h);
  h = h.toLowerCase();
  if (h.endsWith(".") && h.length > 1) h = h.slice(0, -1);
  return h;
}

/** Shortest textual form of an IPv6 address (RFC 5952), via the URL parser. */
export function canonicalIPv6(address: string): string {
  const u = new URL(`http://[${address}]/`);
  return u.hostname.slice(1, -1);
}

/** The IPv4 address inside an IPv4-mapped IPv6 address (`::ffff:10.0.0.1`), or the input. */
export function unmapIPv4(address: string): string {
  const m = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(address);
  return m ? m[1]! : address;
}
