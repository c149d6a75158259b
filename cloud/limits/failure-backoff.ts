/**
 * Failed authentications by key (a source address, a username, a token's fingerprint), and
 * how long the answer to the next failure waits. The first few failures of a key are answered
 * at once; after them the wait doubles per failure up to a maximum. Counts decay (half-life
 * one minute), so a key that stops failing is soon free again. A success is never delayed:
 * the right secret is checked and answered at once, whatever its keys' failures.
 *
 * The table is bounded: past `maxKeys` the oldest key is forgotten (a peer that spreads
 * over more keys than that is slowed by the per-source bound on connections instead).
 */

export interface FailureBackoffOptions {
  /** Failures of a key answered without delay. */
  readonly freeFailures: number;
  /** The longest wait, in ms. */
  readonly maxDelayMs: number;
  /** The wait after the first failure past the free ones, in ms (default 100). */
  readonly baseDelayMs?: number;
  /** Failures count half after this long, in ms (default 60 s). */
  readonly halfLifeMs?: number;
  /** Keys followed at once (default 10 000). */
  readonly maxKeys?: number;
}

interface Failures {
  /** Decayed count as of `at`. */
  readonly n: number;
  /** Date.now() ms of the latest failure. */
  readonly at: number;
}

export class FailureBackoff {
  readonly #o: Required<FailureBackoffOptions>;
  readonly #failures = new Map<string, Failures>();
  readonly #now: () => number;

  constructor(options: FailureBackoffOptions, now: () => number = Date.now) {
    this.#o = { baseDelayMs: 100, halfLifeMs: 60_000, maxKeys: 10_000, ...options };
    this.#now = now;
  }

  /** Count one failure for each key; the wait, in ms, before this failure is answered. */
  fail(keys: readonly string[]): number {
    const now = this.#now();
    let worst = 0;
    for (const key of keys) {
      const n = this.#count(key, now) + 1;
      this.#failures.delete(key); // re-inserted last: the oldest key is the first in the map
      this.#failures.set(key, { n, at: now });
      worst = Math.max(worst, n);
    }
    while (this.#failures.size > this.#o.maxKeys) {
      const oldest = this.#failures.keys().next().value;
      if (oldest === undefined) break;
      this.#failures.delete(oldest);
    }
    return this.delayFor(worst);
  }

  /** The failures a key has now (decayed), for tests and logs. */
  failures(key: string): number {
    return this.#count(key, this.#now());
  }

  /** The wait for the `n`th recent failure of a key, in ms. */
  delayFor(n: number): number {
    const past = Math.floor(n) - this.#o.freeFailures;
    if (past <= 0) return 0;
    return Math.min(this.#o.maxDelayMs, this.#o.baseDelayMs * 2 ** Math.min(past - 1, 30));
  }

  get keys(): number {
    return this.#failures.size;
  }

  #count(key: string, now: number): number {
    const f = this.#failures.get(key);
    if (!f) return 0;
    return f.n * 0.5 ** ((now - f.at) / this.#o.halfLifeMs);
  }
}
