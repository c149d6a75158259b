/**
 * The tunnel's round-trip time, from its PING/PONG pairs: a smoothed value for the windows'
 * tuning (receive-window.ts) and the age of the latest sample, so that a stream that tunes its
 * window while data flows can ask for a fresh one (a BDP ping, as gRPC sends) instead of waiting
 * for the next heartbeat PING, 2.5 s away.
 */

/** Weight of a new sample in the smoothed RTT: 1/4, quicker than RFC 6298's 1/8, so a window
 * follows the queueing a transfer adds to the path within a few samples. */
const GAIN = 0.25;
/** A sample is fresh for this many smoothed RTTs, and at least for MIN_FRESH_MS. */
const FRESH_RTTS = 4;
/** Shortest age, in ms, at which a sample counts as stale: at most ~50 BDP pings a second. */
const MIN_FRESH_MS = 20;

export class RoundTrip {
  #smoothedMs = 0;
  #sampledAt = Number.NEGATIVE_INFINITY;

  /** Smoothed RTT in ms; 0 before the first sample. */
  get smoothedMs(): number {
    return this.#smoothedMs;
  }

  /** A PONG came `rttMs` after its PING, at `now` (ms). */
  sample(rttMs: number, now: number): void {
    this.#smoothedMs = this.#smoothedMs === 0 ? rttMs : this.#smoothedMs + GAIN * (rttMs - this.#smoothedMs);
    this.#sampledAt = now;
  }

  /** True when the latest sample is too old to tune a window with, at `now` (ms). */
  stale(now: number): boolean {
    return now - this.#sampledAt > Math.max(MIN_FRESH_MS, FRESH_RTTS * this.#smoothedMs);
  }
}
