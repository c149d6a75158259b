/**
 * What a session writes to its transport, in order: DATA with its payload untouched (the
 * zero-copy path), control frames under the bound of control-queue.ts, and the congestion that
 * pauses writers: above the high-water mark of transport bytes every stream that writes is told
 * to wait, and all of them hear `transportDrained()` once it is back under half of it.
 */
import { ControlQueue } from "./control-queue.js";
import { encodeDataFrame, encodeDataHeader } from "./frame-codec.js";
import type { FrameTransport } from "./frame-transport.js";
import type { MuxStream } from "./mux-stream.js";

export interface WriterOptions {
  /** Transport bytes above which writers are paused. */
  readonly highWaterMark: number;
  /** DATA payloads up to this size go out in one buffer with their header (one small copy). */
  readonly copyThreshold: number;
  /** Bytes of control frames that may wait in user space for the peer. */
  readonly maxQueuedControlBytes: number;
}

export class SessionWriter {
  readonly #transport: FrameTransport;
  readonly #control: ControlQueue;
  readonly #highWater: number;
  readonly #lowWater: number;
  readonly #copyThreshold: number;
  #congested = false;
  readonly #waiting = new Set<MuxStream>();
  readonly #onSent = (): void => this.#checkDrain();

  constructor(transport: FrameTransport, o: WriterOptions) {
    this.#transport = transport;
    this.#highWater = o.highWaterMark;
    this.#lowWater = o.highWaterMark >>> 1;
    this.#copyThreshold = o.copyThreshold;
    this.#control = new ControlQueue(
      o.maxQueuedControlBytes,
      (bytes, onSent) => transport.send(bytes, onSent),
      () => transport.flush?.(),
    );
  }

  /** True while the transport holds more than the high-water mark. */
  get congested(): boolean {
    return this.#congested;
  }
  /** Control bytes queued for the peer and not yet handed to the kernel. */
  get queuedControlBytes(): number {
    return this.#control.bytes;
  }
  get maxQueuedControlBytes(): number {
    return this.#control.limit;
  }
  get bufferedAmount(): number {
    return this.#transport.bufferedAmount;
  }

  /** One DATA frame; the payload goes out as it is when it is large. */
  data(streamId: number, data: Buffer): void {
    // control frames coalesced so far go first: a stream's OPEN_RESULT before its DATA
    this.#control.flush();
    const t = this.#transport;
    if (data.length <= this.#copyThreshold) {
      t.send(encodeDataFrame(streamId, data), this.#onSent);
    } else if (t.sendFrame) {
      t.sendFrame(encodeDataHeader(streamId, data.length), data, this.#onSent);
    } else {
      t.send(encodeDataHeader(streamId, data.length));
      t.send(data, this.#onSent);
    }
    if (!this.#congested && t.bufferedAmount > this.#highWater) this.#congested = true;
  }

  /** One encoded control frame; false, and nothing sent, when it would pass the bound. */
  control(frame: Buffer): boolean {
    return this.#control.push(frame);
  }

  /** A frame outside the bound (hello, welcome, the closing GOAWAY), after all that is queued. */
  direct(frame: Buffer): void {
    this.#control.flush();
    this.#transport.send(frame);
  }

  /** `stream` hears `transportDrained()` once the transport is under the low-water mark. */
  wait(stream: MuxStream): void {
    this.#waiting.add(stream);
  }

  forget(stream: MuxStream): void {
    this.#waiting.delete(stream);
  }

  forgetAll(): void {
    this.#waiting.clear();
  }

  #checkDrain(): void {
    if (!this.#congested || this.#transport.bufferedAmount > this.#lowWater) return;
    this.#congested = false;
    const waiting = [...this.#waiting];
    this.#waiting.clear();
    for (const s of waiting) s.transportDrained();
  }
}
