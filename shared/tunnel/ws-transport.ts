/**
 * A MuxSession's transport over a `ws` WebSocket. `ws` does the opening handshake and the
 * close handshake; the data path runs on the socket under it, in both directions:
 * - out: every tunnel frame becomes one binary WebSocket frame whose header is written in
 *   front of the payload, and the payload goes to the socket as it is, without a copy;
 * - in: WebSocket frames are read in place (ws-frame-codec.ts) and their payload pieces are
 *   emitted as `message` events of the WebSocket (the tunnel is a byte stream, so a piece is as
 *   good as a whole message) without the copy `ws` makes to join a message that spans reads;
 *   control frames (close, ping, pong) go to `ws`'s own receiver, which answers them.
 * A client masks every frame with a fresh random key (RFC 6455 §5.3), in place: the bytes handed
 * to `send()` and `sendFrame()` are the transport's (FrameTransport), so masking costs a pass of
 * XOR over the payload and no copy; `{ masking: "zero" }` keeps the all-zero key, which leaves
 * the payload as it is, for a tunnel inside TLS. A server reads masked frames, whatever the key.
 * Frames sent in one turn of the event loop are corked into one write: every socket read of a
 * poll phase (64 KiB each) leaves in one writev, uncorked in the check phase right after.
 * Where `ws` is not laid out as expected, the transport falls back to `ws.send()` and `ws`'s
 * receiver, unchanged in behaviour and only slower.
 */
import type { Duplex } from "node:stream";
import type { WebSocket } from "ws";
import type { FrameTransport } from "./frame-transport.js";
import {
  binaryHeaderSize,
  WsFrameReader,
  type WsReaderHandlers,
  writeBinaryHeader,
} from "./ws-frame-codec.js";
import { maskInPlace, maskInto, nextMaskKey, type WsMasking } from "./ws-mask.js";

const SEND_OPTIONS = { binary: true, compress: false, fin: true } as const;

/** Frames up to this size go out in one buffer with their WebSocket header (one small copy). */
const COPY_LIMIT = 1024;

/** RFC 6455 §7.4.1: protocol error. */
const WS_PROTOCOL_ERROR = 1002;

/** The part of `ws`'s receiver the transport hands control frames to. */
interface ControlSink {
  write(frame: Buffer): boolean;
}

/** `ws`'s own receiver, and the socket listener that feeds it, when they are where `ws` 8 puts them. */
function wsInternals(
  ws: WebSocket,
  socket: Duplex,
): { receiver: ControlSink; feed: (chunk: Buffer) => void } | null {
  const receiver = (ws as unknown as { _receiver?: Partial<ControlSink> })._receiver;
  const feeds = socket.listeners("data");
  const feed = feeds[0];
  if (typeof receiver?.write !== "function" || feeds.length !== 1 || feed?.name !== "socketOnData")
    return null;
  return { receiver: receiver as ControlSink, feed: feed as (chunk: Buffer) => void };
}

export class WebSocketTransport implements FrameTransport {
  readonly #ws: WebSocket;
  readonly #socket: Duplex | null;
  /** Clients mask their frames (RFC 6455 §5.1). */
  readonly #mask: boolean;
  /** A fresh random key for every frame (§5.3), or the all-zero key (ws-frame-codec.ts). */
  readonly #randomKeys: boolean;
  /** True when the transport writes and reads the socket itself. */
  readonly #direct: boolean;
  #corked = false;
  #broken = false;
  readonly #uncork = (): void => {
    this.#corked = false;
    this.#socket?.uncork();
  };

  /**
   * `socket` is the connection under the WebSocket (TLS or TCP); without it, `ws` does
   * everything. `masking` is a client's keys (default random); a server masks nothing.
   */
  constructor(ws: WebSocket, socket: Duplex | null, options: { masking?: WsMasking } = {}) {
    this.#ws = ws;
    this.#socket = socket;
    // ws documents `url` as absent on the server side of a connection
    this.#mask = Boolean(ws.url);
    this.#randomKeys = this.#mask && (options.masking ?? "random") === "random";
    const internals = socket === null ? null : wsInternals(ws, socket);
    this.#direct = internals !== null;
    if (socket !== null && internals !== null) this.#readDirectly(socket, internals.receiver, internals.feed);
  }

  /**
   * True when the transport reads and writes the socket itself (the zero-copy path above);
   * false when `ws` was not laid out as expected and carries the data itself, only slower.
   * `ws` is pinned to one version because of this; a test holds it true on both sides.
   */
  get direct(): boolean {
    return this.#direct;
  }

  send(data: Buffer, onSent?: () => void): void {
    if (!this.#direct) {
      this.#cork();
      this.#ws.send(data, SEND_OPTIONS, onSent);
      return;
    }
    if (!this.#writable()) return;
    const n = data.length;
    const key = this.#key();
    const size = binaryHeaderSize(n, this.#mask);
    if (n <= COPY_LIMIT) {
      const frame = Buffer.allocUnsafe(size + n);
      writeBinaryHeader(frame, 0, n, this.#mask, key);
      if (key === 0) data.copy(frame, size);
      else maskInto(data, key, frame, size);
      this.#write(frame, onSent);
      return;
    }
    const header = Buffer.allocUnsafe(size);
    writeBinaryHeader(header, 0, n, this.#mask, key);
    if (key !== 0) maskInPlace(data, key);
    this.#write(header);
    this.#write(data, onSent);
  }

  sendFrame(head: Buffer, payload: Buffer, onSent?: () => void): void {
    if (!this.#direct) {
      this.send(head);
      this.send(payload, onSent);
      return;
    }
    if (!this.#writable()) return;
    const n = head.length + payload.length;
    const key = this.#key();
    const size = binaryHeaderSize(n, this.#mask);
    const header = Buffer.allocUnsafe(size + head.length);
    writeBinaryHeader(header, 0, n, this.#mask, key);
    if (key === 0) {
      head.copy(header, size);
    } else {
      maskInto(head, key, header, size);
      // the payload continues the frame where `head` stopped, and keeps its buffer
      maskInPlace(payload, key, head.length);
    }
    this.#write(header);
    this.#write(payload, onSent);
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

  flush(): void {
    if (this.#corked) this.#uncork();
  }

  terminate(): void {
    // the frames corked this turn (the GOAWAY) go to the kernel, which sends them before the FIN
    if (this.#corked) this.#uncork();
    this.#ws.terminate();
  }

  // ---- internals -------------------------------------------------------------------------

  /** The masking key of the next frame: 0 for a server's frames and for the all-zero key. */
  #key(): number {
    return this.#randomKeys ? nextMaskKey() : 0;
  }

  #cork(): void {
    const s = this.#socket;
    if (s !== null && !this.#corked) {
      this.#corked = true;
      s.cork();
      setImmediate(this.#uncork);
    }
  }

  /** Data frames go out only while the WebSocket is open, as `ws.send()` would have it. */
  #writable(): boolean {
    return this.#ws.readyState === this.#ws.OPEN && !this.#broken;
  }

  #write(chunk: Buffer, onSent?: () => void): void {
    this.#cork();
    this.#socket!.write(chunk, onSent);
  }

  /** Replace `ws`'s socket listener with the in-place reader. */
  #readDirectly(socket: Duplex, receiver: ControlSink, feed: (chunk: Buffer) => void): void {
    const ws = this.#ws;
    const reader = new WsFrameReader({ expectMasked: !this.#mask });
    const handlers: WsReaderHandlers = {
      onBinary: (piece) => ws.emit("message", piece, true),
      onText: (piece) => ws.emit("message", piece, false),
      onControl: (_opcode, frame) => receiver.write(frame),
    };
    socket.removeListener("data", feed);
    socket.on("data", (chunk: Buffer) => {
      if (this.#broken) return;
      try {
        reader.push(chunk, handlers);
      } catch (err) {
        this.#broken = true;
        ws.emit("error", err);
        this.close(WS_PROTOCOL_ERROR, err instanceof Error ? err.message.slice(0, 120) : "protocol error");
      }
    });
  }
}
