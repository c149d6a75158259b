/**
 * The tunnel's round-trip time, from its PING/PONG pairs: for the windows' tuning
 * (receive-window.ts) the least of the latest samples, and the age of the latest, so that a
 * stream that tunes its window while data flows can ask for a fresh one (a BDP ping, as gRPC
 * sends) instead of waiting for the next heartbeat PING, 2.5 s away.
 *
 * The least, not the mean: a PONG waits behind the data the windows let into the sender's
 * buffers, so under load the mean RTT grows with the windows themselves, and windows tuned on it
 * grow to their maximum on any path, loopback included (bufferbloat), holding memory that a slow
 * consumer then fills. The least of recent samples is the path's own round trip plus the queue
 * that stands for good, as BBR's min_rtt and LEDBAT's base delay are taken. It is never taken
 * below FLOOR_MS: however near the peer, its answer waits for a busy turn of its event loop
 * (a GC pause, a batch of reads), and a window must bridge that too.
 */

/** Samples the least is taken over: at a BDP ping per 20 ms or more, the last 160 ms to 20 s. */
const SAMPLES = 8;
/** The least RTT a window is tuned for, in ms: a busy event-loop turn on the peer's side. */
const FLOOR_MS = 5;
/** A sample is fresh for this many RTTs, and at least for MIN_FRESH_MS. */
const FRESH_RTTS = 4;
/** Shortest age, in ms, at which a sample counts as stale: at most ~50 BDP pings a second. */
const MIN_FRESH_MS = 20;

export class RoundTrip {
  /** The latest samples, in ms, a ring of SAMPLES; NaN where none came yet. */
  readonly #samples = new Float64Array(SAMPLES).fill(Number.NaN);
  #next = 0;
  #leastMs = 0;
  #sampledAt = Number.NEGATIVE_INFINITY;

  /** The least of the latest samples, at least FLOOR_MS; 0 before the first sample. */
  get leastMs(): number {
    return this.#leastMs;
  }

  /** A PONG came `rttMs` after its PING, at `now` (ms). */
  sample(rttMs: number, now: number): void {
    this.#samples[this.#next] = rttMs;
    this.#next = (this.#next + 1) % SAMPLES;
    let least = Number.POSITIVE_INFINITY;
    for (const s of this.#samples) if (s < least) least = s;
    this.#leastMs = Math.max(FLOOR_MS, least);
    this.#sampledAt = now;
  }

  /** True when the latest sample is too old to tune a window with, at `now` (ms). */
  stale(now: number): boolean {
    return now - this.#sampledAt > Math.max(MIN_FRESH_MS, FRESH_RTTS * this.#leastMs);
  }
}
