/**
 * The tunnel multiplexer: many streams over one ordered byte transport (a WebSocket).
 * The relay opens streams (odd ids); the agent answers each OPEN with an OPEN_RESULT.
 * Limits are enforced on what the peer sends; a peer that breaks one gets a GOAWAY with
 * the reason and the tunnel is closed, while every other tunnel carries on.
 */
import {
  FlowControlError,
  FrameTooLargeError,
  LimitExceededError,
  ProtocolError,
  TunnelClosedError,
  UnderpassError,
} from "../errors.js";
import type { Logger } from "../logger.js";
import {
  DEFAULT_LIMITS,
  DEFAULT_MAX_QUEUED_CONTROL_BYTES,
  DEFAULT_TIMERS,
  DEFAULT_WINDOW_TUNING,
  GOAWAY_CODE,
  type GoAwayCode,
  OPEN_CODE,
  type OpenKind,
  type ResetCode,
  type SessionTimers,
  type TunnelLimits,
  type WindowTuning,
} from "./constants.js";
import type { Frame, OpenFrame, RelayEntry } from "./frame.js";
import { encodeFrame, FrameDecoder } from "./frame-codec.js";
import type { FrameTransport } from "./frame-transport.js";
import { Heartbeat } from "./heartbeat.js";
import { publishLimit } from "./limit-events.js";
import { MuxStream, type StreamHost } from "./mux-stream.js";
import { describeOpenCode, errorToOpenCode, openCodeToError } from "./open-codes.js";
import { type OpenResult, PendingOpens } from "./pending-opens.js";
import type { WindowContext } from "./receive-window.js";
import { RoundTrip } from "./round-trip.js";
import { SessionWriter } from "./session-writer.js";
import { processWindowBudget, WindowBudget } from "./window-budget.js";

export type { FrameTransport } from "./frame-transport.js";
export type { OpenResult } from "./pending-opens.js";

export interface SessionOptions {
  readonly role: "relay" | "agent";
  /** What this side accepts from the peer. */
  readonly limits?: TunnelLimits;
  readonly timers?: SessionTimers;
  readonly logger: Logger;
  /** Transport bytes above which writers are paused (default 4 MiB). */
  readonly highWaterMark?: number;
  /** DATA payloads up to this size go out in one buffer with their header (one small copy). */
  readonly copyThreshold?: number;
  /**
   * Bytes of control frames (PONG, WINDOW_UPDATE, RESET, OPEN_RESULT, ...) that may wait in
   * user space for the peer to read them; past it the tunnel is cut with GOAWAY
   * `LIMIT_EXCEEDED` (default DEFAULT_MAX_QUEUED_CONTROL_BYTES, control-queue.ts).
   */
  readonly maxQueuedControlBytes?: number;
  /** How receive windows grow and shrink (default DEFAULT_WINDOW_TUNING). */
  readonly windowTuning?: Partial<WindowTuning>;
  /** The budget the tunnel's budget is taken from (default: the process's, window-budget.ts). */
  readonly processWindowBudget?: WindowBudget;
  /** Monotonic clock in ms, for round trips and windows (default performance.now; tests step their own). */
  readonly now?: () => number;
}

export interface SessionCloseInfo {
  readonly code: GoAwayCode;
  readonly reason: string;
  /** True when the peer said GOAWAY or the transport dropped; false when we closed it. */
  readonly byPeer: boolean;
}

export class MuxSession implements StreamHost {
  readonly role: "relay" | "agent";
  readonly limits: TunnelLimits;
  #peerLimits: TunnelLimits = DEFAULT_LIMITS;
  readonly #transport: FrameTransport;
  readonly #decoder: FrameDecoder;
  readonly #log: Logger;
  readonly #out: SessionWriter;
  readonly #streams = new Map<number, MuxStream>();
  readonly #pending = new PendingOpens();
  /** Streams the peer opened that await our accept/reject (agent side). */
  #inboundPending = 0;
  #nextId: number;
  #lastPeerId = 0;
  #established = false;
  #closed = false;
  readonly #heartbeat: Heartbeat;
  #controlOverflows = 0;
  #pingNonce = 0;
  /** When the latest PING left (ms on `#now`); 0 once its PONG came. */
  #pingSentAt = 0;
  readonly #now: () => number;
  readonly #roundTrip = new RoundTrip();
  readonly #sweepMs: number;
  #sweepTimer: NodeJS.Timeout | null = null;
  /** What the receive windows of this tunnel's streams share; its budget is the tunnel's. */
  readonly windows: WindowContext;
  readonly #emit = (frame: Frame): void => this.#onFrame(frame);

  /** Session-level frames before establishment (hello/welcome) go here. */
  onHandshake: ((frame: Frame) => void) | null = null;
  /** A peer OPEN (agent side): accept with `accept()` or refuse with `reject()`. */
  onOpen: ((stream: MuxStream, open: OpenFrame) => void) | null = null;
  /** BIND_PEER on a stream (relay side). */
  onBindPeer: ((stream: MuxStream, address: string, port: number) => void) | null = null;
  /** Fires once when the session ends for any reason. */
  onClose: ((info: SessionCloseInfo) => void) | null = null;
  /** The relay sent the cluster's relay set (agent side, RELAYS frames). */
  onRelays: ((relays: readonly RelayEntry[]) => void) | null = null;
  /** A PONG answered our latest PING after `rttMs` milliseconds. */
  onRoundTrip: ((rttMs: number) => void) | null = null;

  constructor(transport: FrameTransport, options: SessionOptions) {
    this.role = options.role;
    this.limits = options.limits ?? DEFAULT_LIMITS;
    const now = options.now ?? (() => performance.now());
    this.#now = now;
    this.#heartbeat = new Heartbeat(
      options.timers ?? DEFAULT_TIMERS,
      () => this.#ping(),
      (silentMs) => this.#silent(silentMs),
      now,
    );
    const tuning = { ...DEFAULT_WINDOW_TUNING, ...options.windowTuning };
    this.#sweepMs = tuning.sweepIntervalMs;
    this.windows = {
      maxWindow: Math.max(tuning.maxWindow, this.limits.initialWindow),
      budget: new WindowBudget(tuning.tunnelBudget, options.processWindowBudget ?? processWindowBudget),
      roundTripMs: () => this.#roundTripMs(),
      now,
    };
    this.#transport = transport;
    this.#log = options.logger;
    this.#out = new SessionWriter(transport, {
      highWaterMark: options.highWaterMark ?? 4 * 1024 * 1024,
      copyThreshold: options.copyThreshold ?? 16 * 1024,
      maxQueuedControlBytes: options.maxQueuedControlBytes ?? DEFAULT_MAX_QUEUED_CONTROL_BYTES,
    });
    this.#nextId = this.role === "relay" ? 1 : 2;
    this.#decoder = new FrameDecoder(this.limits);
  }

  get closed(): boolean {
    return this.#closed;
  }
  get established(): boolean {
    return this.#established;
  }
  get streamCount(): number {
    return this.#streams.size;
  }
  get peerMaxFrame(): number {
    return this.#peerLimits.maxFramePayload;
  }
  get congested(): boolean {
    return this.#out.congested;
  }
  /** Control bytes queued for the peer and not yet handed to the kernel. */
  get queuedControlBytes(): number {
    return this.#out.queuedControlBytes;
  }
  /** How often `maxQueuedControlBytes` bit (0 or 1: it cuts the tunnel), for metrics. */
  get controlOverflows(): number {
    return this.#controlOverflows;
  }

  /** The tunnel's round-trip time for its windows, in ms (round-trip.ts); 0 before the first PONG. */
  get roundTripMs(): number {
    return this.#roundTrip.leastMs;
  }

  /**
   * The handshake is done: streams may flow, pings start. The windows' first RTT comes from
   * the first stream that checks its growth (#roundTripMs), not from a PING sent now.
   */
  establish(peerLimits: TunnelLimits): void {
    this.#peerLimits = peerLimits;
    this.#established = true;
    this.#heartbeat.start();
    this.#sweepTimer = setInterval(() => this.sweepWindows(), this.#sweepMs);
    this.#sweepTimer.unref();
  }

  /**
   * Streams whose consumer took nothing since the last sweep halve their window's growth (the
   * tunnel's timer calls it every `sweepIntervalMs`; tests call it themselves).
   */
  sweepWindows(): void {
    for (const w of this.windows.budget.holders) w.sweep();
  }

  /** Send the cluster's relay set (relay side, once established). */
  sendRelays(relays: readonly RelayEntry[]): void {
    if (this.#closed || !this.#established) return;
    this.#send({ type: "relays", relays });
  }

  /** Send a hello or welcome (before establishment). */
  sendHandshake(frame: Frame & { type: "hello" | "welcome" }): void {
    this.#out.direct(encodeFrame(frame));
  }

  /** Bytes from the transport, any split. */
  receive(chunk: Buffer): void {
    if (this.#closed) return;
    this.#heartbeat.heard();
    try {
      this.#decoder.push(chunk, this.#emit);
    } catch (err) {
      const e = err instanceof UnderpassError ? err : new ProtocolError(String(err), { cause: err });
      const code =
        e instanceof FrameTooLargeError || e instanceof LimitExceededError
          ? GOAWAY_CODE.LIMIT_EXCEEDED
          : e instanceof FlowControlError
            ? GOAWAY_CODE.FLOW_CONTROL
            : e instanceof ProtocolError
              ? GOAWAY_CODE.PROTOCOL_ERROR
              : GOAWAY_CODE.INTERNAL;
      this.#log.warn({ err: e.message, code: e.code }, "tunnel peer broke the protocol; closing the tunnel");
      this.close(code, e.message);
    }
  }

  /** Open a stream on premises (relay side). Rejects with a coded error. */
  open(kind: OpenKind, host: string, port: number, timeoutMs: number): Promise<OpenResult> {
    if (this.#closed || !this.#established)
      return Promise.reject(new TunnelClosedError("tunnel is not open"));
    if (this.#streams.size >= this.#peerLimits.maxStreams) {
      return Promise.reject(
        new LimitExceededError(`tunnel holds ${this.#streams.size} streams, the agent's limit`),
      );
    }
    if (this.#pending.size >= this.#peerLimits.maxPendingOpens) {
      return Promise.reject(new LimitExceededError(`${this.#pending.size} opens pending, the agent's limit`));
    }
    const id = this.#nextId;
    this.#nextId += 2;
    const stream = new MuxStream(
      id,
      this,
      "opening",
      this.#peerLimits.initialWindow,
      this.limits.initialWindow,
    );
    this.#streams.set(id, stream);
    const result = this.#pending.add(stream, timeoutMs);
    this.#send({ type: "open", streamId: id, kind, host, port, timeoutMs });
    return result;
  }

  /** Agent side: the target is connected (or the BIND listener is up). */
  accept(stream: MuxStream, address: string, port: number): void {
    if (stream.phase !== "opening") return;
    this.#inboundPending--;
    this.#send({ type: "open-result", streamId: stream.id, code: OPEN_CODE.OK, address, port });
    stream.opened();
  }

  /** Agent side: the open failed. */
  reject(stream: MuxStream, err: UnderpassError): void {
    if (stream.phase !== "opening") return;
    this.#inboundPending--;
    this.#send({
      type: "open-result",
      streamId: stream.id,
      code: errorToOpenCode(err),
      address: "",
      port: 0,
    });
    this.#streams.delete(stream.id);
    stream.abort(err, null);
  }

  /** Agent side, BIND streams: the peer that connected to the listener. */
  bindPeer(stream: MuxStream, address: string, port: number): void {
    this.#send({ type: "bind-peer", streamId: stream.id, address, port });
  }

  /** Send GOAWAY, close the transport and reset every stream. Idempotent. */
  close(code: GoAwayCode, reason: string): void {
    this.#goAway(code, reason, false);
  }

  /** The transport closed under us (peer gone, network lost). */
  transportClosed(reason: string): void {
    this.#teardown({ code: GOAWAY_CODE.NORMAL, reason, byPeer: true });
  }

  // ---- StreamHost ------------------------------------------------------------------------

  sendData(streamId: number, data: Buffer): void {
    this.#out.data(streamId, data);
  }

  sendWindowUpdate(streamId: number, delta: number): void {
    this.#send({ type: "window-update", streamId, delta });
  }

  sendFin(streamId: number): void {
    this.#send({ type: "fin", streamId });
  }

  sendReset(streamId: number, code: ResetCode, reason: string): void {
    this.#send({ type: "reset", streamId, code, reason });
  }

  waitForTransport(stream: MuxStream): void {
    this.#out.wait(stream);
  }

  release(stream: MuxStream): void {
    this.#streams.delete(stream.id);
    this.#out.forget(stream);
    this.#pending.take(stream.id)?.reject(new TunnelClosedError("stream closed before it opened"));
  }

  // ---- internals -------------------------------------------------------------------------

  #send(frame: Frame): void {
    if (this.#closed) return;
    if (!this.#out.control(encodeFrame(frame))) this.#controlOverflow(frame.type);
  }

  /** The peer asks for more answers than it reads: cut it before they pile up. */
  #controlOverflow(type: Frame["type"]): void {
    this.#controlOverflows++;
    const bound = this.#out.maxQueuedControlBytes;
    const held = this.#out.queuedControlBytes;
    this.#log.warn(
      {
        limit: "maxQueuedControlBytes",
        bound,
        queuedControlBytes: held,
        bufferedAmount: this.#out.bufferedAmount,
        frame: type,
      },
      "the tunnel peer does not read the control frames it is owed; closing the tunnel",
    );
    publishLimit({ role: this.role, limit: "maxQueuedControlBytes", bound, held });
    this.close(
      GOAWAY_CODE.LIMIT_EXCEEDED,
      `more than ${bound} bytes of control frames wait for the peer to read them`,
    );
  }

  #onFrame(frame: Frame): void {
    // frames behind a GOAWAY, or behind a bound that bit, in the same read
    if (this.#closed) return;
    if (!this.#established) {
      if (frame.type === "hello" || frame.type === "welcome" || frame.type === "goaway") {
        if (frame.type === "goaway") return this.#peerGoAway(frame.code, frame.reason);
        this.onHandshake?.(frame);
        return;
      }
      throw new ProtocolError(`${frame.type} frame before the handshake finished`);
    }
    switch (frame.type) {
      case "data": {
        const s = this.#streams.get(frame.streamId);
        if (!s) return; // a stream we already reset; its data in flight is dropped
        if (!s.receiveData(frame.data)) {
          if (s.readEnded) throw new ProtocolError(`data after fin on stream ${s.id}`);
          throw new FlowControlError(`stream ${s.id} received data beyond its window`);
        }
        return;
      }
      case "window-update":
        this.#streams.get(frame.streamId)?.receiveWindowUpdate(frame.delta);
        return;
      case "fin": {
        const s = this.#streams.get(frame.streamId);
        if (s && !s.receiveFin()) throw new ProtocolError(`second fin on stream ${s.id}`);
        return;
      }
      case "reset": {
        const s = this.#streams.get(frame.streamId);
        if (!s) return;
        this.#pending.take(s.id)?.reject(new TunnelClosedError(`agent reset the open: ${frame.reason}`));
        if (s.phase === "opening" && this.role === "agent") this.#inboundPending--;
        this.#streams.delete(s.id);
        s.abort(new TunnelClosedError(`stream reset by peer: ${frame.reason || "no reason"}`), frame.code);
        return;
      }
      case "open":
        return this.#peerOpen(frame);
      case "open-result":
        return this.#openResult(frame.streamId, frame.code, frame.address, frame.port);
      case "bind-peer": {
        const s = this.#streams.get(frame.streamId);
        if (s) this.onBindPeer?.(s, frame.address, frame.port);
        return;
      }
      case "ping":
        this.#send({ type: "pong", nonce: frame.nonce });
        return;
      case "pong":
        if (frame.nonce === this.#pingNonce && this.#pingSentAt > 0) {
          const now = this.#now();
          const rttMs = now - this.#pingSentAt;
          this.#pingSentAt = 0;
          this.#roundTrip.sample(rttMs, now);
          this.onRoundTrip?.(rttMs);
        }
        return;
      case "goaway":
        return this.#peerGoAway(frame.code, frame.reason);
      case "relays":
        if (this.role !== "agent") throw new ProtocolError("only the relay sends the relay set");
        this.onRelays?.(frame.relays);
        return;
      case "hello":
      case "welcome":
        throw new ProtocolError(`${frame.type} after the handshake`);
      default: {
        const never: never = frame;
        throw new ProtocolError(`unexpected frame ${String(never)}`);
      }
    }
  }

  #peerOpen(frame: OpenFrame): void {
    if (this.role !== "agent") throw new ProtocolError("only the relay opens streams");
    if (frame.streamId % 2 !== 1 || frame.streamId <= this.#lastPeerId) {
      throw new ProtocolError(`open on stream ${frame.streamId}: ids must be odd and increasing`);
    }
    this.#lastPeerId = frame.streamId;
    if (this.#streams.size >= this.limits.maxStreams) {
      throw new LimitExceededError(`more than ${this.limits.maxStreams} streams open`);
    }
    if (this.#inboundPending >= this.limits.maxPendingOpens) {
      throw new LimitExceededError(`more than ${this.limits.maxPendingOpens} opens pending`);
    }
    const stream = new MuxStream(
      frame.streamId,
      this,
      "opening",
      this.#peerLimits.initialWindow,
      this.limits.initialWindow,
    );
    this.#streams.set(stream.id, stream);
    this.#inboundPending++;
    if (!this.onOpen) {
      this.reject(stream, new UnderpassError("this side does not accept streams"));
      return;
    }
    this.onOpen(stream, frame);
  }

  #openResult(
    streamId: number,
    code: (typeof OPEN_CODE)[keyof typeof OPEN_CODE],
    address: string,
    port: number,
  ): void {
    const p = this.#pending.take(streamId);
    if (!p) {
      if (this.#streams.get(streamId)?.phase === "open") {
        throw new ProtocolError(`second open-result on stream ${streamId}`);
      }
      return; // we gave up on it (timeout, cancel) and reset it already
    }
    if (code === OPEN_CODE.OK) {
      p.stream.opened();
      p.resolve({ stream: p.stream, address, port });
    } else {
      this.#streams.delete(streamId);
      p.stream.abort(openCodeToError(code, address || "open failed on the agent"), null);
      p.reject(openCodeToError(code, `agent could not open the target (${describeOpenCode(code)})`));
    }
  }

  #peerGoAway(code: GoAwayCode, reason: string): void {
    this.#log.info({ code, reason }, "tunnel peer said goaway");
    this.#teardown({ code, reason, byPeer: true });
    this.#transport.close(1000, "goaway received");
  }

  /**
   * GOAWAY, then the transport closed (`terminate`: dropped at once, for a peer that went
   * silent and would never answer a close handshake), every stream reset.
   */
  #goAway(code: GoAwayCode, reason: string, terminate: boolean): void {
    if (this.#closed) return;
    try {
      // after what is queued, outside the bound: the last frame, whatever the peer reads
      this.#out.direct(encodeFrame({ type: "goaway", code, reason }));
    } catch {
      // the transport is already gone; the streams are reset below all the same
    }
    this.#teardown({ code, reason, byPeer: false });
    const t = this.#transport;
    if (terminate && t.terminate) t.terminate();
    else t.close(4000 + code, reason.slice(0, 120));
  }

  #ping(): void {
    this.#pingNonce = (this.#pingNonce + 1) >>> 0;
    this.#pingSentAt = this.#now();
    this.#send({ type: "ping", nonce: this.#pingNonce });
  }

  /** The RTT for a window's growth check; a stale one asks for a fresh sample (a BDP ping). */
  #roundTripMs(): number {
    if (this.#pingSentAt === 0 && this.#established && this.#roundTrip.stale(this.#now())) this.#ping();
    return this.#roundTrip.leastMs;
  }

  #silent(silentMs: number): void {
    this.#log.warn({ silentMs }, "nothing heard from the tunnel peer within the ping timeout");
    this.#goAway(GOAWAY_CODE.PING_TIMEOUT, `nothing heard for ${silentMs} ms`, true);
  }

  #teardown(info: SessionCloseInfo): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#heartbeat.stop();
    if (this.#sweepTimer !== null) clearInterval(this.#sweepTimer);
    this.#sweepTimer = null;
    const err = new TunnelClosedError(`tunnel closed: ${info.reason || "connection lost"}`);
    this.#pending.rejectAll(err);
    const streams = [...this.#streams.values()];
    this.#streams.clear();
    this.#out.forgetAll();
    for (const s of streams) s.abort(err, null);
    this.onClose?.(info);
  }
}
