/**
 * A deterministic source of 32-bit numbers (xorshift32, Marsaglia 2003) for tests that feed
 * generated input: a failure replays from the same seed. `seed` must not be 0.
 */
export function seededRandom(seed: number): () => number {
  let x = seed >>> 0 || 1;
  return () => {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    return x >>> 0;
  };
}
