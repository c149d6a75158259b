/**
 * One outbound tunnel of the agent: connect, hello, serve OPENs, and when the tunnel drops,
 * reconnect forever with capped exponential backoff and jitter.
 */
import type { IncomingMessage } from "node:http";
import type { Socket } from "node:net";
import { WebSocket } from "ws";
import { toUnderpassError, UnsupportedCommandError } from "../shared/errors.js";
import type { Logger } from "../shared/logger.js";
import { unmapIPv4 } from "../shared/net/host.js";
import { pipeSocketStream } from "../shared/net/pipe.js";
import {
  DEFAULT_LIMITS,
  DEFAULT_TIMERS,
  FRAME_HEADER_SIZE,
  GOAWAY_CODE,
  OPEN_KIND,
  PROTOCOL_VERSION,
  RESET_CODE,
  type SessionTimers,
  type TunnelLimits,
} from "../shared/tunnel/constants.js";
import type { OpenFrame } from "../shared/tunnel/frame.js";
import { CAPABILITY, mergeLimits, welcomeSchema } from "../shared/tunnel/handshake.js";
import { MuxSession, type SessionCloseInfo } from "../shared/tunnel/mux-session.js";
import type { MuxStream } from "../shared/tunnel/mux-stream.js";
import { WebSocketTransport } from "../shared/tunnel/ws-transport.js";
import { VERSION } from "../shared/version.js";
import { type BackoffOptions, backoffDelay, DEFAULT_BACKOFF } from "./backoff.js";
import { type BindSettings, listenForPeer, localAddressTowards, peerAddresses } from "./bind-listener.js";
import { dial } from "./dialer.js";
import type { Policy } from "./policy.js";

export interface TunnelClientOptions {
  readonly relayUrl: string;
  readonly token: string;
  readonly policy: Policy;
  readonly logger: Logger;
  /** PEM of a CA to trust for wss. */
  readonly ca?: Buffer | undefined;
  /** Upper bound for any dial, in ms, whatever the relay asks. */
  readonly maxDialTimeoutMs?: number;
  readonly limits?: TunnelLimits;
  readonly timers?: SessionTimers;
  readonly backoff?: BackoffOptions;
  /** Extra options for the WebSocket (an HTTP CONNECT proxy's `createConnection`). */
  readonly wsOptions?: Record<string, unknown>;
  /** Where BIND listeners (FTP active mode) listen; BIND is served with defaults when unset. */
  readonly bind?: BindSettings;
}

const DEFAULT_BIND: BindSettings = { maxWaitMs: 120_000 };

export type TunnelState = "connecting" | "up" | "down" | "stopped";

/** All-zero mask: RFC 6455 masking protects browsers' intermediaries, not an agent; ws then skips a copy. */
function zeroMask(mask: Buffer): void {
  mask.fill(0);
}

export class TunnelClient {
  readonly #o: TunnelClientOptions;
  readonly #log: Logger;
  readonly #limits: TunnelLimits;
  #state: TunnelState = "down";
  #stopped = false;
  #ws: WebSocket | null = null;
  #session: MuxSession | null = null;
  #wake: (() => void) | null = null;
  #loop: Promise<void> | null = null;
  /** Last refusal by the relay (auth, version), for status and logs. */
  lastRefusal: string | null = null;
  agentId: string | null = null;
  location: string | null = null;
  /** Called on every state change. */
  onState: ((state: TunnelState) => void) | null = null;

  constructor(options: TunnelClientOptions) {
    this.#o = options;
    this.#log = options.logger;
    this.#limits = options.limits ?? DEFAULT_LIMITS;
  }

  get state(): TunnelState {
    return this.#state;
  }
  get session(): MuxSession | null {
    return this.#session;
  }

  start(): void {
    this.#loop ??= this.#run();
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    this.#session?.close(GOAWAY_CODE.NORMAL, "agent shutting down");
    this.#ws?.terminate();
    this.#wake?.();
    await this.#loop;
    this.#setState("stopped");
  }

  #setState(s: TunnelState): void {
    if (this.#state === s) return;
    this.#state = s;
    this.onState?.(s);
  }

  async #run(): Promise<void> {
    let attempt = 0;
    while (!this.#stopped) {
      const wasUp = await this.#connectOnce();
      if (this.#stopped) break;
      if (wasUp) attempt = 0;
      const delay = backoffDelay(attempt++, this.#o.backoff ?? DEFAULT_BACKOFF);
      this.#log.info({ delayMs: delay, attempt }, "reconnecting to the relay");
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, delay);
        this.#wake = () => {
          clearTimeout(t);
          resolve();
        };
      });
      this.#wake = null;
    }
  }

  /** One connection's life; resolves when it ends, with whether it got established. */
  #connectOnce(): Promise<boolean> {
    this.#setState("connecting");
    return new Promise<boolean>((resolve) => {
      let established = false;
      let socket: Socket | null = null;
      const ws = new WebSocket(this.#o.relayUrl, {
        perMessageDeflate: false,
        maxPayload: this.#limits.maxFramePayload + FRAME_HEADER_SIZE + 64 * 1024,
        handshakeTimeout: 10_000,
        generateMask: zeroMask,
        ca: this.#o.ca,
        ...this.#o.wsOptions,
      });
      this.#ws = ws;
      let session: MuxSession | null = null;
      const finish = (): void => {
        this.#ws = null;
        this.#session = null;
        this.#setState(this.#stopped ? "stopped" : "down");
        resolve(established);
      };

      ws.on("upgrade", (res: IncomingMessage) => {
        socket = res.socket as Socket;
        socket.setNoDelay(true);
      });
      ws.on("open", () => {
        session = new MuxSession(new WebSocketTransport(ws, socket), {
          role: "agent",
          limits: this.#limits,
          timers: this.#o.timers ?? DEFAULT_TIMERS,
          logger: this.#log,
        });
        this.#session = session;
        session.onHandshake = (frame) => {
          if (frame.type !== "welcome") {
            session?.close(GOAWAY_CODE.PROTOCOL_ERROR, `expected welcome, got ${frame.type}`);
            return;
          }
          const w = welcomeSchema.safeParse(frame.body);
          if (!w.success) {
            session?.close(GOAWAY_CODE.PROTOCOL_ERROR, "bad welcome");
            return;
          }
          established = true;
          this.lastRefusal = null;
          this.agentId = w.data.agentId;
          this.location = w.data.location;
          session?.establish(mergeLimits(w.data.limits));
          this.#setState("up");
          this.#log.info({ agentId: w.data.agentId, location: w.data.location }, "tunnel up");
        };
        session.onOpen = (stream, open) => void this.#serveOpen(session!, stream, open);
        session.onClose = (info) => this.#closed(info, established);
        session.sendHandshake({
          type: "hello",
          body: {
            version: PROTOCOL_VERSION,
            token: this.#o.token,
            agentVersion: VERSION,
            capabilities: [CAPABILITY.CONNECT, CAPABILITY.BIND],
            limits: this.#limits,
          },
        });
      });
      ws.on("message", (data: Buffer, isBinary: boolean) => {
        if (isBinary) session?.receive(data);
        else session?.close(GOAWAY_CODE.PROTOCOL_ERROR, "text message");
      });
      ws.on("unexpected-response", (_req, res) => {
        this.#log.warn({ status: res.statusCode }, "relay answered the upgrade with HTTP status");
        ws.terminate();
      });
      ws.on("error", (err) => {
        this.#log.warn({ err: err.message, url: this.#o.relayUrl }, "tunnel connection failed");
      });
      ws.on("close", (code, reason) => {
        session?.transportClosed(`websocket closed (${code} ${reason.toString()})`);
        finish();
      });
    });
  }

  #closed(info: SessionCloseInfo, established: boolean): void {
    if (
      info.byPeer &&
      (info.code === GOAWAY_CODE.AUTH_FAILED ||
        info.code === GOAWAY_CODE.UNSUPPORTED_VERSION ||
        info.code === GOAWAY_CODE.REVOKED)
    ) {
      this.lastRefusal = info.reason;
      this.#log.error({ code: info.code, reason: info.reason }, "the relay refused this agent");
    } else if (established) {
      this.#log.warn({ code: info.code, reason: info.reason, byPeer: info.byPeer }, "tunnel down");
    }
  }

  async #serveOpen(session: MuxSession, stream: MuxStream, open: OpenFrame): Promise<void> {
    const log = this.#log.child({ streamId: stream.id, target: `${open.host}:${open.port}` });
    try {
      const decision = await this.#o.policy.authorize(open.host, open.port);
      if (!decision.allowed) {
        log.warn({ reason: decision.reason }, "local policy refuses the target");
        session.reject(stream, decision.error);
        return;
      }
      if (open.kind === OPEN_KIND.BIND) {
        await this.#serveBind(session, stream, open, decision.dialHost, log);
        return;
      }
      if (open.kind !== OPEN_KIND.CONNECT) {
        session.reject(stream, new UnsupportedCommandError(`open kind ${open.kind} is not served`));
        return;
      }
      const timeoutMs = Math.min(open.timeoutMs || 10_000, this.#o.maxDialTimeoutMs ?? 30_000);
      const socket = await dial(decision.dialHost, open.port, timeoutMs);
      if (stream.phase === "closed" || session.closed) {
        socket.destroy();
        return;
      }
      session.accept(stream, socket.localAddress ?? "", socket.localPort ?? 0);
      pipeSocketStream(socket, stream);
      log.debug("target connected");
    } catch (err) {
      const e = toUnderpassError(err);
      log.info({ code: e.code, err: e.message }, "open failed");
      session.reject(stream, e);
    }
  }

  /**
   * BIND: listen where `open.host` (the FTP server) can connect, tell the relay where, and
   * splice the one expected connection to the stream. Only that host may connect.
   */
  async #serveBind(
    session: MuxSession,
    stream: MuxStream,
    open: OpenFrame,
    dialHost: string,
    log: Logger,
  ): Promise<void> {
    const settings = this.#o.bind ?? DEFAULT_BIND;
    const gone = (): boolean => stream.phase === "closed" || session.closed;
    const address = settings.address ?? (await localAddressTowards(dialHost));
    const listener = await listenForPeer({
      peers: await peerAddresses(open.host, dialHost),
      address,
      ports: settings.ports,
      waitMs: Math.min(open.timeoutMs || settings.maxWaitMs, settings.maxWaitMs),
      log,
    });
    if (gone()) {
      listener.close();
      return;
    }
    // until the peer comes, the relay has nothing to say on this stream but a reset
    stream.attach({
      onData: () => stream.reset(RESET_CODE.INTERNAL, "data before the BIND peer connected"),
      onEnd: () => listener.close(),
      onReset: () => listener.close(),
      onDrain: () => {},
    });
    session.accept(stream, listener.address, listener.port);
    log.debug({ listen: `${listener.address}:${listener.port}` }, "BIND listening");
    let peer: Socket;
    try {
      peer = await listener.accepted;
    } catch (err) {
      const e = toUnderpassError(err);
      log.info({ err: e.message }, "BIND ended without a peer");
      stream.reset(RESET_CODE.TIMEOUT, e.message);
      return;
    }
    if (gone()) {
      peer.destroy();
      return;
    }
    session.bindPeer(stream, unmapIPv4(peer.remoteAddress ?? ""), peer.remotePort ?? 0);
    pipeSocketStream(peer, stream);
    peer.resume();
    log.debug({ peer: `${peer.remoteAddress}:${peer.remotePort}` }, "BIND peer connected");
  }
}
