/**
 * RFC 6455 §5.3 masking: a client XORs every frame's payload with a 32-bit key of its own,
 * fresh for each frame and unpredictable (§10.3: so that a hostile page cannot choose the bytes
 * a transparent proxy on the way sees, and poison its cache). Keys come from a pool of random
 * bytes (`crypto.randomFillSync`, 8 KiB at a time, as `ws` does); the XOR runs in place, with
 * `bufferutil`'s native loop (~14 GiB/s here) for all but small pieces.
 */
import { randomFillSync } from "node:crypto";
import { createRequire } from "node:module";

/** What `bufferutil` exports (it ships no types). */
interface NativeMask {
  /** `output[offset + i] = source[i] ^ mask[i & 3]` for `length` bytes. */
  mask(source: Buffer, mask: Buffer, output: Buffer, offset: number, length: number): void;
  /** `buffer[i] ^= mask[i & 3]`, in place. */
  unmask(buffer: Buffer, mask: Buffer): void;
}

function loadNative(): NativeMask | null {
  try {
    return createRequire(import.meta.url)("bufferutil") as NativeMask;
  } catch {
    return null; // the JavaScript loop below does the same, slower
  }
}

const native = loadNative();

/**
 * A client's masking keys: `random`, fresh for every frame (the default, RFC 6455 §5.3), or
 * `zero`, the all-zero key, which leaves payloads as they are (an opt-out for a `wss` tunnel).
 */
export const WS_MASKINGS = ["random", "zero"] as const;
export type WsMasking = (typeof WS_MASKINGS)[number];

/** Below this many bytes the JavaScript loop beats a call into the native one (`ws` uses 32). */
const NATIVE_FROM = 32;

/** Random bytes keys are taken from, refilled when used up. */
const POOL_SIZE = 8 * 1024;
const pool = Buffer.allocUnsafe(POOL_SIZE);
let poolAt = POOL_SIZE;

/** A fresh masking key, as a big-endian u32 (the byte order it has on the wire). */
export function nextMaskKey(): number {
  if (poolAt === POOL_SIZE) {
    randomFillSync(pool);
    poolAt = 0;
  }
  const key = pool.readUInt32BE(poolAt);
  poolAt += 4;
  return key;
}

/** The key's 4 bytes rotated to start at byte `at & 3`: the key of a piece that starts there. */
const rotated = Buffer.allocUnsafe(4);
function keyBytes(key: number, at: number): Buffer {
  const shift = (at & 3) * 8;
  rotated.writeUInt32BE(shift === 0 ? key >>> 0 : ((key << shift) | (key >>> (32 - shift))) >>> 0, 0);
  return rotated;
}

/**
 * XORs `piece` in place with `key`, the piece starting `at` bytes into its frame's payload
 * (masking and unmasking are the same operation).
 */
export function maskInPlace(piece: Buffer, key: number, at = 0): void {
  const k = keyBytes(key, at);
  if (native !== null && piece.length >= NATIVE_FROM) {
    native.unmask(piece, k);
    return;
  }
  for (let i = 0; i < piece.length; i++) piece[i] = piece[i]! ^ k[i & 3]!;
}

/** Writes `source` masked with `key` (from payload byte 0) into `target` at `offset`: a copy and the XOR in one pass. */
export function maskInto(source: Buffer, key: number, target: Buffer, offset: number): void {
  const k = keyBytes(key, 0);
  if (native !== null && source.length >= NATIVE_FROM) {
    native.mask(source, k, target, offset, source.length);
    return;
  }
  for (let i = 0; i < source.length; i++) target[offset + i] = source[i]! ^ k[i & 3]!;
}
