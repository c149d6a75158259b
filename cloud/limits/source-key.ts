/**
 * The key a source address counts under. IPv4 counts per address. IPv6 counts per /64: one
 * site (one subscriber, one cloud instance) is routinely given a whole /64, so counting per
 * address would let one peer take 2^64 keys.
 */
import { formatIp, networkOf, parseIp, unmapIp, withoutZone } from "../../shared/net/ip.js";

/** Prefix length IPv6 sources are grouped by. */
export const IPV6_SOURCE_PREFIX = 64;

export function sourceKey(remoteAddress: string | undefined): string {
  const ip = parseIp(remoteAddress ?? "");
  if (ip === undefined) return remoteAddress ?? "";
  const plain = unmapIp(withoutZone(ip));
  if (plain.family === 4) return formatIp(plain);
  return `${formatIp(networkOf(plain, IPV6_SOURCE_PREFIX))}/${IPV6_SOURCE_PREFIX}`;
}

/** Whom a per-client bound counts: the client's id, or its source without authentication. */
export function clientKey(clientId: string | null, remoteAddress: string | undefined): string {
  return clientId ?? `source ${sourceKey(remoteAddress)}`;
}
