/**
 * RFC 6455 §5 framing for the tunnel's data path: frame headers out, frames in. Pure: bytes
 * in, pieces out, no sockets. The reader hands data-frame payloads out as subarrays of the
 * chunks it is given (no copy, nothing buffered but headers and control frames): the tunnel is
 * a byte stream, so a payload piece is as good as a whole message (constants.ts).
 *
 *   0               1               2               3
 *   +-+-+-+-+-------+-+-------------+-------------------------------+
 *   |F|R|R|R| opcode|M| payload len |    extended payload length    |
 *   |I|S|S|S|  (4)  |A|     (7)     |         (16 or 64 bits)       |
 *   |N|V|V|V|       |S|             |                               |
 *   +-+-+-+-+-------+-+-------------+ - - - - - - - - - - - - - - - +
 *   |                  masking key (32 bits, if MASK)               |
 *   +---------------------------------------------------------------+
 */
import { ProtocolError } from "../errors.js";
import { PartialBuffer } from "./partial-buffer.js";
import { maskInPlace } from "./ws-mask.js";

/** RFC 6455 §5.2 opcodes. */
export const WS_OPCODE = {
  /** A continuation of the message before. */
  CONTINUATION: 0x0,
  /** UTF-8 text; the tunnel never sends it. */
  TEXT: 0x1,
  /** Binary data: tunnel bytes. */
  BINARY: 0x2,
  CLOSE: 0x8,
  PING: 0x9,
  PONG: 0xa,
} as const;

/** FIN bit of the first header byte. */
const FIN = 0x80;
/** RSV1-3: no extension is negotiated, so they must be clear. */
const RSV = 0x70;
/** MASK bit of the second header byte. */
const MASK = 0x80;
/** Largest header: 2 + 8 extended length + 4 masking key. */
export const WS_MAX_HEADER = 14;
/** Control frames carry at most this many payload bytes (§5.5). */
const MAX_CONTROL_PAYLOAD = 125;
/** The largest payload length we accept (what a JavaScript number holds exactly). */
const MAX_SAFE_LENGTH = Number.MAX_SAFE_INTEGER;

/**
 * Writes the header of one final binary frame carrying `length` payload bytes into `target` at
 * `offset`; returns the header's size. With `mask` (a client's frame, RFC 6455 §5.1), the
 * masking key `key` (a u32, big-endian on the wire) follows the length; the caller masks the
 * payload with it (ws-mask.ts). The all-zero key leaves the payload as it is: the opt-out for a
 * tunnel inside TLS, where §10.3's proxies see nothing to be poisoned by.
 */
export function writeBinaryHeader(
  target: Buffer,
  offset: number,
  length: number,
  mask: boolean,
  key = 0,
): number {
  let at = offset;
  target[at++] = FIN | WS_OPCODE.BINARY;
  const m = mask ? MASK : 0;
  if (length < 126) {
    target[at++] = m | length;
  } else if (length <= 0xffff) {
    target[at++] = m | 126;
    target.writeUInt16BE(length, at);
    at += 2;
  } else {
    target[at++] = m | 127;
    target.writeUInt32BE(Math.floor(length / 0x1_0000_0000), at);
    target.writeUInt32BE(length >>> 0, at + 4);
    at += 8;
  }
  if (mask) {
    target.writeUInt32BE(key >>> 0, at);
    at += 4;
  }
  return at - offset;
}

/** Size of the header `writeBinaryHeader` writes. */
export function binaryHeaderSize(length: number, mask: boolean): number {
  return (length < 126 ? 2 : length <= 0xffff ? 4 : 10) + (mask ? 4 : 0);
}

export interface WsReaderHandlers {
  /** Payload bytes of binary frames and their continuations, in order, unmasked. */
  onBinary(piece: Buffer): void;
  /** Payload bytes of text frames and their continuations. */
  onText(piece: Buffer): void;
  /** A whole control frame (close, ping, pong) exactly as it arrived, header and all. */
  onControl(opcode: number, frame: Buffer): void;
}

/**
 * Incremental reader of a WebSocket byte stream. `push()` takes the stream in pieces of any
 * size. A frame that breaks RFC 6455 (or that a peer in this role must not send) throws
 * ProtocolError; the connection is then cut and the reader is not used again.
 */
export class WsFrameReader {
  /** Server side: frames must be masked (§5.1); client side: they must not be. */
  readonly #expectMasked: boolean;
  /** Header bytes carried over from the previous push. */
  readonly #head = Buffer.allocUnsafe(WS_MAX_HEADER);
  #headLen = 0;
  /** Payload bytes left in the current data frame. */
  #left = 0;
  /** The current data frame's masking key as one number (0 when unmasked or all-zero). */
  #mask = 0;
  /** Payload bytes of the current frame already unmasked (where in the key the next byte is). */
  #maskAt = 0;
  /** The message in progress is text. */
  #text = false;
  /** A message is in progress (its last frame had no FIN): only continuations may follow. */
  #fragmented = false;
  /** A control frame being assembled, header and all. */
  #ctrl: PartialBuffer | null = null;
  #ctrlOpcode = 0;

  constructor(options: { expectMasked: boolean }) {
    this.#expectMasked = options.expectMasked;
  }

  push(chunk: Buffer, h: WsReaderHandlers): void {
    const n = chunk.length;
    let off = 0;
    while (off < n) {
      if (this.#left > 0) {
        const take = Math.min(this.#left, n - off);
        const piece = chunk.subarray(off, off + take);
        if (this.#mask !== 0) this.#unmask(piece);
        this.#left -= take;
        off += take;
        if (this.#text) h.onText(piece);
        else h.onBinary(piece);
        continue;
      }
      const ctrl = this.#ctrl;
      if (ctrl !== null) {
        off = ctrl.fill(chunk, off);
        if (ctrl.full) {
          this.#ctrl = null;
          h.onControl(this.#ctrlOpcode, ctrl.bytes);
        }
        continue;
      }
      off = this.#readHeader(chunk, off, h);
    }
  }

  /** Consumes header bytes from `chunk` at `off`; returns the new offset. */
  #readHeader(chunk: Buffer, off: number, h: WsReaderHandlers): number {
    const head = this.#head;
    // the first two bytes tell the header's size
    let need = 2;
    if (this.#headLen >= 2) need = headerSize(head[1]!);
    while (this.#headLen < need && off < chunk.length) {
      head[this.#headLen++] = chunk[off++]!;
      if (this.#headLen === 2) need = headerSize(head[1]!);
    }
    if (this.#headLen < need) return off;
    this.#headLen = 0;

    const b0 = head[0]!;
    const b1 = head[1]!;
    const opcode = b0 & 0x0f;
    const fin = (b0 & FIN) !== 0;
    if ((b0 & RSV) !== 0)
      throw new ProtocolError("websocket frame with RSV bits set (no extension was agreed)");
    const masked = (b1 & MASK) !== 0;
    if (masked !== this.#expectMasked) {
      throw new ProtocolError(
        this.#expectMasked
          ? "unmasked websocket frame from a client"
          : "masked websocket frame from a server",
      );
    }
    const len7 = b1 & 0x7f;
    let length = len7;
    let at = 2;
    if (len7 === 126) {
      length = head.readUInt16BE(2);
      at = 4;
    } else if (len7 === 127) {
      length = head.readUInt32BE(2) * 0x1_0000_0000 + head.readUInt32BE(6);
      if (length > MAX_SAFE_LENGTH) throw new ProtocolError("websocket frame length out of range");
      at = 10;
    }

    if (opcode >= WS_OPCODE.CLOSE) {
      if (opcode !== WS_OPCODE.CLOSE && opcode !== WS_OPCODE.PING && opcode !== WS_OPCODE.PONG) {
        throw new ProtocolError(`reserved websocket opcode 0x${opcode.toString(16)}`);
      }
      if (!fin || length > MAX_CONTROL_PAYLOAD)
        throw new ProtocolError("fragmented or oversized websocket control frame");
      const frame = Buffer.allocUnsafe(need + length);
      head.copy(frame, 0, 0, need);
      if (length === 0) {
        h.onControl(opcode, frame);
      } else {
        this.#ctrl = new PartialBuffer(frame, need);
        this.#ctrlOpcode = opcode;
      }
      return off;
    }

    if (opcode === WS_OPCODE.CONTINUATION) {
      if (!this.#fragmented) throw new ProtocolError("websocket continuation frame without a message");
    } else if (opcode === WS_OPCODE.BINARY || opcode === WS_OPCODE.TEXT) {
      if (this.#fragmented) throw new ProtocolError("new websocket message before the last one ended");
      this.#text = opcode === WS_OPCODE.TEXT;
    } else {
      throw new ProtocolError(`reserved websocket opcode 0x${opcode.toString(16)}`);
    }
    this.#fragmented = !fin;
    this.#mask = masked ? head.readUInt32BE(at) : 0;
    this.#maskAt = 0;
    this.#left = length;
    return off;
  }

  /** XOR `piece` in place with the key, continuing where the frame's previous piece stopped. */
  #unmask(piece: Buffer): void {
    maskInPlace(piece, this.#mask, this.#maskAt);
    this.#maskAt = (this.#maskAt + piece.length) & 3;
  }
}

/** Header size from the second header byte. */
function headerSize(b1: number): number {
  const len7 = b1 & 0x7f;
  return 2 + (len7 === 126 ? 2 : len7 === 127 ? 8 : 0) + ((b1 & MASK) !== 0 ? 4 : 0);
}
