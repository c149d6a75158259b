/**
 * Failed console sign-ins, counted per source address, with an exponential backoff: the first
 * few failures cost nothing, each one after them closes the address for twice as long as the
 * last (1 s, 2 s, 4 s … up to 15 min). While closed, no token is even compared — the right one
 * included — so guessing costs time; once the wait is over the right token passes and clears the
 * address's record. In memory, bounded: a flood of addresses drops the oldest records first.
 */

/** Failures that cost an address nothing; the next one makes it wait FIRST_WAIT_MS. */
export const FREE_FAILURES = 4;
/** The first wait, in ms; it doubles with each further failure. */
export const FIRST_WAIT_MS = 1000;
/** The longest wait, in ms. */
export const MAX_WAIT_MS = 15 * 60 * 1000;
/** A record is forgotten this long after its last failure, in ms. */
export const FORGET_AFTER_MS = 60 * 60 * 1000;
/** Addresses tracked at once; beyond it the oldest record goes (logged by the caller). */
export const MAX_ADDRESSES = 10_000;

export interface SignInLimiterOptions {
  readonly freeFailures?: number;
  readonly firstWaitMs?: number;
  readonly maxWaitMs?: number;
  readonly maxAddresses?: number;
  /** The clock, in ms since the epoch. */
  readonly now?: () => number;
}

interface AddressRecord {
  failures: number;
  /** ms since the epoch; 0 when the address may try now. */
  closedUntil: number;
  lastFailureAt: number;
}

export class SignInLimiter {
  /** Map order is oldest failure first (a failure re-inserts its record). */
  readonly #records = new Map<string, AddressRecord>();
  readonly #free: number;
  readonly #firstWaitMs: number;
  readonly #maxWaitMs: number;
  readonly #maxAddresses: number;
  readonly #now: () => number;

  constructor(o: SignInLimiterOptions = {}) {
    this.#free = o.freeFailures ?? FREE_FAILURES;
    this.#firstWaitMs = o.firstWaitMs ?? FIRST_WAIT_MS;
    this.#maxWaitMs = o.maxWaitMs ?? MAX_WAIT_MS;
    this.#maxAddresses = o.maxAddresses ?? MAX_ADDRESSES;
    this.#now = o.now ?? Date.now;
  }

  /** Addresses with a record now. */
  get size(): number {
    return this.#records.size;
  }

  /** ms until `address` may try again; 0 when it may try now. */
  waitMs(address: string): number {
    const r = this.#records.get(address);
    if (r === undefined) return 0;
    const now = this.#now();
    if (now - r.lastFailureAt >= FORGET_AFTER_MS) {
      this.#records.delete(address);
      return 0;
    }
    return Math.max(0, r.closedUntil - now);
  }

  /** A wrong token from `address`; returns the wait it now has, in ms (0 while failures are free). */
  failed(address: string): number {
    const now = this.#now();
    const r = this.#records.get(address) ?? { failures: 0, closedUntil: 0, lastFailureAt: now };
    r.failures++;
    r.lastFailureAt = now;
    const over = r.failures - this.#free - 1;
    // 2^over overflows to Infinity long after the cap is reached; min() keeps it finite
    const wait = over < 0 ? 0 : Math.min(this.#maxWaitMs, this.#firstWaitMs * 2 ** over);
    r.closedUntil = now + wait;
    this.#records.delete(address);
    this.#records.set(address, r);
    while (this.#records.size > this.#maxAddresses) {
      const oldest = this.#records.keys().next().value as string;
      this.#records.delete(oldest);
    }
    return wait;
  }

  /** The right token from `address`: its record goes. */
  succeeded(address: string): void {
    this.#records.delete(address);
  }
}
