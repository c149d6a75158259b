/**
 * Deterministic pseudo-random byte streams for the throughput figures. Sender and receiver
 * derive the same stream from `(seed, size)`, so the receiver can check a SHA-256 against the
 * sender's without 1 GiB being stored anywhere. A stream is a sequence of CHUNK_SIZE windows
 * into one shared pool of xorshift bytes; a sender writes those windows as they are (no copy,
 * nothing allocated per chunk), so the harness stays cheap next to the proxy it measures.
 */
import { createHash } from "node:crypto";

/** Bytes a sender writes at once, in bytes. */
export const CHUNK_SIZE = 256 * 1024;
/** Pool of pseudo-random bytes the chunks are cut from, in bytes (a multiple of 64). */
const POOL_SIZE = 4 * 1024 * 1024;
/** Chunk offsets are multiples of this, in bytes. */
const OFFSET_STEP = 64;

let pool: Buffer | null = null;

/** The pool, filled once per process by xorshift32 from a fixed seed; CHUNK_SIZE of slack at the end. */
function sharedPool(): Buffer {
  if (pool !== null) return pool;
  const bytes = Buffer.allocUnsafe(POOL_SIZE + CHUNK_SIZE);
  const words = new Uint32Array(bytes.buffer, bytes.byteOffset, bytes.length >>> 2);
  let x = 0x9e3779b9;
  for (let i = 0; i < words.length; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    words[i] = x >>> 0;
  }
  pool = bytes;
  return bytes;
}

/** Offset of chunk `index` of stream `seed` in the pool: a multiplicative hash of both. */
function chunkOffset(seed: number, index: number): number {
  const h = Math.imul(seed ^ 0x5bd1e995, 0x9e3779b1) ^ Math.imul(index + 1, 0x85ebca6b);
  return ((h >>> 0) % (POOL_SIZE / OFFSET_STEP)) * OFFSET_STEP;
}

/** The chunks of one stream, in order; `next()` returns null at the end. */
export class PatternStream {
  readonly #seed: number;
  readonly #pool = sharedPool();
  #left: number;
  #index = 0;

  constructor(seed: number, size: number) {
    this.#seed = seed >>> 0;
    this.#left = size;
  }

  /** Bytes not yet handed out. */
  get left(): number {
    return this.#left;
  }

  next(): Buffer | null {
    if (this.#left === 0) return null;
    const n = Math.min(CHUNK_SIZE, this.#left);
    const at = chunkOffset(this.#seed, this.#index++);
    this.#left -= n;
    return this.#pool.subarray(at, at + n);
  }
}

const digests = new Map<string, string>();

/** SHA-256 (hex) of stream `(seed, size)`; computed once per process and remembered. */
export function patternDigest(seed: number, size: number): string {
  const key = `${seed}:${size}`;
  const known = digests.get(key);
  if (known !== undefined) return known;
  const hash = createHash("sha256");
  const stream = new PatternStream(seed, size);
  for (let chunk = stream.next(); chunk !== null; chunk = stream.next()) hash.update(chunk);
  const digest = hash.digest("hex");
  digests.set(key, digest);
  return digest;
}
