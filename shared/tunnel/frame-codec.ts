/**
 * Pure codec for tunnel frames: values to bytes and bytes to values. No sockets, no timers.
 * The decoder takes the tunnel's byte stream in pieces of any size; it hands DATA payloads out
 * as they arrive (subarrays, no copy) and buffers only headers and control payloads.
 */
import { FrameTooLargeError, ProtocolError } from "../errors.js";
import {
  FRAME_HEADER_SIZE,
  FRAME_TYPE,
  type FrameType,
  GOAWAY_CODE,
  type GoAwayCode,
  MAX_ADVERTISED_RELAYS,
  OPEN_CODE,
  OPEN_KIND,
  type OpenCode,
  type OpenKind,
  RESET_CODE,
  type ResetCode,
} from "./constants.js";
import type { Frame, RelayEntry } from "./frame.js";
import { PartialBuffer } from "./partial-buffer.js";

const MAX_U32 = 0xffff_ffff;

function header(type: FrameType, streamId: number, length: number, extra = 0): Buffer {
  const b = Buffer.allocUnsafe(FRAME_HEADER_SIZE + extra);
  b[0] = type;
  b.writeUInt32BE(streamId, 1);
  b.writeUInt32BE(length, 5);
  return b;
}

/** Header of a DATA frame; the payload follows as its own buffer (no copy). */
export function encodeDataHeader(streamId: number, length: number): Buffer {
  return header(FRAME_TYPE.DATA, streamId, length);
}

/** A whole DATA frame in one buffer (one copy: for small payloads, where a second send costs more). */
export function encodeDataFrame(streamId: number, data: Buffer): Buffer {
  const b = header(FRAME_TYPE.DATA, streamId, data.length, data.length);
  data.copy(b, FRAME_HEADER_SIZE);
  return b;
}

function withPayload(type: FrameType, streamId: number, payload: Buffer): Buffer {
  const b = header(type, streamId, payload.length, payload.length);
  payload.copy(b, FRAME_HEADER_SIZE);
  return b;
}

/** Reasons are cut to this many bytes so a control frame stays small. */
const MAX_REASON_BYTES = 512;

function codeAndReason(code: number, reason: string): Buffer {
  const text = Buffer.from(reason, "utf8").subarray(0, MAX_REASON_BYTES);
  const p = Buffer.allocUnsafe(1 + text.length);
  p[0] = code;
  text.copy(p, 1);
  return p;
}

/** `fixed` bytes of fields, then a length-prefixed UTF-8 string at the end. */
function withTrailingString(fixed: number, value: string, fill: (p: Buffer) => void): Buffer {
  const text = Buffer.from(value, "utf8");
  if (text.length > 255)
    throw new ProtocolError(`host or address too long (${text.length} bytes, at most 255)`);
  const p = Buffer.allocUnsafe(fixed + 1 + text.length);
  fill(p);
  p[fixed] = text.length;
  text.copy(p, fixed + 1);
  return p;
}

/** Encode any frame except DATA payloads on the hot path (see encodeDataHeader). */
export function encodeFrame(frame: Frame): Buffer {
  switch (frame.type) {
    case "hello":
      return withPayload(FRAME_TYPE.HELLO, 0, Buffer.from(JSON.stringify(frame.body), "utf8"));
    case "welcome":
      return withPayload(FRAME_TYPE.WELCOME, 0, Buffer.from(JSON.stringify(frame.body), "utf8"));
    case "open": {
      // 1 kind + 2 port + 4 timeout + 1 host length + host
      const p = withTrailingString(7, frame.host, (b) => {
        b[0] = frame.kind;
        b.writeUInt16BE(frame.port, 1);
        b.writeUInt32BE(Math.min(Math.max(0, Math.floor(frame.timeoutMs)), MAX_U32), 3);
      });
      return withPayload(FRAME_TYPE.OPEN, frame.streamId, p);
    }
    case "open-result": {
      // 1 code + 2 port + 1 address length + address
      const p = withTrailingString(3, frame.address, (b) => {
        b[0] = frame.code;
        b.writeUInt16BE(frame.port, 1);
      });
      return withPayload(FRAME_TYPE.OPEN_RESULT, frame.streamId, p);
    }
    case "data":
      return encodeDataFrame(frame.streamId, frame.data);
    case "window-update": {
      const b = header(FRAME_TYPE.WINDOW_UPDATE, frame.streamId, 4, 4);
      b.writeUInt32BE(frame.delta, FRAME_HEADER_SIZE);
      return b;
    }
    case "fin":
      return header(FRAME_TYPE.FIN, frame.streamId, 0);
    case "reset":
      return withPayload(FRAME_TYPE.RESET, frame.streamId, codeAndReason(frame.code, frame.reason));
    case "ping":
    case "pong": {
      const b = header(frame.type === "ping" ? FRAME_TYPE.PING : FRAME_TYPE.PONG, 0, 4, 4);
      b.writeUInt32BE(frame.nonce >>> 0, FRAME_HEADER_SIZE);
      return b;
    }
    case "goaway":
      return withPayload(FRAME_TYPE.GOAWAY, 0, codeAndReason(frame.code, frame.reason));
    case "bind-peer": {
      // 2 port + 1 address length + address
      const p = withTrailingString(2, frame.address, (b) => b.writeUInt16BE(frame.port, 0));
      return withPayload(FRAME_TYPE.BIND_PEER, frame.streamId, p);
    }
    case "relays":
      return withPayload(FRAME_TYPE.RELAYS, 0, encodeRelays(frame.relays));
    default: {
      const never: never = frame;
      throw new ProtocolError(`cannot encode ${String(never)}`);
    }
  }
}

/** count u16, then per relay: id length u8, id, URL length u16, URL. */
function encodeRelays(relays: readonly RelayEntry[]): Buffer {
  if (relays.length > MAX_ADVERTISED_RELAYS)
    throw new ProtocolError(`${relays.length} relays in one frame, at most ${MAX_ADVERTISED_RELAYS}`);
  const parts: Buffer[] = [Buffer.alloc(2)];
  parts[0]!.writeUInt16BE(relays.length, 0);
  for (const r of relays) {
    const id = Buffer.from(r.id, "utf8");
    const url = Buffer.from(r.url, "utf8");
    if (id.length === 0 || id.length > 255 || url.length === 0 || url.length > 0xffff)
      throw new ProtocolError(`relay ${r.id}: id of 1 to 255 bytes and URL of 1 to 65535 bytes`);
    const head = Buffer.allocUnsafe(1 + id.length + 2);
    head[0] = id.length;
    id.copy(head, 1);
    head.writeUInt16BE(url.length, 1 + id.length);
    parts.push(head, url);
  }
  return Buffer.concat(parts);
}

function decodeRelays(p: Buffer): RelayEntry[] {
  need(p, 2, "relays");
  const count = p.readUInt16BE(0);
  if (count > MAX_ADVERTISED_RELAYS)
    throw new ProtocolError(`relays frame names ${count} relays, at most ${MAX_ADVERTISED_RELAYS}`);
  const relays: RelayEntry[] = [];
  let at = 2;
  for (let i = 0; i < count; i++) {
    const idLen = p[at] ?? 0;
    if (idLen === 0 || at + 1 + idLen + 2 > p.length) throw new ProtocolError("relays frame cut short");
    const id = p.toString("utf8", at + 1, at + 1 + idLen);
    at += 1 + idLen;
    const urlLen = p.readUInt16BE(at);
    at += 2;
    if (urlLen === 0 || at + urlLen > p.length) throw new ProtocolError("relays frame cut short");
    relays.push({ id, url: p.toString("utf8", at, at + urlLen) });
    at += urlLen;
  }
  if (at !== p.length) throw new ProtocolError("relays frame has bytes after its last relay");
  return relays;
}

/** What the decoder accepts; larger frames are refused before their payload is read. */
export interface DecoderLimits {
  readonly maxFramePayload: number;
  readonly maxControlPayload: number;
}

const SESSION_TYPES: ReadonlySet<number> = new Set([
  FRAME_TYPE.RELAYS,
  FRAME_TYPE.HELLO,
  FRAME_TYPE.WELCOME,
  FRAME_TYPE.PING,
  FRAME_TYPE.PONG,
  FRAME_TYPE.GOAWAY,
]);
const STREAM_TYPES: ReadonlySet<number> = new Set([
  FRAME_TYPE.OPEN,
  FRAME_TYPE.OPEN_RESULT,
  FRAME_TYPE.DATA,
  FRAME_TYPE.WINDOW_UPDATE,
  FRAME_TYPE.FIN,
  FRAME_TYPE.RESET,
  FRAME_TYPE.BIND_PEER,
]);
const OPEN_KINDS: ReadonlySet<number> = new Set(Object.values(OPEN_KIND));
const OPEN_CODES: ReadonlySet<number> = new Set(Object.values(OPEN_CODE));
const RESET_CODES: ReadonlySet<number> = new Set(Object.values(RESET_CODE));
const GOAWAY_CODES: ReadonlySet<number> = new Set(Object.values(GOAWAY_CODE));

/**
 * Incremental decoder of the tunnel byte stream. `push()` may be given any split of the
 * stream; it emits every complete frame, and DATA payload bytes as soon as they arrive.
 * Garbage throws ProtocolError or FrameTooLargeError; the tunnel is then cut off and the
 * decoder is not used again.
 */
export class FrameDecoder {
  readonly #limits: DecoderLimits;
  /** Partial header bytes carried over from the previous push. */
  readonly #head = Buffer.allocUnsafe(FRAME_HEADER_SIZE);
  #headLen = 0;
  #type = 0;
  #streamId = 0;
  /** DATA payload bytes still to come for #streamId. */
  #dataLeft = 0;
  /** A control payload being assembled across pushes. */
  #ctrl: PartialBuffer | null = null;

  constructor(limits: DecoderLimits) {
    this.#limits = limits;
  }

  /** True when the stream is between frames (nothing partial is buffered). */
  get idle(): boolean {
    return this.#headLen === 0 && this.#dataLeft === 0 && this.#ctrl === null;
  }

  push(chunk: Buffer, emit: (frame: Frame) => void): void {
    const n = chunk.length;
    let off = 0;
    while (off < n) {
      if (this.#dataLeft > 0) {
        const take = Math.min(this.#dataLeft, n - off);
        this.#dataLeft -= take;
        emit({ type: "data", streamId: this.#streamId, data: chunk.subarray(off, off + take) });
        off += take;
        continue;
      }
      const ctrl = this.#ctrl;
      if (ctrl !== null) {
        off = ctrl.fill(chunk, off);
        if (ctrl.full) {
          this.#ctrl = null;
          emit(parseControl(this.#type, this.#streamId, ctrl.bytes));
        }
        continue;
      }
      let length: number;
      if (this.#headLen === 0 && n - off >= FRAME_HEADER_SIZE) {
        this.#type = chunk[off]!;
        this.#streamId = chunk.readUInt32BE(off + 1);
        length = chunk.readUInt32BE(off + 5);
        off += FRAME_HEADER_SIZE;
      } else {
        const take = Math.min(FRAME_HEADER_SIZE - this.#headLen, n - off);
        chunk.copy(this.#head, this.#headLen, off, off + take);
        this.#headLen += take;
        off += take;
        if (this.#headLen < FRAME_HEADER_SIZE) return;
        this.#headLen = 0;
        this.#type = this.#head[0]!;
        this.#streamId = this.#head.readUInt32BE(1);
        length = this.#head.readUInt32BE(5);
      }
      this.#checkHeader(length);
      if (this.#type === FRAME_TYPE.DATA) {
        this.#dataLeft = length;
      } else if (n - off >= length) {
        emit(parseControl(this.#type, this.#streamId, chunk.subarray(off, off + length)));
        off += length;
      } else {
        this.#ctrl = new PartialBuffer(Buffer.allocUnsafe(length));
      }
    }
  }

  #checkHeader(length: number): void {
    const type = this.#type;
    if (SESSION_TYPES.has(type)) {
      if (this.#streamId !== 0)
        throw new ProtocolError(`frame type 0x${hex(type)} on stream ${this.#streamId}`);
    } else if (STREAM_TYPES.has(type)) {
      if (this.#streamId === 0) throw new ProtocolError(`frame type 0x${hex(type)} on stream 0`);
    } else {
      throw new ProtocolError(`unknown frame type 0x${hex(type)}`);
    }
    const max = type === FRAME_TYPE.DATA ? this.#limits.maxFramePayload : this.#limits.maxControlPayload;
    if (length > max) {
      throw new FrameTooLargeError(
        `frame type 0x${hex(type)} announces ${length} bytes, the limit is ${max}`,
      );
    }
  }
}

function hex(n: number): string {
  return n.toString(16).padStart(2, "0");
}

function need(p: Buffer, min: number, what: string): void {
  if (p.length < min) throw new ProtocolError(`${what} frame too short (${p.length} bytes)`);
}

function trailingString(p: Buffer, at: number, what: string): string {
  const len = p[at]!;
  if (p.length !== at + 1 + len)
    throw new ProtocolError(`${what} frame length does not match its string length`);
  return p.toString("utf8", at + 1);
}

function json(p: Buffer, what: string): unknown {
  try {
    return JSON.parse(p.toString("utf8"));
  } catch {
    throw new ProtocolError(`${what} is not valid JSON`);
  }
}

function parseControl(type: number, streamId: number, p: Buffer): Frame {
  switch (type) {
    case FRAME_TYPE.HELLO:
      return { type: "hello", body: json(p, "hello") };
    case FRAME_TYPE.WELCOME:
      return { type: "welcome", body: json(p, "welcome") };
    case FRAME_TYPE.OPEN: {
      need(p, 8, "open");
      const kind = p[0]!;
      if (!OPEN_KINDS.has(kind)) throw new ProtocolError(`unknown open kind 0x${hex(kind)}`);
      const host = trailingString(p, 7, "open");
      return {
        type: "open",
        streamId,
        kind: kind as OpenKind,
        port: p.readUInt16BE(1),
        timeoutMs: p.readUInt32BE(3),
        host,
      };
    }
    case FRAME_TYPE.OPEN_RESULT: {
      need(p, 4, "open-result");
      const code = p[0]!;
      if (!OPEN_CODES.has(code)) throw new ProtocolError(`unknown open-result code 0x${hex(code)}`);
      const address = trailingString(p, 3, "open-result");
      return { type: "open-result", streamId, code: code as OpenCode, port: p.readUInt16BE(1), address };
    }
    case FRAME_TYPE.WINDOW_UPDATE:
      if (p.length !== 4) throw new ProtocolError(`window-update frame of ${p.length} bytes`);
      return { type: "window-update", streamId, delta: p.readUInt32BE(0) };
    case FRAME_TYPE.FIN:
      if (p.length !== 0) throw new ProtocolError(`fin frame with ${p.length} payload bytes`);
      return { type: "fin", streamId };
    case FRAME_TYPE.RESET: {
      need(p, 1, "reset");
      const code = p[0]!;
      if (!RESET_CODES.has(code)) throw new ProtocolError(`unknown reset code 0x${hex(code)}`);
      return { type: "reset", streamId, code: code as ResetCode, reason: p.toString("utf8", 1) };
    }
    case FRAME_TYPE.PING:
    case FRAME_TYPE.PONG: {
      if (p.length !== 4) throw new ProtocolError(`ping/pong frame of ${p.length} bytes`);
      const nonce = p.readUInt32BE(0);
      return type === FRAME_TYPE.PING ? { type: "ping", nonce } : { type: "pong", nonce };
    }
    case FRAME_TYPE.GOAWAY: {
      need(p, 1, "goaway");
      const code = p[0]!;
      if (!GOAWAY_CODES.has(code)) throw new ProtocolError(`unknown goaway code 0x${hex(code)}`);
      return { type: "goaway", code: code as GoAwayCode, reason: p.toString("utf8", 1) };
    }
    case FRAME_TYPE.BIND_PEER: {
      need(p, 3, "bind-peer");
      const address = trailingString(p, 2, "bind-peer");
      return { type: "bind-peer", streamId, port: p.readUInt16BE(0), address };
    }
    case FRAME_TYPE.RELAYS:
      return { type: "relays", relays: decodeRelays(p) };
    default:
      throw new ProtocolError(`unknown frame type 0x${hex(type)}`);
  }
}
