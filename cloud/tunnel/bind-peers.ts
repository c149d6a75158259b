/**
 * Delivers BIND_PEER frames (the on-premise peer that connected to a BIND listener) to
 * whoever waits for them on the relay. The frame may arrive before the waiter registers
 * (it can follow the OPEN_RESULT in the same message), so an early one is kept with its
 * stream and handed over on `expect`.
 */
import type { MuxStream } from "../../shared/tunnel/mux-stream.js";

export interface BindPeer {
  readonly address: string;
  readonly port: number;
}

export class BindPeers {
  readonly #waiting = new Map<MuxStream, (peer: BindPeer) => void>();
  readonly #early = new WeakMap<MuxStream, BindPeer>();

  /** Call `onPeer` once when the stream's peer connects; returns a function that cancels. */
  expect(stream: MuxStream, onPeer: (peer: BindPeer) => void): () => void {
    const early = this.#early.get(stream);
    if (early) {
      this.#early.delete(stream);
      queueMicrotask(() => onPeer(early));
      return () => {};
    }
    this.#waiting.set(stream, onPeer);
    return () => this.#waiting.delete(stream);
  }

  deliver(stream: MuxStream, address: string, port: number): void {
    const waiter = this.#waiting.get(stream);
    if (!waiter) {
      this.#early.set(stream, { address, port });
      return;
    }
    this.#waiting.delete(stream);
    waiter({ address, port });
  }
}
