/** Reconnect delays: exponential, capped, with jitter so a fleet of agents does not reconnect in step. */
export interface BackoffOptions {
  /** First delay, in ms. */
  readonly baseMs: number;
  /** Largest delay, in ms. */
  readonly maxMs: number;
}

export const DEFAULT_BACKOFF: BackoffOptions = { baseMs: 250, maxMs: 10_000 };

/** Doublings past this add nothing (2^30 · any base exceeds any sane cap) and keep the power finite. */
const MAX_DOUBLINGS = 30;

/** Delay before attempt `attempt` (0-based): uniform in [cap/2, cap], cap = min(max, base·2^attempt). */
export function backoffDelay(attempt: number, o: BackoffOptions, random: () => number = Math.random): number {
  const cap = Math.min(o.maxMs, o.baseMs * 2 ** Math.min(attempt, MAX_DOUBLINGS));
  return Math.round(cap / 2 + random() * (cap / 2));
}

/** The delays of one reconnecting tunnel: each failed attempt waits longer; one that got up starts over. */
export class Backoff {
  readonly #options: BackoffOptions;
  readonly #random: () => number;
  #attempt = 0;

  constructor(options: BackoffOptions, random: () => number = Math.random) {
    this.#options = options;
    this.#random = random;
  }

  /** Attempts counted since the last reset. */
  get attempt(): number {
    return this.#attempt;
  }

  /** The delay before the next attempt, in ms; counts that attempt. */
  next(): number {
    return backoffDelay(this.#attempt++, this.#options, this.#random);
  }

  /** The tunnel came up: the next failure waits the shortest delay again. */
  reset(): void {
    this.#attempt = 0;
  }
}
