/**
 * The memory budget of receive windows: what a stream's window lets its peer make this process
 * hold (its target, or the bytes that arrived and wait for the consumer when more wait; credit
 * left beyond a target that shrank is not counted, receive-window.ts) is counted in the budgets the window belongs to: its tunnel's, the process's above it, and, on
 * the relay, its client's (cloud/limits/buffer-budget.ts). One notion of a window, one budget.
 *
 * - A stream's initial window is charged when the stream is created (the hello promised it to
 *   the peer, so it cannot be refused there); whoever opens streams on behalf of a client (the
 *   relay) checks beforehand that it fits and refuses the connection when it does not.
 * - A window grows only by a grant, and a grant is never more than every level has free: a
 *   level passes its limit only by initial windows, never by growth.
 * - When a grant falls short, the level first takes the growth back from its idle or
 *   non-reading holders (their windows fall to the initial size as their consumers take what
 *   they hold), and only then grants less than was asked.
 * - A level may have a pressure mark (`pressureAt`, a fraction of its limit): windows grow only
 *   up to it, and while initial windows or bytes nobody reads keep the level above it, its
 *   windows return credit only up to half the initial window, so a reading stream keeps flowing
 *   with a smaller window and a non-reading one gets no more.
 */

import { DEFAULT_PROCESS_WINDOW_BUDGET } from "./constants.js";

/** What holds part of a budget: a stream's receive window (or a connection about to open one). */
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

export interface WindowBudgetOptions {
  /** Fraction of the limit above which this level is under pressure (default: never). */
  readonly pressureAt?: number;
}

export class WindowBudget {
  /** Bytes this budget may hand out. */
  readonly limit: number;
  /** The budget above (the process's, for a tunnel's); null for the top. */
  readonly parent: WindowBudget | null;
  readonly #pressure: number;
  #used = 0;
  #peak = 0;
  #shortfalls = 0;
  readonly #holders = new Set<WindowHolder>();

  constructor(limit: number, parent: WindowBudget | null = null, options: WindowBudgetOptions = {}) {
    this.limit = limit;
    this.parent = parent;
    this.#pressure = options.pressureAt === undefined ? Number.POSITIVE_INFINITY : limit * options.pressureAt;
  }

  /** Bytes handed out now. */
  get used(): number {
    return this.#used;
  }
  /** The most ever handed out at once. */
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
  /** True when this level or one above is over its pressure mark. */
  get pressured(): boolean {
    return this.#used > this.#pressure || (this.parent?.pressured ?? false);
  }

  /**
   * Bytes free here and on every level above (negative when initial windows overran it); for
   * `growth`, below the pressure mark.
   */
  room(growth = false): number {
    const own = (growth ? Math.min(this.limit, this.#pressure) : this.limit) - this.#used;
    return this.parent === null ? own : Math.min(own, this.parent.room(growth));
  }

  /** True when `bytes` more fit here and above, or this level holds nothing yet. */
  fits(bytes: number): boolean {
    if (this.#used > 0 && this.#used + bytes > this.limit) return false;
    return this.parent === null || this.parent.fits(bytes);
  }

  /**
   * Up to `bytes` more for `holder`; returns what it got (less, or 0, when this budget or one
   * above is short even after taking back the growth of idle holders).
   */
  grant(holder: WindowHolder, bytes: number, growth = false): number {
    return grantAcross([this], holder, bytes, growth);
  }

  /** `bytes` for `holder` whether they fit or not: an initial window the peer was promised. */
  charge(holder: WindowHolder, bytes: number): void {
    if (bytes <= 0) return;
    this.#used += bytes;
    if (this.#used > this.#peak) this.#peak = this.#used;
    this.#holders.add(holder);
    this.parent?.charge(holder, bytes);
  }

  /** `holder` gives back `bytes`; it is forgotten once its `reserved` is 0, or when `forget`. */
  giveBack(holder: WindowHolder, bytes: number, forget = false): void {
    if (bytes > 0) this.#used -= bytes;
    if (forget || holder.reserved <= 0) this.#holders.delete(holder);
    this.parent?.giveBack(holder, bytes, forget);
  }

  /** Idle and non-reading holders shrink (here and above); what they free returns as they drain. */
  reclaim(asking: WindowHolder | null = null): void {
    for (const h of this.#holders) if (h !== asking && h.reclaimable) h.shrink();
    this.parent?.reclaim(asking);
  }

  /** @internal counts a grant cut to `granted` on every level whose room cut it. */
  short(granted: number): void {
    if (this.limit - this.#used <= granted) this.#shortfalls++;
    this.parent?.short(granted);
  }
}

/**
 * Up to `bytes` for `holder` from every one of `budgets` at once (a relay's stream: its tunnel's
 * chain and its client's): what the tightest has free, after reclaiming where it is short.
 * `growth` (a window above its initial size) stops at the pressure marks.
 */
export function grantAcross(
  budgets: readonly WindowBudget[],
  holder: WindowHolder,
  bytes: number,
  growth = false,
): number {
  if (bytes <= 0) return 0;
  let room = Number.POSITIVE_INFINITY;
  for (const b of budgets) {
    if (b.room(growth) < bytes) b.reclaim(holder);
    room = Math.min(room, b.room(growth));
  }
  const n = Math.max(0, Math.min(bytes, room));
  if (n < bytes) for (const b of budgets) b.short(n);
  if (n > 0) for (const b of budgets) b.charge(holder, n);
  return n;
}

/**
 * The budget every session of this process takes its tunnel budgets from, unless it is given
 * another (SessionOptions.processWindowBudget; the relay gives its buffer budget's): one agent
 * with a pool of tunnels promises its peers at most this much beyond the initial windows.
 */
export const processWindowBudget = new WindowBudget(DEFAULT_PROCESS_WINDOW_BUDGET);
