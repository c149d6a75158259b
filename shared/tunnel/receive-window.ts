/**
 * One stream's receive window, tuned to its path and its consumer. The window starts at the
 * initial size the hello announced and grows, by doubling, while the consumer drains it faster
 * than the round trip can refill it: the auto-tuning of QUIC stacks (quic-go's flow controller)
 * and of libp2p's yamux, after the bandwidth-delay-product probing of HTTP/2 stacks (gRPC's BDP
 * ping). An epoch starts at every growth check; when the consumer has taken more than half the
 * window within the epoch, and did so in less than GROW_RTTS × fraction × RTT (that is,
 * it drains faster than window / (GROW_RTTS × RTT), so the window, not the consumer, sets the
 * pace), the window doubles, up to the stream's maximum and as far as its budgets allow.
 *
 * The window is the one place a stream's memory is decided: what it lets the peer make this
 * process hold (its target, which credit plus the bytes waiting for the consumer never pass once
 * topped up, or more while more waits) is counted in its budgets (window-budget.ts): its
 * tunnel's and the process's, and on the relay its client's as well (join()).
 *
 * A window shrinks by holding back credit, never by taking it back: credit the peer holds is its
 * to use (DATA beyond it stays a protocol error). A stream whose consumer took nothing over a
 * sweep (idle, or not reading) halves its target, down to the initial size; a budget that runs
 * short takes such windows back to the initial size at once; a window grows only up to its
 * budgets' pressure marks, and a budget above its mark holds every window of its streams to half
 * the initial size. What waits for the consumer stays held
 * against the budgets until it drains.
 *
 * Credit is returned once the consumer has taken the bytes, in batches of at least a quarter of
 * the target: what the peer may send and what waits here are topped up to the target.
 */
import { grantAcross, type WindowBudget, type WindowHolder } from "./window-budget.js";

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
  /** The window as announced in the hello: the floor of every sweep and reclaim. */
  readonly #initial: number;
  /** The budgets it is counted in: the tunnel's (and, through it, the process's), a client's. */
  #budgets: WindowBudget[];
  /** The window the stream tops its credit up to, in bytes. */
  #target: number;
  /** Bytes the peer may still send. */
  #credit: number;
  /** Bytes received that the consumer has not taken yet. */
  #buffered = 0;
  /**
   * Bytes of the budgets held: the target (or the pressure cap) and at least what waits for the
   * consumer; 0 once closed. Credit the peer holds beyond a target that shrank is not counted: a
   * stream whose sender is done but has not ended (a finished transfer kept open) may never use
   * it, and counting it kept a finished 32 MiB window's credit against its client's share, whose
   * other streams then held to half the initial window (5 MiB/s at 25 ms).
   */
  #reserved: number;
  #closed = false;
  #epochStart: number;
  #epochConsumed = 0;
  /** The consumer took bytes since the last sweep. */
  #active = false;

  constructor(ctx: WindowContext, initial: number) {
    this.#ctx = ctx;
    this.#initial = initial;
    this.#budgets = [ctx.budget];
    this.#target = initial;
    this.#credit = initial;
    this.#reserved = initial;
    this.#epochStart = ctx.now();
    // the peer may use the initial window at once: it is counted from the start
    ctx.budget.charge(this, initial);
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

  /**
   * Count this window in `budget` too from now on (the relay: its client's), with what it holds
   * now; the caller made sure it fit before the stream opened.
   */
  join(budget: WindowBudget): void {
    if (this.#closed || this.#budgets.includes(budget)) return;
    // a new exact-size array: push() would grow the backing store to 17 slots
    this.#budgets = this.#budgets.concat(budget);
    budget.charge(this, this.#reserved);
  }

  /** Stop counting this window in `budget` (joined before): what it holds there goes back. */
  leave(budget: WindowBudget): void {
    const i = this.#budgets.indexOf(budget);
    if (i <= 0) return;
    this.#budgets = this.#budgets.filter((b) => b !== budget);
    budget.giveBack(this, this.#reserved, true);
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
    if (this.#closed) return 0;
    this.#buffered = Math.max(0, this.#buffered - n);
    this.#epochConsumed += n;
    this.#active = true;
    let cap = this.#cap();
    if (cap - this.#credit - this.#buffered < cap >>> 2) {
      this.#settle();
      return 0;
    }
    if (cap === this.#target) {
      this.#maybeGrow();
      cap = this.#target;
    }
    let delta = cap - this.#credit - this.#buffered;
    // credit beyond what the budgets hold for this window needs their grant first (a window
    // that gave back room under pressure, or after a shrink, tops up again only if it fits)
    const need = cap - this.#reserved;
    if (need > 0) {
      const got = grantAcross(this.#budgets, this, need, cap > this.#initial);
      this.#reserved += got;
      delta -= need - got;
    }
    if (delta <= 0) {
      this.#settle();
      return 0;
    }
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
    if (this.#target <= this.#initial) return;
    this.#target = this.#initial;
    this.#settle();
  }

  /** No more DATA will come (FIN) or the stream closed: everything goes back to the budgets. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#target = this.#initial;
    this.#credit = 0;
    this.#buffered = 0;
    this.#settle();
  }

  /** What credit is topped up to: the target, or half the initial window under pressure. */
  #cap(): number {
    for (const b of this.#budgets) if (b.pressured) return Math.min(this.#target, this.#initial >>> 1);
    return this.#target;
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
      // the budgets hold at least the target: the growth is new
      const extra = this.#target + want - this.#reserved;
      const got = extra > 0 ? grantAcross(this.#budgets, this, extra, true) : 0;
      this.#reserved += got;
      this.#target = Math.min(this.#target + want, Math.max(this.#target, this.#reserved));
    }
    this.#epochStart = now;
    this.#epochConsumed = 0;
  }

  /** Give back what the window no longer holds. */
  #settle(): void {
    const held = this.#closed ? 0 : Math.max(this.#buffered, this.#cap());
    if (held >= this.#reserved) return;
    const freed = this.#reserved - held;
    this.#reserved = held;
    for (const b of this.#budgets) b.giveBack(this, freed);
  }
}
