/**
 * A MuxSession's transport over a `ws` WebSocket. Frames sent in the same tick are corked
 * into one write (a DATA header and its payload, window updates of several streams), and
 * payloads go to `ws` as they are, without a copy.
 */
import type { Duplex } from "node:stream";
import type { WebSocket } from "ws";
import type { FrameTransport } from "./mux-session.js";

const SEND_OPTIONS = { binary: true, compress: false, fin: true } as const;

export class WebSocketTransport implements FrameTransport {
  readonly #ws: WebSocket;
  readonly #socket: Duplex | null;
  #corked = false;
  readonly #uncork = (): void => {
    this.#corked = false;
    this.#socket?.uncork();
  };

  /** `socket` is the connection under the WebSocket, corked per tick when given. */
  constructor(ws: WebSocket, socket: Duplex | null) {
    this.#ws = ws;
    this.#socket = socket;
  }

  send(data: Buffer, onSent?: () => void): void {
    const s = this.#socket;
    if (s !== null && !this.#corked) {
      this.#corked = true;
      s.cork();
      process.nextTick(this.#uncork);
    }
    this.#ws.send(data, SEND_OPTIONS, onSent);
  }

  get bufferedAmount(): number {
    return this.#ws.bufferedAmount;
  }

  close(code: number, reason: string): void {
    const ws = this.#ws;
    if (ws.readyState === ws.CLOSED) return;
    ws.close(code, reason);
    // a peer that does not answer the close handshake is cut off
    setTimeout(() => ws.terminate(), 2_000).unref();
  }
}
