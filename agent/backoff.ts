/** Reconnect delays: exponential, capped, with jitter so a fleet of agents does not reconnect in step. */
export interface BackoffOptions {
  /** First delay, in ms. */
  readonly baseMs: number;
  /** Largest delay, in ms. */
  readonly maxMs: number;
}

export const DEFAULT_BACKOFF: BackoffOptions = { baseMs: 250, maxMs: 10_000 };

/** Delay before attempt `attempt` (0-based): uniform in [cap/2, cap], cap = min(max, base·2^attempt). */
export function backoffDelay(attempt: number, o: BackoffOptions, random: () => number = Math.random): number {
  const cap = Math.min(o.maxMs, o.baseMs * 2 ** Math.min(attempt, 30));
  return Math.round(cap / 2 + random() * (cap / 2));
}
