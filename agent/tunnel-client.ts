/**
 * One outbound tunnel of the agent: connect, hello, heartbeat (the session's pings), and when
 * the tunnel drops, reconnect forever with capped exponential backoff and jitter. What an OPEN
 * from the relay leads to is open-handler.ts.
 */
import type { Agent, IncomingMessage } from "node:http";
import type { Socket } from "node:net";
import type { TLSSocket } from "node:tls";
import { WebSocket } from "ws";
import { SecondInstanceError, UnderpassError } from "../shared/errors.js";
import type { Logger } from "../shared/logger.js";
import {
  DEFAULT_LIMITS,
  DEFAULT_TIMERS,
  FRAME_HEADER_SIZE,
  GOAWAY_CODE,
  PROTOCOL_VERSION,
  type SessionTimers,
  type TunnelLimits,
} from "../shared/tunnel/constants.js";
import type { Frame, RelayEntry } from "../shared/tunnel/frame.js";
import { CAPABILITY, mergeLimits, welcomeSchema } from "../shared/tunnel/handshake.js";
import { MuxSession, type SessionCloseInfo } from "../shared/tunnel/mux-session.js";
import type { WsMasking } from "../shared/tunnel/ws-mask.js";
import { WebSocketTransport } from "../shared/tunnel/ws-transport.js";
import { VERSION } from "../shared/version.js";
import { Backoff, type BackoffOptions, DEFAULT_BACKOFF } from "./backoff.js";
import { type ProxySettings, proxyAgentFor } from "./http-proxy.js";
import { type OpenSettings, serveOpen } from "./open-handler.js";
import { checkPinnedCertificate, type RelayPins } from "./relay-pin.js";

export interface TunnelClientOptions extends OpenSettings {
  readonly relayUrl: string;
  readonly token: string;
  /** PEM of a CA to trust for wss. */
  readonly ca?: Buffer | undefined;
  /**
   * SHA-256 fingerprints the relay's wss certificate must have (relay-pin.ts). Without `ca`
   * they replace CA validation (a self-signed certificate is fine); with it, both must hold.
   */
  readonly pins?: RelayPins | undefined;
  readonly limits?: TunnelLimits;
  readonly timers?: SessionTimers;
  readonly backoff?: BackoffOptions;
  /**
   * Bound on the WebSocket upgrade, in ms (default 10 s); a proxy's answer to the CONNECT
   * before it has the same bound.
   */
  readonly handshakeTimeoutMs?: number;
  /**
   * How long the agent waits for the relay's WELCOME after its HELLO, in ms (default 10 s, the
   * relay's own hello timeout). A relay that stays silent is left, and dialled again.
   */
  readonly welcomeTimeoutMs?: number;
  /** The HTTP CONNECT proxy towards the relay (HTTPS_PROXY, NO_PROXY); direct when unset. */
  readonly proxy?: ProxySettings | undefined;
  /**
   * WebSocket masking keys (RFC 6455 §5.3): fresh random ones (default), or the all-zero key,
   * for a `wss` tunnel only (UNDERPASS_WS_MASK=zero).
   */
  readonly wsMasking?: WsMasking | undefined;
  /**
   * Who this agent is, sent in the hello so that the relay tells two instances holding one
   * token apart: the host's name and a random id of the agent process (agent.ts draws it).
   */
  readonly identity?: AgentIdentity | undefined;
}

export interface AgentIdentity {
  /** `os.hostname()`. */
  readonly hostName: string;
  /** Random, drawn once per agent process; every tunnel of the process sends the same. */
  readonly instanceId: string;
}

export type TunnelState = "connecting" | "up" | "down" | "stopped";

/** Default bound on the WebSocket upgrade, in ms (README, timers); a proxy's CONNECT gets the same. */
const DEFAULT_HANDSHAKE_TIMEOUT_MS = 10_000;
/** Default wait for the WELCOME, in ms: the relay's hello timeout (README, timers). */
const DEFAULT_WELCOME_TIMEOUT_MS = 10_000;

/** The all-zero key, for what `ws` sends itself (close, pong) when UNDERPASS_WS_MASK=zero. */
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
  /** The relay the tunnel reaches, as its welcome named it (null before, or from an older relay). */
  relayId: string | null = null;
  /** The cluster's live relays as this relay last told them; null while it told none. */
  relays: readonly RelayEntry[] | null = null;
  /** Called on every state change. */
  onState: ((state: TunnelState) => void) | null = null;
  /** Called when the relay sends a new relay set. */
  onRelays: (() => void) | null = null;

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
    const backoff = new Backoff(this.#o.backoff ?? DEFAULT_BACKOFF);
    while (!this.#stopped) {
      const wasUp = await this.#connectOnce();
      if (this.#stopped) break;
      if (wasUp) backoff.reset();
      const delay = backoff.next();
      this.#log.info({ delayMs: delay, attempt: backoff.attempt }, "reconnecting to the relay");
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
  async #connectOnce(): Promise<boolean> {
    this.#setState("connecting");
    const handshakeMs = this.#o.handshakeTimeoutMs ?? DEFAULT_HANDSHAKE_TIMEOUT_MS;
    let agent: Agent | undefined;
    try {
      agent = await proxyAgentFor(this.#o.proxy, this.#o.relayUrl, handshakeMs);
    } catch (err) {
      // the proxy's module would not load: said, and tried again after the backoff like any failure
      this.#log.warn({ err: String(err), url: this.#o.relayUrl }, "tunnel connection failed");
      return false;
    }
    // stopped while the proxy's module loaded: there is no connection to end
    if (this.#stopped) return false;
    return new Promise<boolean>((resolve) => {
      let established = false;
      /** The certificate was refused: said already, the abort that follows is not news. */
      let refused = false;
      let socket: Socket | null = null;
      const pins = this.#o.relayUrl.startsWith("wss://") ? this.#o.pins : undefined;
      const ws = new WebSocket(this.#o.relayUrl, {
        perMessageDeflate: false,
        maxPayload: this.#limits.maxFramePayload + FRAME_HEADER_SIZE + 64 * 1024,
        handshakeTimeout: handshakeMs,
        ...(this.#o.wsMasking === "zero" ? { generateMask: zeroMask } : {}),
        ca: this.#o.ca,
        // a pin without a CA stands instead of CA validation: the certificate is checked below
        ...(pins !== undefined && this.#o.ca === undefined ? { rejectUnauthorized: false } : {}),
        ...(agent ? { agent } : {}),
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
        if (pins !== undefined && !this.#pinned(res.socket as TLSSocket, pins)) {
          refused = true;
          ws.terminate();
        }
      });
      ws.on("open", () => {
        const transport = new WebSocketTransport(ws, socket, { masking: this.#o.wsMasking ?? "random" });
        const opened = new MuxSession(transport, {
          role: "agent",
          limits: this.#limits,
          timers: this.#o.timers ?? DEFAULT_TIMERS,
          logger: this.#log,
        });
        session = this.#session = opened;
        const welcomeMs = this.#o.welcomeTimeoutMs ?? DEFAULT_WELCOME_TIMEOUT_MS;
        const welcomeTimer = setTimeout(() => {
          this.#log.warn(
            { timeoutMs: welcomeMs, url: this.#o.relayUrl },
            "the relay did not answer the hello",
          );
          opened.close(GOAWAY_CODE.HELLO_TIMEOUT, `no welcome within ${welcomeMs} ms`);
        }, welcomeMs);
        opened.onHandshake = (frame) => {
          clearTimeout(welcomeTimer);
          established = this.#welcome(opened, frame);
        };
        opened.onOpen = (stream, open) => void serveOpen(opened, stream, open, this.#o);
        opened.onClose = (info) => {
          clearTimeout(welcomeTimer);
          this.#closed(info, established);
        };
        opened.sendHandshake({
          type: "hello",
          body: {
            version: PROTOCOL_VERSION,
            token: this.#o.token,
            agentVersion: VERSION,
            capabilities: [CAPABILITY.CONNECT, CAPABILITY.BIND, CAPABILITY.RELAYS],
            limits: this.#limits,
            ...(this.#o.identity === undefined
              ? {}
              : { hostName: this.#o.identity.hostName, instanceId: this.#o.identity.instanceId }),
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
        if (refused) return;
        const code = err instanceof UnderpassError ? err.code : undefined;
        this.#log.warn({ err: err.message, code, url: this.#o.relayUrl }, "tunnel connection failed");
      });
      ws.on("close", (code, reason) => {
        session?.transportClosed(`websocket closed (${code} ${reason.toString()})`);
        finish();
      });
    });
  }

  /**
   * The relay's certificate against the pins, before any hello (and token) is sent; a mismatch
   * is logged with the fingerprint seen, kept as the last refusal, and dialled again later.
   */
  #pinned(socket: TLSSocket, pins: RelayPins): boolean {
    try {
      checkPinnedCertificate(socket, pins, this.#o.relayUrl);
      return true;
    } catch (err) {
      const e = err instanceof UnderpassError ? err : new UnderpassError(String(err));
      this.lastRefusal = e.message;
      this.#log.error(
        { err: e.message, code: e.code, url: this.#o.relayUrl },
        "the relay's certificate is not the pinned one",
      );
      return false;
    }
  }

  /** The relay's answer to the hello; true when the tunnel is up. */
  #welcome(session: MuxSession, frame: Frame): boolean {
    if (frame.type !== "welcome") {
      session.close(GOAWAY_CODE.PROTOCOL_ERROR, `expected welcome, got ${frame.type}`);
      return false;
    }
    const w = welcomeSchema.safeParse(frame.body);
    if (!w.success) {
      session.close(GOAWAY_CODE.PROTOCOL_ERROR, "bad welcome");
      return false;
    }
    this.lastRefusal = null;
    this.agentId = w.data.agentId;
    this.location = w.data.location;
    this.relayId = w.data.relayId ?? null;
    this.relays = w.data.relays ?? null;
    session.onRelays = (relays) => {
      this.relays = relays;
      this.onRelays?.();
    };
    session.establish(mergeLimits(w.data.limits));
    this.#setState("up");
    this.#log.info({ agentId: w.data.agentId, location: w.data.location }, "tunnel up");
    return true;
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
    } else if (info.byPeer && info.code === GOAWAY_CODE.SECOND_INSTANCE) {
      // another process holds this single-instance agent's token: wait and try again, so
      // that this one takes over once that one leaves
      this.lastRefusal = info.reason;
      this.#log.error(
        { code: SecondInstanceError.spec.code, goaway: info.code, reason: info.reason },
        "the relay refused this agent: another instance of it is connected",
      );
    } else if (established) {
      this.#log.warn({ code: info.code, reason: info.reason, byPeer: info.byPeer }, "tunnel down");
    }
  }
}
