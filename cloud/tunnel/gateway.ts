/**
 * Where agents come in: the WebSocket endpoint `/tunnel`. Each connection must say hello
 * within a deadline with a supported version and a valid agent token (matched by its hash);
 * otherwise it gets a GOAWAY with the reason and is closed. Accepted tunnels join the registry.
 * What happens to tunnels is published on the relay's events.
 *
 * Bounds (README: Security): a connection counts under the tunnel port's pre-authentication
 * guard until its hello is admitted; one hello per connection; a hello with a token no agent
 * holds is answered after the backoff of its source and its token; an agent keeps at most so
 * many tunnels; the relay keeps at most so many streams and pending opens on a tunnel,
 * whatever the agent announced.
 */
import { randomBytes } from "node:crypto";
import type { IncomingMessage } from "node:http";
import type { Duplex } from "node:stream";
import { type WebSocket, WebSocketServer } from "ws";
import { SecondInstanceError } from "../../shared/errors.js";
import type { Logger } from "../../shared/logger.js";
import {
  DEFAULT_LIMITS,
  DEFAULT_TIMERS,
  FRAME_HEADER_SIZE,
  GOAWAY_CODE,
  MAX_ADVERTISED_RELAYS,
  PROTOCOL_VERSION,
  type SessionTimers,
  type TunnelLimits,
} from "../../shared/tunnel/constants.js";
import type { Frame, RelayEntry } from "../../shared/tunnel/frame.js";
import { CAPABILITY, type Hello, mergeLimits } from "../../shared/tunnel/handshake.js";
import { MuxSession, type SessionCloseInfo } from "../../shared/tunnel/mux-session.js";
import type { MuxStream } from "../../shared/tunnel/mux-stream.js";
import type { WindowBudget } from "../../shared/tunnel/window-budget.js";
import { WebSocketTransport } from "../../shared/tunnel/ws-transport.js";
import { hashSecret } from "../admin/secrets.js";
import type { InstanceSeen, RelayEvents } from "../events.js";
import type { RelayBounds } from "../limits/bounds.js";
import type { FailureBackoff } from "../limits/failure-backoff.js";
import type { LimitHits } from "../limits/limit-hits.js";
import { LIMIT } from "../limits/limit-names.js";
import type { PreauthGuard, PreauthSlot } from "../limits/preauth-guard.js";
import { sourceKey } from "../limits/source-key.js";
import type { AgentRecord, Store } from "../store/store.js";
import { authenticateAgent } from "./agent-auth.js";
import { checkHello, helloTimedOut, type TunnelRefusal } from "./hello-check.js";
import { type AgentRegistry, instanceKey, type Tunnel } from "./registry.js";

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
  /** The tunnel port's bounds before a hello is admitted; none in tests that upgrade by hand. */
  readonly preauth?: PreauthGuard | undefined;
  /** Failed hellos, by `source:` and `token:` keys. */
  readonly helloBackoff: FailureBackoff;
  readonly hits: LimitHits;
  /** The budget the tunnels' receive windows take from (the relay's buffer budget); default the process's. */
  readonly windowBudget?: WindowBudget;
  readonly bounds: Pick<
    RelayBounds,
    "tunnelsPerAgent" | "tunnelMaxStreams" | "tunnelMaxPendingOpens" | "authBackoffMaxMs"
  >;
  /** This relay's id in the cluster, named in the welcome. */
  readonly relayId?: string;
  /** The cluster's live relays, for the welcome (cluster/membership.ts); undefined while unknown. */
  readonly relays?: () => readonly RelayEntry[] | undefined;
}

export class TunnelGateway {
  readonly #o: GatewayOptions;
  readonly #limits: TunnelLimits;
  readonly #wss: WebSocketServer;
  readonly #sessions = new Set<MuxSession>();
  /** Established tunnels whose agent follows the relay set (the `relays` capability). */
  readonly #following = new Set<MuxSession>();

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

  /** Sends the relay set to every agent that follows it; agents of older builds get nothing. */
  announceRelays(relays: readonly RelayEntry[]): void {
    const set = relays.slice(0, MAX_ADVERTISED_RELAYS);
    for (const s of this.#following) s.sendRelays(set);
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
      processWindowBudget: this.#o.windowBudget,
    });
    this.#sessions.add(session);
    session.onBindPeer = this.#o.onBindPeer ?? null;
    const slot = this.#o.preauth?.slotOf(req.socket) ?? null;
    const arrival = new Arrival(id, remote, session, log, this.#o, this.#limits, slot, () =>
      this.#following.add(session),
    );
    arrival.source = sourceKey(req.socket.remoteAddress);

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
      this.#following.delete(session);
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
  readonly #slot: PreauthSlot | null;
  /** The agent follows the relay set: from now on it hears its changes. */
  readonly #follows: () => void;
  #tunnel: Tunnel | null = null;
  /** One hello per connection: a second one would be a second guess at a token. */
  #helloSeen = false;
  #tarpit: NodeJS.Timeout | null = null;
  /** The source key of the connection (cloud/limits/source-key.ts). */
  source = "";

  constructor(
    id: string,
    remote: string,
    session: MuxSession,
    log: Logger,
    options: GatewayOptions,
    limits: TunnelLimits,
    slot: PreauthSlot | null,
    follows: () => void,
  ) {
    this.#follows = follows;
    this.#id = id;
    this.#remote = remote;
    this.#session = session;
    this.#log = log;
    this.#o = options;
    this.#limits = limits;
    this.#slot = slot;
    this.#helloTimer = setTimeout(() => this.#refuse(helloTimedOut()), options.helloTimeoutMs ?? 10_000);
  }

  hello(frame: Frame): void {
    clearTimeout(this.#helloTimer);
    if (this.#helloSeen) {
      this.#session.close(GOAWAY_CODE.PROTOCOL_ERROR, "one hello per tunnel");
      return;
    }
    this.#helloSeen = true;
    const checked = checkHello(frame);
    if (!checked.ok) {
      if (checked.refusal.goaway === GOAWAY_CODE.AUTH_FAILED) return this.#refuseToken(checked.refusal, null);
      return this.#refuse(checked.refusal, announcedVersions(frame));
    }
    void this.#admit(checked.value);
  }

  /**
   * A token no agent holds: refused after the backoff of the source and of the token (the
   * right token is admitted at once, whatever the failures before it); the connection keeps its
   * pre-authentication slot until then, even if it hangs up.
   */
  #refuseToken(refusal: TunnelRefusal, token: string | null, details: Record<string, unknown> = {}): void {
    const keys = [
      `source:${this.source}`,
      ...(token === null ? [] : [`token:${hashSecret(token).slice(0, 16)}`]),
    ];
    const delayMs = this.#o.helloBackoff.fail(keys);
    if (delayMs === 0) return this.#refuse(refusal, details);
    this.#slot?.holdUntil(Date.now() + delayMs);
    this.#o.hits.hit(
      LIMIT.AGENT_HELLO_BACKOFF,
      this.source,
      this.#o.bounds.authBackoffMaxMs,
      `tunnel: repeated unknown agent tokens from ${this.source}; answered after ${delayMs} ms`,
    );
    this.#tarpit = setTimeout(() => {
      this.#tarpit = null;
      if (!this.#session.closed) this.#refuse(refusal, details);
    }, delayMs);
  }

  async #admit(hello: Hello): Promise<void> {
    const registry = this.#o.registry;
    const revision = registry.revision;
    const agent = await authenticateAgent(this.#o.store, hello);
    if (this.#session.closed) return;
    if (!agent.ok) return this.#refuseToken(agent.refusal, hello.token, { agentVersion: hello.agentVersion });
    const { id: agentId, name: agentName, location } = agent.value;
    const bounds = this.#o.bounds;
    if (registry.tunnelsOf(agentId) >= bounds.tunnelsPerAgent) {
      const max = bounds.tunnelsPerAgent;
      this.#o.hits.hit(
        LIMIT.TUNNELS_PER_AGENT,
        agentId,
        max,
        `tunnel: agent ${agentName} holds ${max} tunnels; refused`,
      );
      this.#log.warn({ agentId, max }, "agent holds too many tunnels");
      this.#session.close(GOAWAY_CODE.LIMIT_EXCEEDED, `agent holds ${max} tunnels, the relay's limit`);
      return;
    }
    const instance = { remoteAddress: this.#remote, instanceId: hello.instanceId ?? null };
    const others = registry.otherInstances(agentId, instanceKey(instance));
    if (others.length > 0 && this.#secondInstance(agent.value, hello, others)) return;
    const session = this.#session;
    session.sendHandshake({
      type: "welcome",
      body: {
        version: PROTOCOL_VERSION,
        agentId,
        location,
        limits: this.#limits,
        ...(this.#o.relayId === undefined ? {} : { relayId: this.#o.relayId }),
        ...relaysField(this.#o.relays?.()),
      },
    });
    // the agent's announced limits, within the relay's own: a rogue agent that announces a
    // million pending opens does not make the relay queue them
    const peer = mergeLimits(hello.limits);
    const maxStreams = Math.min(peer.maxStreams, bounds.tunnelMaxStreams);
    const maxPendingOpens = Math.min(peer.maxPendingOpens, bounds.tunnelMaxPendingOpens);
    session.establish({ ...peer, maxStreams, maxPendingOpens });
    if (hello.capabilities.includes(CAPABILITY.RELAYS)) this.#follows();
    this.#slot?.admitted();
    const tunnel: Tunnel = {
      id: this.#id,
      agentId,
      agentName,
      location,
      session,
      connectedAt: new Date(),
      remoteAddress: this.#remote,
      agentVersion: hello.agentVersion,
      hostName: hello.hostName ?? null,
      instanceId: hello.instanceId ?? null,
      capabilities: hello.capabilities,
      opens: { pending: 0 },
      maxStreams,
      maxPendingOpens,
    };
    this.#tunnel = tunnel;
    registry.add(tunnel);
    if (registry.revision !== revision) void this.#recheck(agentId, agent.value.tokenHash);
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
        hostName: tunnel.hostName,
        instanceId: tunnel.instanceId,
      });
    }
    session.onRoundTrip = (rttMs) => {
      const rtt = events.tunnelRoundTrip;
      if (rtt.active) rtt.publish({ relayId: rtt.relayId, tunnelId: this.#id, agentId, rttMs });
    };
  }

  /**
   * The hello comes from another instance than the agent's live tunnels: its token is held in
   * two places. Published (audit, a warning line) either way; a single-instance agent's second
   * instance is refused, with SECOND_INSTANCE for an agent that knows the code. True when it was.
   * Checked and registered in one turn of the event loop, so two racing hellos cannot both pass.
   */
  #secondInstance(agent: AgentRecord, hello: Hello, others: readonly Tunnel[]): boolean {
    const refused = agent.singleInstance === true;
    const seen = (t: Tunnel): InstanceSeen => ({
      tunnelId: t.id,
      remote: t.remoteAddress,
      hostName: t.hostName,
      instanceId: t.instanceId,
    });
    const ch = this.#o.events.tunnelSecondInstance;
    if (ch.active) {
      ch.publish({
        relayId: ch.relayId,
        agentId: agent.id,
        agentName: agent.name,
        location: agent.location,
        tunnel: {
          tunnelId: this.#id,
          remote: this.#remote,
          hostName: hello.hostName ?? null,
          instanceId: hello.instanceId ?? null,
        },
        connected: others.map(seen),
        refused,
      });
    }
    const first = others[0]!;
    const where = `${first.hostName ?? "a host that does not say its name"} (${first.remoteAddress}${first.instanceId === null ? "" : `, instance ${first.instanceId}`})`;
    if (!refused) {
      this.#log.warn(
        {
          agentId: agent.id,
          hostName: hello.hostName,
          instanceId: hello.instanceId,
          connected: others.map(seen),
        },
        `agent ${agent.name}: a second instance connects while one is connected from ${where}`,
      );
      return false;
    }
    const error = new SecondInstanceError(
      `agent ${agent.name} is single-instance and already connected from ${where}; this instance is refused until that one leaves`,
    );
    const goaway = hello.instanceId === undefined ? GOAWAY_CODE.LIMIT_EXCEEDED : GOAWAY_CODE.SECOND_INSTANCE;
    this.#refuse(
      { error, goaway },
      { agentId: agent.id, hostName: hello.hostName, instanceId: hello.instanceId },
    );
    return true;
  }

  /**
   * An agent was revoked while this hello's token was looked up: the lookup may have read the
   * agent before its deletion or rotation, whose disconnect then ran before this tunnel joined
   * the registry. Checked again now that it is registered (a later revocation reaches it there).
   */
  async #recheck(agentId: string, tokenHash: string): Promise<void> {
    const now = await this.#o.store.getAgent(agentId);
    if (now?.tokenHash === tokenHash) return;
    this.#log.info({ agentId }, "agent revoked while its hello was checked; closing the tunnel");
    this.#session.close(GOAWAY_CODE.REVOKED, "agent revoked");
  }

  closed(info: SessionCloseInfo): void {
    clearTimeout(this.#helloTimer);
    if (this.#tarpit) clearTimeout(this.#tarpit);
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

/** The welcome's `relays`, when the set is known. */
function relaysField(relays: readonly RelayEntry[] | undefined): { relays?: RelayEntry[] } {
  return relays === undefined ? {} : { relays: relays.slice(0, MAX_ADVERTISED_RELAYS) };
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
