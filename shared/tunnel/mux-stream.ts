/**
 * One stream of the tunnel multiplexer. Credit-based flow control as in yamux: the sender
 * stops at zero credit and resumes on a window update; the receiver returns credit only as
 * its consumer drains, so a slow consumer pauses its own stream and no other.
 * Read and write halves are tracked separately: half-close is real.
 */
import type { UnderpassError } from "../errors.js";
import type { ResetCode } from "./constants.js";
import { ReceiveWindow, type WindowContext } from "./receive-window.js";

/** Where the stream is in its life; `closed` is terminal. */
export type StreamPhase = "opening" | "open" | "closed";

/** The part of the session a stream talks to. */
export interface StreamHost {
  /** Largest DATA payload the peer accepts. */
  readonly peerMaxFrame: number;
  /** True while the transport holds more than its high-water mark. */
  readonly congested: boolean;
  /** What the receive windows of the session's streams share (sizes, budget, round trip). */
  readonly windows: WindowContext;
  sendData(streamId: number, data: Buffer): void;
  sendWindowUpdate(streamId: number, delta: number): void;
  sendFin(streamId: number): void;
  sendReset(streamId: number, code: ResetCode, reason: string): void;
  /** Ask to be told (via `transportDrained`) when the transport is below its low-water mark. */
  waitForTransport(stream: MuxStream): void;
  /** The stream reached `closed`; forget it. */
  release(stream: MuxStream): void;
}

/** What the consumer of a stream hears. Set with `attach()`. */
export interface StreamHandlers {
  /** Bytes from the peer; call `consumed(n)` once they left your buffers. */
  onData(chunk: Buffer): void;
  /** The peer half-closed: no more data will come. */
  onEnd(): void;
  /** The stream broke (peer reset, tunnel lost): abort, never end cleanly. */
  onReset(err: UnderpassError, code: ResetCode | null): void;
  /** `write()` returned false earlier and the stream accepts data again. */
  onDrain(): void;
}

export class MuxStream {
  readonly id: number;
  readonly #host: StreamHost;
  #phase: StreamPhase;
  /** Bytes we may still send (the peer's window for us). */
  #credit: number;
  /** Our receive window: the credit the peer holds, and how it grows and shrinks. */
  readonly #window: ReceiveWindow;
  /** Data waiting for credit; bounded because writers pause when write() returns false. */
  #queue: Buffer[] = [];
  #finQueued = false;
  #writeEnded = false;
  #readEnded = false;
  #wantDrain = false;
  #handlers: StreamHandlers | null = null;
  /** Data and end that arrived before a consumer attached. */
  #early: Buffer[] | null = null;
  #earlyEnd = false;
  /** A reset that came before a consumer attached (it can arrive with the OPEN_RESULT). */
  #earlyReset: { err: UnderpassError; code: ResetCode | null } | null = null;
  /** Bytes sent and received on this stream. */
  bytesOut = 0;
  bytesIn = 0;

  constructor(id: number, host: StreamHost, phase: StreamPhase, sendWindow: number, recvWindow: number) {
    this.id = id;
    this.#host = host;
    this.#phase = phase;
    this.#credit = sendWindow;
    this.#window = new ReceiveWindow(host.windows, recvWindow);
  }

  get phase(): StreamPhase {
    return this.#phase;
  }
  get readEnded(): boolean {
    return this.#readEnded;
  }
  get credit(): number {
    return this.#credit;
  }
  /** The receive window's target, in bytes: the initial window, or what it grew or shrank to. */
  get receiveWindow(): number {
    return this.#window.size;
  }
  /** The receive window, for the session's sweep of idle and non-reading streams. */
  get window(): ReceiveWindow {
    return this.#window;
  }

  attach(handlers: StreamHandlers): void {
    this.#handlers = handlers;
    const early = this.#early;
    this.#early = null;
    if (early) for (const chunk of early) handlers.onData(chunk);
    if (this.#earlyEnd) handlers.onEnd();
    const reset = this.#earlyReset;
    this.#earlyReset = null;
    if (reset) handlers.onReset(reset.err, reset.code);
  }

  /**
   * Send bytes. Returns false when the caller should pause until `onDrain`: credit ran out
   * or the tunnel is congested. Bytes given after the end or a reset are dropped. The chunk is
   * the stream's from then on (it goes to the transport as it is, and a WebSocket client masks
   * it in place): write a copy of bytes you keep.
   */
  write(chunk: Buffer): boolean {
    if (this.#phase === "closed" || this.#writeEnded || this.#finQueued) return false;
    if (this.#queue.length > 0 || this.#credit === 0 || this.#phase === "opening") {
      this.#queue.push(chunk);
    } else {
      this.#send(chunk);
    }
    if (this.#queue.length > 0 || this.#credit === 0 || this.#host.congested) {
      this.#wantDrain = true;
      if (this.#host.congested) this.#host.waitForTransport(this);
      return false;
    }
    return true;
  }

  /** Half-close: a FIN follows the data already written. */
  end(): void {
    if (this.#phase === "closed" || this.#writeEnded || this.#finQueued) return;
    if (this.#queue.length > 0 || this.#phase === "opening") {
      this.#finQueued = true;
      return;
    }
    this.#sendFin();
  }

  /** Abort both directions and tell the peer why. */
  reset(code: ResetCode, reason: string): void {
    if (this.#phase === "closed") return;
    this.#host.sendReset(this.id, code, reason);
    this.#close();
  }

  /**
   * The consumer freed `n` bytes: credit goes back to the peer in batches of at least a quarter
   * window, with what the window grew by (receive-window.ts).
   */
  consumed(n: number): void {
    if (this.#phase === "closed" || this.#readEnded) return;
    const delta = this.#window.consumed(n);
    if (delta > 0) this.#host.sendWindowUpdate(this.id, delta);
  }

  // ---- called by the session -------------------------------------------------------------

  /** The open succeeded: queued data and FIN may go out. */
  opened(): void {
    if (this.#phase !== "opening") return;
    this.#phase = "open";
    this.#flush();
  }

  /** DATA from the peer. Returns false when it broke the window (a protocol error). */
  receiveData(chunk: Buffer): boolean {
    if (this.#readEnded) return false;
    if (!this.#window.receive(chunk.length)) return false;
    this.bytesIn += chunk.length;
    const h = this.#handlers;
    if (h) h.onData(chunk);
    else (this.#early ??= []).push(chunk);
    return true;
  }

  receiveWindowUpdate(delta: number): void {
    this.#credit += delta;
    this.#flush();
  }

  /** FIN from the peer. Returns false when it came twice. */
  receiveFin(): boolean {
    if (this.#readEnded) return false;
    this.#readEnded = true;
    // no more DATA: the window's growth goes back to the budget
    this.#window.close();
    const h = this.#handlers;
    if (h) h.onEnd();
    else this.#earlyEnd = true;
    if (this.#writeEnded) this.#close();
    return true;
  }

  /** The peer reset the stream, or the tunnel is gone. */
  abort(err: UnderpassError, code: ResetCode | null): void {
    if (this.#phase === "closed") return;
    this.#close();
    if (this.#handlers) this.#handlers.onReset(err, code);
    else this.#earlyReset = { err, code };
  }

  /** The transport fell below its low-water mark. */
  transportDrained(): void {
    this.#maybeDrain();
  }

  // ---- internals -------------------------------------------------------------------------

  #send(chunk: Buffer): void {
    const max = this.#host.peerMaxFrame;
    let off = 0;
    while (off < chunk.length && this.#credit > 0) {
      const n = Math.min(this.#credit, max, chunk.length - off);
      this.#host.sendData(this.id, off === 0 && n === chunk.length ? chunk : chunk.subarray(off, off + n));
      this.#credit -= n;
      this.bytesOut += n;
      off += n;
    }
    if (off < chunk.length) this.#queue.unshift(off === 0 ? chunk : chunk.subarray(off));
  }

  #flush(): void {
    if (this.#phase !== "open") return;
    while (this.#queue.length > 0 && this.#credit > 0) {
      const chunk = this.#queue.shift()!;
      this.#send(chunk);
    }
    if (this.#queue.length === 0 && this.#finQueued) {
      this.#finQueued = false;
      this.#sendFin();
    }
    this.#maybeDrain();
  }

  #maybeDrain(): void {
    if (!this.#wantDrain || this.#phase !== "open" || this.#queue.length > 0 || this.#credit === 0) return;
    if (this.#host.congested) {
      this.#host.waitForTransport(this);
      return;
    }
    this.#wantDrain = false;
    this.#handlers?.onDrain();
  }

  #sendFin(): void {
    this.#writeEnded = true;
    this.#host.sendFin(this.id);
    if (this.#readEnded) this.#close();
  }

  #close(): void {
    if (this.#phase === "closed") return;
    this.#phase = "closed";
    this.#queue = [];
    this.#early = null;
    this.#window.close();
    this.#host.release(this);
  }
}
