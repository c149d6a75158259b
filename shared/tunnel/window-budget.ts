/**
 * A memory budget for receive windows that grew: what a stream's window holds above the initial
 * window (the part the peer was never promised) is taken from its tunnel's budget and from the
 * process's, so that many fast streams cannot make one process promise its peers more than it
 * means to buffer. The initial windows stay outside it: the peer may use them from the start
 * (the hello announced them), and `maxStreams` bounds them.
 *
 * When a budget runs short, it first takes the growth back from its idle or non-reading holders
 * (their windows fall to the initial one as their consumers take what they hold) and only then
 * grants less than was asked. A grant is never more than both budgets have free: `used` never
 * passes `limit`, on either level.
 */

import { DEFAULT_PROCESS_WINDOW_BUDGET } from "./constants.js";

/** What holds part of a budget: a stream's receive window above its initial size. */
export interface WindowHolder {
  /** Bytes of the budget it holds. */
  readonly reserved: number;
  /** True when its consumer took nothing lately (idle, or not reading): its growth may go. */
  readonly reclaimable: boolean;
  /** Take the window back to the initial size; the holder gives back what that frees. */
  shrink(): void;
  /** A sweep interval went by (the tunnel's timer): shrink when the consumer took nothing. */
  sweep(): void;
}

export class WindowBudget {
  /** Bytes this budget may hand out. */
  readonly limit: number;
  /** The budget above (the process's, for a tunnel's); null for the top. */
  readonly parent: WindowBudget | null;
  #used = 0;
  #peak = 0;
  #shortfalls = 0;
  readonly #holders = new Set<WindowHolder>();

  constructor(limit: number, parent: WindowBudget | null = null) {
    this.limit = limit;
    this.parent = parent;
  }

  /** Bytes handed out now. */
  get used(): number {
    return this.#used;
  }
  /** The most ever handed out at once: never above `limit`. */
  get peak(): number {
    return this.#peak;
  }
  /** Grants that got less than was asked because this budget was short, even after reclaiming. */
  get shortfalls(): number {
    return this.#shortfalls;
  }
  /** Holders with a reservation here. */
  get holders(): ReadonlySet<WindowHolder> {
    return this.#holders;
  }

  /**
   * Up to `bytes` more for `holder`; returns what it got (less, or 0, when this budget or one
   * above is short even after taking back the growth of idle holders).
   */
  grant(holder: WindowHolder, bytes: number): number {
    if (bytes <= 0) return 0;
    if (this.#room() < bytes) this.#reclaim(holder);
    const n = Math.max(0, Math.min(bytes, this.#room()));
    if (n < bytes) this.#short(n);
    if (n > 0) this.#take(holder, n);
    return n;
  }

  /** `holder` gives back `bytes`; its `reserved` already counts without them. */
  giveBack(holder: WindowHolder, bytes: number): void {
    if (bytes <= 0) return;
    this.#used -= bytes;
    if (holder.reserved <= 0) this.#holders.delete(holder);
    this.parent?.giveBack(holder, bytes);
  }

  #room(): number {
    const own = this.limit - this.#used;
    return this.parent === null ? own : Math.min(own, this.parent.#room());
  }

  /** Counts a grant cut to `granted` on every level whose room cut it. */
  #short(granted: number): void {
    if (this.limit - this.#used <= granted) this.#shortfalls++;
    if (this.parent !== null) this.parent.#short(granted);
  }

  #take(holder: WindowHolder, n: number): void {
    this.#used += n;
    if (this.#used > this.#peak) this.#peak = this.#used;
    this.#holders.add(holder);
    if (this.parent !== null) this.parent.#take(holder, n);
  }

  /** Idle and non-reading holders shrink (here and above); what they free returns as they drain. */
  #reclaim(asking: WindowHolder): void {
    for (const h of this.#holders) if (h !== asking && h.reclaimable) h.shrink();
    if (this.parent !== null) this.parent.#reclaim(asking);
  }
}

/**
 * The budget every session of this process takes its tunnel budgets from, unless it is given
 * another (SessionOptions.processWindowBudget): one relay serving many agents, or one agent
 * with a pool of tunnels, promises its peers at most this much above the initial windows.
 */
export const processWindowBudget = new WindowBudget(DEFAULT_PROCESS_WINDOW_BUDGET);
