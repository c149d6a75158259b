/**
 * The control frames a session has queued for its peer (PONG, WINDOW_UPDATE, RESET, FIN, OPEN,
 * OPEN_RESULT, BIND_PEER, PING), counted until they leave user space, under one bound. A peer
 * that keeps asking for answers (PINGs, OPENs that are refused) and never reads would otherwise
 * have them pile up without end once the kernel's buffers are full: HTTP/2's ping, reset and
 * settings floods (CVE-2019-9512, -9514, -9515), which nghttp2 meets with a cap on queued
 * control frames and `ws` with `maxPendingAutoPongs`. Past the bound the session cuts the tunnel.
 *
 * A frame goes to the transport at once while no control bytes of ours wait in user space.
 * Frames that come while some still wait are coalesced into one buffer, so that what they hold
 * is their bytes, not one buffer object per 13-byte PONG, and go out as one write once the
 * earlier ones have left, or before the next DATA frame (`flush()`), so frames keep their order.
 * Every FLUSH_AT bytes coalesced, they go to the transport and on to the kernel at once: what
 * counts against the bound is then what the kernel does not take, not the answers to one busy
 * turn of the event loop (libuv reads up to 32 × 64 KiB in one go) waiting for the next.
 */

/** Smallest buffer frames are coalesced into, in bytes; it doubles as it fills. */
const MIN_HOLD_BYTES = 4 * 1024;
/** Coalesced bytes that go to the transport, and on to the kernel, without waiting, in bytes. */
const FLUSH_AT = 64 * 1024;
/** Completed entries at the head of the in-flight list before it is compacted. */
const COMPACT_AFTER = 1024;

export class ControlQueue {
  /** The bound, in bytes. */
  readonly limit: number;
  readonly #write: (bytes: Buffer, onSent: () => void) => void;
  readonly #toKernel: () => void;
  /** Sizes of the writes handed to the transport whose `onSent` has not fired, oldest first. */
  #inFlight: number[] = [];
  #inFlightHead = 0;
  #inFlightBytes = 0;
  /** Frames coalesced behind those writes, not yet handed to the transport. */
  #held: Buffer | null = null;
  #heldBytes = 0;
  readonly #onSent = (): void => this.#sent();

  /**
   * `write` hands bytes to the transport, which calls `onSent` once they left user space;
   * `toKernel` has it pass what it holds on to the kernel now (FrameTransport.flush).
   */
  constructor(limit: number, write: (bytes: Buffer, onSent: () => void) => void, toKernel = (): void => {}) {
    this.limit = limit;
    this.#write = write;
    this.#toKernel = toKernel;
  }

  /** Control bytes handed to the transport and still in user space, plus those coalesced. */
  get bytes(): number {
    return this.#inFlightBytes + this.#heldBytes;
  }

  /** Queues `frame` (the queue keeps it); false, and nothing queued, when that passes the bound. */
  push(frame: Buffer): boolean {
    if (this.bytes + frame.length > this.limit) return false;
    if (this.bytes === 0) {
      this.#hand(frame);
    } else {
      this.#hold(frame);
      if (this.#heldBytes >= FLUSH_AT) {
        this.flush();
        this.#toKernel();
      }
    }
    return true;
  }

  /** Hands the coalesced frames to the transport now: before a DATA frame, or a GOAWAY. */
  flush(): void {
    if (this.#heldBytes === 0) return;
    const bytes = this.#held!.subarray(0, this.#heldBytes);
    // the transport keeps `bytes` until it is written: the next frames get a fresh buffer
    this.#held = null;
    this.#heldBytes = 0;
    this.#hand(bytes);
  }

  #hand(bytes: Buffer): void {
    this.#inFlight.push(bytes.length);
    this.#inFlightBytes += bytes.length;
    this.#write(bytes, this.#onSent);
  }

  #hold(frame: Buffer): void {
    const need = this.#heldBytes + frame.length;
    let held = this.#held;
    if (held === null || held.length < need) {
      let size = Math.max(MIN_HOLD_BYTES, held === null ? 0 : held.length * 2);
      while (size < need) size *= 2;
      const grown = Buffer.allocUnsafe(Math.min(size, Math.max(need, this.limit)));
      if (held !== null) held.copy(grown, 0, 0, this.#heldBytes);
      this.#held = held = grown;
    }
    frame.copy(held, this.#heldBytes);
    this.#heldBytes = need;
  }

  /** Writes complete in the order they were handed over (a stream calls back in order). */
  #sent(): void {
    const n = this.#inFlight[this.#inFlightHead++];
    if (n === undefined) return;
    this.#inFlightBytes -= n;
    if (this.#inFlightHead === this.#inFlight.length) {
      this.#inFlight = [];
      this.#inFlightHead = 0;
      this.flush();
    } else if (this.#inFlightHead >= COMPACT_AFTER && this.#inFlightHead * 2 >= this.#inFlight.length) {
      // a busy tunnel may never be without a write in flight: drop the entries already done
      this.#inFlight = this.#inFlight.slice(this.#inFlightHead);
      this.#inFlightHead = 0;
    }
  }
}
