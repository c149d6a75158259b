/**
 * Where agents come in: the WebSocket endpoint `/tunnel`. Each connection must say hello
 * within a deadline with a supported version and a valid agent token (matched by its hash);
 * otherwise it gets a GOAWAY with the reason and is closed. Accepted tunnels join the registry.
 * What happens to tunnels is published on the relay's events.
 */
import { randomBytes } from "node:crypto";
import type { IncomingMessage } from "node:http";
import type { Duplex } from "node:stream";
import { type WebSocket, WebSocketServer } from "ws";
import type { Logger } from "../../shared/logger.js";
import {
  DEFAULT_LIMITS,
  DEFAULT_TIMERS,
  FRAME_HEADER_SIZE,
  GOAWAY_CODE,
  PROTOCOL_VERSION,
  type SessionTimers,
  type TunnelLimits,
} from "../../shared/tunnel/constants.js";
import type { Frame } from "../../shared/tunnel/frame.js";
import { type Hello, mergeLimits } from "../../shared/tunnel/handshake.js";
import { MuxSession, type SessionCloseInfo } from "../../shared/tunnel/mux-session.js";
import type { MuxStream } from "../../shared/tunnel/mux-stream.js";
import { WebSocketTransport } from "../../shared/tunnel/ws-transport.js";
import type { RelayEvents } from "../events.js";
import type { Store } from "../store/store.js";
import { authenticateAgent } from "./agent-auth.js";
import { checkHello, helloTimedOut, type TunnelRefusal } from "./hello-check.js";
import type { AgentRegistry, Tunnel } from "./registry.js";

export const TUNNEL_PATH = "/tunnel";

export interface GatewayOptions {
  readonly store: Store;
  readonly registry: AgentRegistry;
  readonly events: RelayEvents;
  readonly logger: Logger;
  readonly limits?: TunnelLimits;
  readonly timers?: SessionTimers;
  /** An agent must say hello within this, in ms. */
  readonly helloTimeoutMs?: number;
  /** Where BIND_PEER frames go (the on-premise peer of a BIND connected). */
  readonly onBindPeer?: (stream: MuxStream, address: string, port: number) => void;
}

export class TunnelGateway {
  readonly #o: GatewayOptions;
  readonly #limits: TunnelLimits;
  readonly #wss: WebSocketServer;
  readonly #sessions = new Set<MuxSession>();

  constructor(options: GatewayOptions) {
    this.#o = options;
    this.#limits = options.limits ?? DEFAULT_LIMITS;
    this.#wss = new WebSocketServer({
      noServer: true,
      perMessageDeflate: false,
      clientTracking: false,
      // one DATA payload, or one control frame, per message
      maxPayload: this.#limits.maxFramePayload + FRAME_HEADER_SIZE + 64 * 1024,
    });
  }

  /** Hook for the HTTP server's 'upgrade' event. */
  handleUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer): void {
    const path = (req.url ?? "").split("?")[0];
    if (path !== TUNNEL_PATH) {
      socket.end("HTTP/1.1 404 Not Found\r\nConnection: close\r\nContent-Length: 0\r\n\r\n");
      return;
    }
    this.#wss.handleUpgrade(req, socket, head, (ws) => this.#accept(ws, socket, req));
  }

  /** Close every tunnel with a GOAWAY. */
  close(reason: string): void {
    for (const s of [...this.#sessions]) s.close(GOAWAY_CODE.NORMAL, reason);
    this.#wss.close();
  }

  #accept(ws: WebSocket, socket: Duplex, req: IncomingMessage): void {
    const remote = `${req.socket.remoteAddress}:${req.socket.remotePort}`;
    const id = `tn_${randomBytes(6).toString("hex")}`;
    const log = this.#o.logger.child({ tunnelId: id, remoteAddress: remote });
    if ("setNoDelay" in socket && typeof socket.setNoDelay === "function") socket.setNoDelay(true);
    const session = new MuxSession(new WebSocketTransport(ws, socket), {
      role: "relay",
      limits: this.#limits,
      timers: this.#o.timers ?? DEFAULT_TIMERS,
      logger: log,
    });
    this.#sessions.add(session);
    session.onBindPeer = this.#o.onBindPeer ?? null;
    const arrival = new Arrival(id, remote, session, log, this.#o, this.#limits);

    ws.on("message", (data: Buffer, isBinary: boolean) => {
      if (!isBinary) {
        session.close(GOAWAY_CODE.PROTOCOL_ERROR, "text messages are not part of the tunnel protocol");
        return;
      }
      session.receive(data);
    });
    ws.on("close", (code, reason) => {
      session.transportClosed(`websocket closed (${code}${reason.length ? ` ${reason.toString()}` : ""})`);
    });
    ws.on("error", (err) => {
      log.warn({ err: err.message }, "tunnel websocket error");
      session.transportClosed(err.message);
    });
    session.onHandshake = (frame) => arrival.hello(frame);
    session.onClose = (info) => {
      this.#sessions.delete(session);
      arrival.closed(info);
      // the sender of a GOAWAY closes with 4000 + its code (the session does that right after
      // this); only a tunnel that went away under us is closed here, plainly
      if (info.byPeer && ws.readyState === ws.OPEN) ws.close(1000);
    };
  }
}

/** One incoming tunnel from its upgrade to its close: hello, admission, registration. */
class Arrival {
  readonly #id: string;
  readonly #remote: string;
  readonly #session: MuxSession;
  readonly #log: Logger;
  readonly #o: GatewayOptions;
  readonly #limits: TunnelLimits;
  readonly #helloTimer: NodeJS.Timeout;
  #tunnel: Tunnel | null = null;

  constructor(
    id: string,
    remote: string,
    session: MuxSession,
    log: Logger,
    options: GatewayOptions,
    limits: TunnelLimits,
  ) {
    this.#id = id;
    this.#remote = remote;
    this.#session = session;
    this.#log = log;
    this.#o = options;
    this.#limits = limits;
    this.#helloTimer = setTimeout(() => this.#refuse(helloTimedOut()), options.helloTimeoutMs ?? 10_000);
  }

  hello(frame: Frame): void {
    clearTimeout(this.#helloTimer);
    const checked = checkHello(frame);
    if (!checked.ok) return this.#refuse(checked.refusal, announcedVersions(frame));
    void this.#admit(checked.value);
  }

  async #admit(hello: Hello): Promise<void> {
    const agent = await authenticateAgent(this.#o.store, hello);
    if (this.#session.closed) return;
    if (!agent.ok) return this.#refuse(agent.refusal, { agentVersion: hello.agentVersion });
    const { id: agentId, name: agentName, location } = agent.value;
    const session = this.#session;
    session.sendHandshake({
      type: "welcome",
      body: { version: PROTOCOL_VERSION, agentId, location, limits: this.#limits },
    });
    session.establish(mergeLimits(hello.limits));
    const tunnel: Tunnel = {
      id: this.#id,
      agentId,
      agentName,
      location,
      session,
      connectedAt: new Date(),
      remoteAddress: this.#remote,
      agentVersion: hello.agentVersion,
      capabilities: hello.capabilities,
    };
    this.#tunnel = tunnel;
    this.#o.registry.add(tunnel);
    this.#log.info(
      { agentId, agent: agentName, location, agentVersion: hello.agentVersion },
      "agent tunnel up",
    );
    const events = this.#o.events;
    const up = events.tunnelConnected;
    if (up.active) {
      up.publish({
        relayId: up.relayId,
        tunnelId: this.#id,
        agentId,
        agentName,
        location,
        remote: this.#remote,
        agentVersion: hello.agentVersion,
      });
    }
    session.onRoundTrip = (rttMs) => {
      const rtt = events.tunnelRoundTrip;
      if (rtt.active) rtt.publish({ relayId: rtt.relayId, tunnelId: this.#id, agentId, rttMs });
    };
  }

  closed(info: SessionCloseInfo): void {
    clearTimeout(this.#helloTimer);
    const tunnel = this.#tunnel;
    if (!tunnel) return;
    this.#o.registry.remove(tunnel);
    this.#log.info({ agentId: tunnel.agentId, code: info.code, reason: info.reason }, "tunnel closed");
    const gone = this.#o.events.tunnelDisconnected;
    if (gone.active) {
      gone.publish({
        relayId: gone.relayId,
        tunnelId: this.#id,
        agentId: tunnel.agentId,
        location: tunnel.location,
        goaway: info.code,
        reason: info.reason,
        byPeer: info.byPeer,
        durationMs: Date.now() - tunnel.connectedAt.getTime(),
      });
    }
  }

  #refuse(refusal: TunnelRefusal, details: Record<string, unknown> = {}): void {
    const { error, goaway } = refusal;
    const rejected = this.#o.events.tunnelRejected;
    if (rejected.active) {
      rejected.publish({
        relayId: rejected.relayId,
        tunnelId: this.#id,
        remote: this.#remote,
        code: error.code,
        goaway,
        reason: error.message,
      });
    }
    this.#log.warn({ code: error.code, ...details }, error.message);
    this.#session.close(goaway, error.message);
  }
}

/** The versions a refused hello announced, for the log: only what has the expected type and size. */
function announcedVersions(frame: Frame): Record<string, unknown> {
  if (frame.type !== "hello" || typeof frame.body !== "object" || frame.body === null) return {};
  const { version, agentVersion } = frame.body as Record<string, unknown>;
  return {
    ...(typeof version === "number" ? { version } : {}),
    ...(typeof agentVersion === "string" && agentVersion.length <= 64 ? { agentVersion } : {}),
  };
}
