/**
 * The bytes the relay can be made to hold for clients, per client and in all.
 *
 * Every stream towards a client gives its agent a receive window of credit (4 MiB by default):
 * the agent may send that much before the client reads a byte, and what the client does not
 * read waits in the relay's socket buffer. 500 connections that never read held 2 GiB.
 *
 * A stream's exposure is what it can make the relay hold: the bytes waiting in its socket's
 * buffer plus the credit its agent still has. A connection reserves a whole window before its
 * OPEN (the agent may use all of it at once), and its exposure is followed from then on:
 * - when a client's exposure passes half its budget, or the relay's half of its own, credit
 *   is returned to that client's streams (to every stream) only up to half a window: a stream
 *   that reads keeps flowing with a smaller window and gives room back as it drains; a stream
 *   that does not read gets no more;
 * - a new connection whose window would not fit is refused (`UP_ERR_LIMIT_EXCEEDED`, SOCKS
 *   0x01): the budget, not the process, runs out. One connection of a key that holds nothing
 *   always fits, so a budget below one window still serves.
 *
 * The tunnel's multiplexer takes credit back only through `MuxStream.consumed()`, which the
 * splice calls as the client's socket takes bytes: the budget stands between the two (it
 * forwards at most what was consumed, so the multiplexer's own accounting stays exact).
 */
import type { Socket } from "node:net";
import { LimitExceededError } from "../../shared/errors.js";
import type { MuxStream } from "../../shared/tunnel/mux-stream.js";
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

export class BufferBudget {
  readonly #o: BufferBudgetOptions;
  readonly #byClient = new Map<string, number>();
  #total = 0;

  constructor(options: BufferBudgetOptions) {
    this.#o = options;
  }

  /** Bytes reserved or held now, in all and for `client`. */
  held(client?: string): number {
    return client === undefined ? this.#total : (this.#byClient.get(client) ?? 0);
  }

  /** A window for a new stream towards `client`, or the refusal. */
  reserve(client: string): BufferReservation | LimitExceededError {
    const o = this.#o;
    const w = o.windowBytes;
    const mine = this.#byClient.get(client) ?? 0;
    if (mine > 0 && mine + w > o.perClientBytes) {
      o.hits.hit(
        LIMIT.CLIENT_BUFFER_BUDGET,
        client,
        o.perClientBytes,
        `${client} holds ${mine} bytes of data not yet read; a new connection refused`,
      );
      return new LimitExceededError(`the client holds ${mine} bytes it has not read, its budget`);
    }
    if (this.#total > 0 && this.#total + w > o.totalBytes) {
      o.hits.hit(
        LIMIT.BUFFER_BUDGET,
        client,
        o.totalBytes,
        `the relay holds ${this.#total} bytes for clients; a new connection refused`,
      );
      return new LimitExceededError(`the relay holds ${this.#total} bytes for clients, its budget`);
    }
    return new BufferReservation(this, client, w);
  }

  /** @internal a reservation's exposure moved by `delta` bytes. */
  move(client: string, delta: number): void {
    this.#total += delta;
    const n = (this.#byClient.get(client) ?? 0) + delta;
    if (n <= 0) this.#byClient.delete(client);
    else this.#byClient.set(client, n);
  }

  /** @internal the window a stream of `client` gets credit back up to, in bytes. */
  targetWindow(client: string): number {
    const o = this.#o;
    const tight = this.#total > o.totalBytes / 2 || (this.#byClient.get(client) ?? 0) > o.perClientBytes / 2;
    // half a window: the multiplexer returns credit in batches of a quarter window, so a
    // target above that keeps a reading stream flowing
    return tight ? o.windowBytes >>> 1 : o.windowBytes;
  }
}

/** One stream's place in the budget, from before its OPEN to its close. */
export class BufferReservation {
  readonly #budget: BufferBudget;
  readonly #client: string;
  readonly #window: number;
  /** What this reservation counts in the budget now, in bytes. */
  #exposure: number;
  #stream: MuxStream | null = null;
  #socket: Socket | null = null;
  #forward: ((n: number) => void) | null = null;
  /** Credit handed to the multiplexer so far, and consumed bytes held back. */
  #forwarded = 0;
  #withheld = 0;
  #released = false;

  constructor(budget: BufferBudget, client: string, window: number) {
    this.#budget = budget;
    this.#client = client;
    this.#window = window;
    this.#exposure = window;
    budget.move(client, window);
  }

  /** The stream is open and spliced to the client's socket: follow its credit from now on. */
  attach(stream: MuxStream, socket: Socket): void {
    if (this.#released) return;
    this.#stream = stream;
    this.#socket = socket;
    const consumed = stream.consumed.bind(stream);
    this.#forward = consumed;
    stream.consumed = (n: number): void => this.#consumed(n);
  }

  /** The connection is over (or never opened): its bytes leave the budget. */
  release(): void {
    if (this.#released) return;
    this.#released = true;
    this.#budget.move(this.#client, -this.#exposure);
    this.#exposure = 0;
    const stream = this.#stream;
    const forward = this.#forward;
    if (stream && forward) stream.consumed = forward;
  }

  /** The client's socket took `n` bytes: hand credit back within the target window. */
  #consumed(n: number): void {
    const stream = this.#stream!;
    if (this.#released) return this.#forward!(n);
    this.#withheld += n;
    // the agent's credit left (an over-estimate by the multiplexer's unsent batch) and the
    // bytes still in the socket's buffer
    const credit = this.#window + this.#forwarded - stream.bytesIn;
    const exposure = Math.max(0, credit) + (this.#socket?.writableLength ?? 0);
    const room = this.#budget.targetWindow(this.#client) - exposure;
    const give = Math.min(this.#withheld, Math.max(0, room));
    if (give > 0) {
      this.#withheld -= give;
      this.#forwarded += give;
      this.#forward!(give);
    }
    const now = exposure + give;
    this.#budget.move(this.#client, now - this.#exposure);
    this.#exposure = now;
  }
}
