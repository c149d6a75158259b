/**
 * Where agents come in: the WebSocket endpoint `/tunnel`. Each connection must say hello
 * within a deadline with a supported version and a valid agent token (matched by its hash);
 * otherwise it gets a GOAWAY with the reason and is closed. Accepted tunnels join the registry.
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
  SUPPORTED_VERSIONS,
  type TunnelLimits,
} from "../../shared/tunnel/constants.js";
import { helloSchema, mergeLimits } from "../../shared/tunnel/handshake.js";
import { MuxSession } from "../../shared/tunnel/mux-session.js";
import type { MuxStream } from "../../shared/tunnel/mux-stream.js";
import { WebSocketTransport } from "../../shared/tunnel/ws-transport.js";
import type { RelayMetrics } from "../admin/metrics.js";
import { hashSecret } from "../admin/secrets.js";
import type { Store } from "../store/store.js";
import type { AgentRegistry, Tunnel } from "./registry.js";

export const TUNNEL_PATH = "/tunnel";

export interface GatewayOptions {
  readonly store: Store;
  readonly registry: AgentRegistry;
  readonly metrics: RelayMetrics;
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
    const remoteAddress = `${req.socket.remoteAddress}:${req.socket.remotePort}`;
    const tunnelId = `tn_${randomBytes(6).toString("hex")}`;
    const log = this.#o.logger.child({ tunnelId, remoteAddress });
    if ("setNoDelay" in socket && typeof socket.setNoDelay === "function") socket.setNoDelay(true);
    const session = new MuxSession(new WebSocketTransport(ws, socket), {
      role: "relay",
      limits: this.#limits,
      timers: this.#o.timers ?? DEFAULT_TIMERS,
      logger: log,
    });
    this.#sessions.add(session);
    session.onBindPeer = this.#o.onBindPeer ?? null;
    let tunnel: Tunnel | null = null;

    const helloTimer = setTimeout(() => {
      this.#o.metrics.tunnelsRejected++;
      log.warn("no hello in time; closing");
      session.close(GOAWAY_CODE.HELLO_TIMEOUT, "no hello received in time");
    }, this.#o.helloTimeoutMs ?? 10_000);

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

    session.onClose = (info) => {
      clearTimeout(helloTimer);
      this.#sessions.delete(session);
      if (tunnel) {
        this.#o.registry.remove(tunnel);
        log.info({ agentId: tunnel.agentId, code: info.code, reason: info.reason }, "tunnel closed");
      }
      if (ws.readyState === ws.OPEN) ws.close(1000);
    };

    session.onHandshake = async (frame) => {
      if (frame.type !== "hello") {
        session.close(GOAWAY_CODE.PROTOCOL_ERROR, `expected hello, got ${frame.type}`);
        return;
      }
      clearTimeout(helloTimer);
      const parsed = helloSchema.safeParse(frame.body);
      if (!parsed.success) {
        this.#o.metrics.tunnelsRejected++;
        const why = parsed.error.issues.map((i) => `${i.path.join(".") || "hello"}: ${i.message}`).join("; ");
        log.warn({ why }, "bad hello");
        session.close(GOAWAY_CODE.PROTOCOL_ERROR, `bad hello: ${why}`);
        return;
      }
      const hello = parsed.data;
      if (!SUPPORTED_VERSIONS.includes(hello.version)) {
        this.#o.metrics.tunnelsRejected++;
        const reason = `tunnel protocol version ${hello.version} is not supported; this relay speaks ${SUPPORTED_VERSIONS.join(", ")}`;
        log.warn({ version: hello.version, agentVersion: hello.agentVersion }, reason);
        session.close(GOAWAY_CODE.UNSUPPORTED_VERSION, reason);
        return;
      }
      const agent = await this.#o.store.findAgentByTokenHash(hashSecret(hello.token));
      if (session.closed) return; // the tunnel went away while the store answered
      if (!agent) {
        this.#o.metrics.tunnelsRejected++;
        log.warn({ agentVersion: hello.agentVersion }, "unknown or revoked agent token");
        session.close(GOAWAY_CODE.AUTH_FAILED, "unknown or revoked agent token");
        return;
      }
      session.sendHandshake({
        type: "welcome",
        body: {
          version: PROTOCOL_VERSION,
          agentId: agent.id,
          location: agent.location,
          limits: this.#limits,
        },
      });
      session.establish(mergeLimits(hello.limits));
      tunnel = {
        id: tunnelId,
        agentId: agent.id,
        agentName: agent.name,
        location: agent.location,
        session,
        connectedAt: new Date(),
        remoteAddress,
        agentVersion: hello.agentVersion,
        capabilities: hello.capabilities,
      };
      this.#o.registry.add(tunnel);
      this.#o.metrics.tunnelsAccepted++;
      log.info(
        { agentId: agent.id, agent: agent.name, location: agent.location, agentVersion: hello.agentVersion },
        "agent tunnel up",
      );
    };
  }
}
