/**
 * A session's liveness: a PING goes out every ping interval, and the peer counts as gone when
 * nothing at all (no frame, not one byte) has arrived for the ping timeout. The silence is
 * measured from the last bytes received, to the millisecond, not counted in ping intervals:
 * a silent peer is noticed after the timeout plus timer lag, never up to two intervals later.
 * Any frame counts, DATA included, so a peer whose PONGs queue behind megabytes of data on a
 * slow link is not taken for dead while its data keeps arriving.
 */
import type { SessionTimers } from "./constants.js";

export class Heartbeat {
  readonly #timers: SessionTimers;
  readonly #ping: () => void;
  readonly #silent: (silentMs: number) => void;
  readonly #now: () => number;
  /** When bytes last arrived, in ms on `#now`'s clock. */
  #lastHeard: number;
  #pingTimer: NodeJS.Timeout | null = null;
  #deadline: NodeJS.Timeout | null = null;
  readonly #check = (): void => this.#checkSilence();

  /**
   * `ping` sends one PING; `silent` is called once, with how long the peer has been quiet.
   * `now` is the clock, in ms (monotonic; tests give their own).
   */
  constructor(
    timers: SessionTimers,
    ping: () => void,
    silent: (silentMs: number) => void,
    now: () => number = () => performance.now(),
  ) {
    this.#timers = timers;
    this.#ping = ping;
    this.#silent = silent;
    this.#now = now;
    this.#lastHeard = now();
  }

  /** Bytes arrived from the peer (on every read: one clock read, nothing else). */
  heard(): void {
    this.#lastHeard = this.#now();
  }

  /** Start pinging and watching; the silence counts from now or from the last bytes heard. */
  start(): void {
    if (this.#pingTimer !== null) return;
    this.#pingTimer = setInterval(this.#ping, this.#timers.pingIntervalMs);
    this.#pingTimer.unref();
    this.#arm(this.#timers.pingTimeoutMs - (this.#now() - this.#lastHeard));
  }

  stop(): void {
    if (this.#pingTimer !== null) clearInterval(this.#pingTimer);
    if (this.#deadline !== null) clearTimeout(this.#deadline);
    this.#pingTimer = null;
    this.#deadline = null;
  }

  /** One timer for the moment the timeout would run out if nothing else arrives. */
  #arm(inMs: number): void {
    this.#deadline = setTimeout(this.#check, Math.max(1, Math.ceil(inMs)));
    this.#deadline.unref();
  }

  #checkSilence(): void {
    this.#deadline = null;
    if (this.#pingTimer === null) return;
    const silentMs = this.#now() - this.#lastHeard;
    if (silentMs >= this.#timers.pingTimeoutMs) {
      this.stop();
      this.#silent(Math.round(silentMs));
      return;
    }
    this.#arm(this.#timers.pingTimeoutMs - silentMs);
  }
}
