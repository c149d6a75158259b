/**
 * One stream's receive window, tuned to its path and its consumer. The window starts at the
 * initial size the hello announced and grows, by doubling, while the consumer drains it faster
 * than the round trip can refill it: the auto-tuning of QUIC stacks (quic-go's flow controller)
 * and of libp2p's yamux, after the bandwidth-delay-product probing of HTTP/2 stacks (gRPC's BDP
 * ping). An epoch starts at every growth check; when the consumer has taken more than half the
 * window within the epoch, and did so in less than GROW_RTTS × fraction × RTT (that is,
 * it drains faster than window / (GROW_RTTS × RTT), so the window, not the consumer, sets the
 * pace), the window doubles, up to the stream's maximum and as far as the tunnel's and the process's budgets
 * (window-budget.ts) allow.
 *
 * A window shrinks by holding back credit, never by taking it back: credit the peer holds is its
 * to use (DATA beyond it stays a protocol error). A stream whose consumer took nothing over a
 * sweep (idle, or not reading) halves its target, down to the initial size; what waits for the
 * consumer stays held against the budget until it drains.
 *
 * Credit is returned once the consumer has taken the bytes, in batches of at least a quarter of
 * the target: what the peer may send and what waits here are topped up to the target.
 */
import type { WindowBudget, WindowHolder } from "./window-budget.js";

/** What the streams of one tunnel share: sizes, the budget, the round trip and the clock. */
export interface WindowContext {
  /** Largest receive window of a stream, in bytes. */
  readonly maxWindow: number;
  /** The tunnel's budget for growth above the initial windows (its parent: the process's). */
  readonly budget: WindowBudget;
  /** The tunnel's round-trip time, in ms (round-trip.ts); 0 before the first sample. May ask for one. */
  roundTripMs(): number;
  /** Monotonic clock, in ms. */
  now(): number;
}

/**
 * The window doubles while the consumer takes a fraction f of it in less than GROW_RTTS × f RTTs:
 * while the window sets the pace (f of it then takes f RTTs), and until it holds GROW_RTTS
 * bandwidth-delay products of a consumer that sets the pace. quic-go takes 4; 2 leaves room for
 * jitter while a window on a path whose RTT the transfer's own queue inflates stays half as large.
 */
const GROW_RTTS = 2;

export class ReceiveWindow implements WindowHolder {
  readonly #ctx: WindowContext;
  /** The window as announced in the hello: the floor of every shrink, outside the budget. */
  readonly #initial: number;
  /** The window the stream tops its credit up to, in bytes. */
  #target: number;
  /** Bytes the peer may still send. */
  #credit: number;
  /** Bytes received that the consumer has not taken yet. */
  #buffered = 0;
  /**
   * Bytes of the budget held: max(target, buffered) above the initial window. Credit the peer
   * holds beyond a shrunk target is not counted: a stream whose sender is done (a half-closed
   * transfer) may never use it, and counting it would starve the streams that move data.
   */
  #reserved = 0;
  #epochStart: number;
  #epochConsumed = 0;
  /** The consumer took bytes since the last sweep. */
  #active = false;

  constructor(ctx: WindowContext, initial: number) {
    this.#ctx = ctx;
    this.#initial = initial;
    this.#target = initial;
    this.#credit = initial;
    this.#epochStart = ctx.now();
  }

  /** The target window, in bytes. */
  get size(): number {
    return this.#target;
  }
  /** Bytes the peer may still send. */
  get credit(): number {
    return this.#credit;
  }
  get reserved(): number {
    return this.#reserved;
  }
  get reclaimable(): boolean {
    return !this.#active;
  }

  /** DATA of `n` bytes arrived; false when it goes beyond the window (a protocol error). */
  receive(n: number): boolean {
    if (n > this.#credit) return false;
    this.#credit -= n;
    this.#buffered += n;
    return true;
  }

  /** The consumer took `n` bytes: the credit to return now, in bytes (0: none yet). */
  consumed(n: number): number {
    this.#buffered = Math.max(0, this.#buffered - n);
    this.#epochConsumed += n;
    this.#active = true;
    if (this.#target - this.#credit - this.#buffered < this.#target >>> 2) {
      this.#settle();
      return 0;
    }
    this.#maybeGrow();
    const delta = this.#target - this.#credit - this.#buffered;
    this.#credit += delta;
    this.#settle();
    return delta;
  }

  /** A sweep interval went by: a stream whose consumer took nothing halves its growth. */
  sweep(): void {
    if (!this.#active) {
      // a quiet interval is not part of a growth epoch: the next one starts when bytes flow again
      this.#epochStart = this.#ctx.now();
      this.#epochConsumed = 0;
      if (this.#target > this.#initial) {
        this.#target = Math.max(this.#initial, this.#target >>> 1);
        this.#settle();
      }
    }
    this.#active = false;
  }

  shrink(): void {
    this.#target = this.#initial;
    this.#settle();
  }

  /** No more DATA will come (FIN) or the stream closed: everything goes back to the budget. */
  close(): void {
    this.#target = this.#initial;
    this.#credit = 0;
    this.#buffered = 0;
    this.#settle();
  }

  #maybeGrow(): void {
    const consumed = this.#epochConsumed;
    if (consumed <= this.#target >>> 1) return;
    const now = this.#ctx.now();
    const rtt = this.#ctx.roundTripMs();
    // at most 1: bytes a larger window let in before it shrank do not make a fast consumer
    const fraction = Math.min(1, consumed / this.#target);
    if (
      rtt > 0 &&
      this.#target < this.#ctx.maxWindow &&
      now - this.#epochStart < GROW_RTTS * fraction * rtt
    ) {
      const want = Math.min(this.#target * 2, this.#ctx.maxWindow) - this.#target;
      // credit + buffered is below the target here (a window update is due): the growth is new
      const got = this.#ctx.budget.grant(this, want);
      this.#reserved += got;
      this.#target += got;
    }
    this.#epochStart = now;
    this.#epochConsumed = 0;
  }

  /** Give back what the window no longer holds. */
  #settle(): void {
    const held = Math.max(0, Math.max(this.#target, this.#buffered) - this.#initial);
    if (held >= this.#reserved) return;
    const freed = this.#reserved - held;
    this.#reserved = held;
    this.#ctx.budget.giveBack(this, freed);
  }
}
