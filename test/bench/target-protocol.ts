/**
 * What the bench's on-premise target speaks. It listens on three consecutive ports, so one
 * mapping with a port range covers them all:
 *   base + 0  sink:   client sends size u64, then `size` bytes; the sink answers their SHA-256 (32 bytes)
 *   base + 1  source: client sends seed u32 + size u64; the source sends stream `(seed, size)`
 *   base + 2  echo:   every byte comes back; a half-close is answered with one
 * All integers big-endian.
 */

export const TARGET_PORT = { SINK: 0, SOURCE: 1, ECHO: 2 } as const;

/** Ports the target listens on, from its base. */
export const TARGET_PORT_COUNT = 3;

/** Sink request: 8 size. */
export const SINK_HEADER_SIZE = 8;
/** Sink answer: a SHA-256 digest. */
export const DIGEST_SIZE = 32;
/** Source request: 4 seed + 8 size. */
export const SOURCE_HEADER_SIZE = 12;

export function sinkHeader(size: number): Buffer {
  const b = Buffer.allocUnsafe(SINK_HEADER_SIZE);
  b.writeBigUInt64BE(BigInt(size), 0);
  return b;
}

export function sourceHeader(seed: number, size: number): Buffer {
  const b = Buffer.allocUnsafe(SOURCE_HEADER_SIZE);
  b.writeUInt32BE(seed >>> 0, 0);
  b.writeBigUInt64BE(BigInt(size), 4);
  return b;
}

/** The line the target prints on stdout once all three ports listen. */
export const TARGET_READY = "bench-target ready";
