/**
 * The bytes the relay can be made to hold for clients, per client and in all: the same budget
 * as the tunnels' receive windows (shared/tunnel/window-budget.ts), with two more levels.
 *
 * Every stream towards a client has a receive window (shared/tunnel/receive-window.ts): its
 * target, which the credit its agent holds plus the bytes waiting in the client's socket buffer
 * never pass once topped up, or those bytes when more wait. That is what the stream can make the
 * relay hold, and it is
 * counted in its tunnel's budget, in the relay's (`totalBytes`, the process level every tunnel
 * of this relay takes from) and in its client's (`perClientBytes`):
 * - a new connection first reserves one initial window in its client's budget and the relay's
 *   (the agent may use all of it as soon as the stream opens); one whose window does not fit,
 *   even after the growth of the idle and non-reading windows is taken back, is refused
 *   (`UP_ERR_LIMIT_EXCEEDED`, SOCKS 0x01): the budget, not the process, runs out. One connection
 *   of a key that holds nothing always fits, so a budget below one window still serves;
 * - once the stream is open its window joins the client's budget and the reservation ends; the
 *   window grows (as fast streams across a distance need) only by grants every level has room
 *   for, and when a level is short the windows of idle or non-reading streams shrink first;
 * - windows grow only up to half of a client's budget and half of the relay's; past that mark
 *   (the initial windows of many connections, bytes a client does not read) they return credit
 *   only up to half the initial window: a stream that reads keeps flowing with a smaller window
 *   and gives room back as it drains; a stream that does not read gets no more.
 */
import { LimitExceededError } from "../../shared/errors.js";
import type { MuxStream } from "../../shared/tunnel/mux-stream.js";
import { WindowBudget, type WindowHolder } from "../../shared/tunnel/window-budget.js";
import type { LimitHits } from "./limit-hits.js";
import { LIMIT } from "./limit-names.js";

export interface BufferBudgetOptions {
  /** Bytes held for clients in all. */
  readonly totalBytes: number;
  /** Bytes held for one client (its id, or its source address without authentication). */
  readonly perClientBytes: number;
  /** The receive window the relay announces per stream (`initialWindow`), in bytes. */
  readonly windowBytes: number;
  readonly hits: LimitHits;
}

/** Past this fraction of a client's budget or the relay's, windows hold to half the initial size. */
const PRESSURE_AT = 0.5;

export class BufferBudget {
  /** The relay's level: the parent of every tunnel's window budget (SessionOptions.processWindowBudget). */
  readonly process: WindowBudget;
  readonly #o: BufferBudgetOptions;
  readonly #byClient = new Map<string, WindowBudget>();

  constructor(options: BufferBudgetOptions) {
    this.#o = options;
    this.process = new WindowBudget(options.totalBytes, null, { pressureAt: PRESSURE_AT });
  }

  /** Bytes reserved or held now, in all and for `client`. */
  held(client?: string): number {
    return client === undefined ? this.process.used : (this.#byClient.get(client)?.used ?? 0);
  }

  /** A window for a new stream towards `client`, or the refusal. */
  reserve(client: string): BufferReservation | LimitExceededError {
    const o = this.#o;
    const w = o.windowBytes;
    let mine = this.#byClient.get(client);
    if (mine && !mine.fits(w)) mine.reclaim();
    if (mine && !mine.fits(w)) {
      o.hits.hit(
        LIMIT.CLIENT_BUFFER_BUDGET,
        client,
        o.perClientBytes,
        `${client} holds ${mine.used} bytes of data not yet read; a new connection refused`,
      );
      return new LimitExceededError(`the client holds ${mine.used} bytes it has not read, its budget`);
    }
    if (!this.process.fits(w)) this.process.reclaim();
    if (!this.process.fits(w)) {
      o.hits.hit(
        LIMIT.BUFFER_BUDGET,
        client,
        o.totalBytes,
        `the relay holds ${this.process.used} bytes for clients; a new connection refused`,
      );
      return new LimitExceededError(`the relay holds ${this.process.used} bytes for clients, its budget`);
    }
    if (!mine) {
      mine = new WindowBudget(o.perClientBytes, null, { pressureAt: PRESSURE_AT });
      this.#byClient.set(client, mine);
    }
    return new BufferReservation(this, client, mine, w);
  }

  /** @internal a client's level holds nothing any more: forget it. */
  forget(client: string, level: WindowBudget): void {
    if (level.used <= 0 && this.#byClient.get(client) === level) this.#byClient.delete(client);
  }
}

/** One stream's place in the budget, from before its OPEN to its close. */
export class BufferReservation implements WindowHolder {
  readonly #budget: BufferBudget;
  readonly #client: string;
  readonly #level: WindowBudget;
  /** The window reserved before the stream exists; 0 once its window holds it. */
  #reserved: number;
  #stream: MuxStream | null = null;
  #released = false;

  constructor(budget: BufferBudget, client: string, level: WindowBudget, window: number) {
    this.#budget = budget;
    this.#client = client;
    this.#level = level;
    this.#reserved = window;
    level.charge(this, window);
    budget.process.charge(this, window);
  }

  get reserved(): number {
    return this.#reserved;
  }
  /** A connection about to open: nothing to take back yet. */
  get reclaimable(): boolean {
    return false;
  }
  shrink(): void {}
  sweep(): void {}

  /** The stream is open: its window is counted in the client's budget from now on. */
  attach(stream: MuxStream): void {
    if (this.#released) return;
    this.#stream = stream;
    stream.window.join(this.#level);
    this.#drop();
  }

  /** The connection is over (or never opened): its bytes leave the budget. */
  release(): void {
    if (this.#released) return;
    this.#released = true;
    this.#drop();
    this.#stream?.window.leave(this.#level);
    this.#budget.forget(this.#client, this.#level);
  }

  #drop(): void {
    const n = this.#reserved;
    if (n === 0) return;
    this.#reserved = 0;
    this.#level.giveBack(this, n, true);
    this.#budget.process.giveBack(this, n, true);
  }
}
