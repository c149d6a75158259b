/**
 * The relay's SOCKS5 endpoint (RFC 1928, RFC 1929). A CONNECT is checked against the client's
 * location, sent to an agent of that location, and answered with success only after the agent
 * connected to the internal target; the target's first bytes follow the reply at once.
 */
import { createServer, type Server, type Socket } from "node:net";
import {
  AuthError,
  NoAgentError,
  NotAllowedError,
  SocksHandshakeError,
  toUnderpassError,
  type UnderpassError,
  UnsupportedAddressTypeError,
  UnsupportedCommandError,
} from "../shared/errors.js";
import type { Logger } from "../shared/logger.js";
import { pipeSocketStream } from "../shared/pipe.js";
import { formatPortRange } from "../shared/port-range.js";
import { secretMatches } from "../shared/secret.js";
import { OPEN_KIND, RESET_CODE } from "../shared/tunnel-constants.js";
import { resolveDestination } from "./access-control.js";
import type { AgentRegistry } from "./agent-registry.js";
import type { LiveConnections } from "./connection-table.js";
import type { RelayMetrics } from "./metrics.js";
import {
  encodeAuthReply,
  encodeMethodReply,
  encodeReply,
  NEED_MORE,
  parseCredentials,
  parseGreeting,
  parseRequest,
  type SocksRequest,
} from "./socks5-codec.js";
import {
  SOCKS5_AUTH,
  SOCKS5_CMD,
  SOCKS5_REPLY,
  type Socks5Reply,
  USERPASS_STATUS,
} from "./socks5-constants.js";
import type { Store } from "./store.js";

export interface SocksServerOptions {
  readonly store: Store;
  readonly registry: AgentRegistry;
  readonly connections: LiveConnections;
  readonly metrics: RelayMetrics;
  readonly logger: Logger;
  /** Where denials and grants are recorded. */
  readonly audit: Logger;
  /** RFC 1929 username/password is required (the default). */
  readonly requireAuth: boolean;
  /** Location of clients when authentication is off. */
  readonly anonymousLocation: string;
  /** The whole greeting/auth/request exchange must finish within this, in ms. */
  readonly handshakeTimeoutMs: number;
  /** How long the agent may take to reach the internal target, in ms. */
  readonly dialTimeoutMs: number;
}

/** Who is asking, once authenticated. */
interface Principal {
  readonly clientId: string | null;
  readonly clientName: string | null;
  readonly location: string;
}

/** Handshake state; `done` is terminal (piped, refused or closed). */
type Phase = "greeting" | "auth" | "request" | "connecting" | "done";

/** Largest handshake we accept before the request is complete (greeting + auth + request). */
const MAX_HANDSHAKE_BYTES = 1024;

export function createSocksServer(options: SocksServerOptions): Server {
  const server = createServer({ allowHalfOpen: true, noDelay: true }, (socket) => {
    new SocksConnection(socket, options).start();
  });
  return server;
}

class SocksConnection {
  readonly #socket: Socket;
  readonly #o: SocksServerOptions;
  #phase: Phase = "greeting";
  #buf: Buffer = Buffer.alloc(0);
  #principal: Principal | null = null;
  #timer: NodeJS.Timeout | null = null;
  readonly #log: Logger;
  readonly #onData = (chunk: Buffer): void => this.#receive(chunk);

  constructor(socket: Socket, options: SocksServerOptions) {
    this.#socket = socket;
    this.#o = options;
    this.#log = options.logger;
  }

  start(): void {
    const s = this.#socket;
    s.on("data", this.#onData);
    s.on("error", () => this.#abandon());
    s.on("close", () => this.#abandon());
    this.#timer = setTimeout(() => {
      if (this.#phase === "greeting" || this.#phase === "auth" || this.#phase === "request") {
        this.#log.debug({ remote: s.remoteAddress }, "socks handshake timed out");
        this.#phase = "done";
        s.destroy();
      }
    }, this.#o.handshakeTimeoutMs);
  }

  #abandon(): void {
    if (this.#timer) clearTimeout(this.#timer);
    this.#timer = null;
  }

  #receive(chunk: Buffer): void {
    this.#buf = this.#buf.length === 0 ? chunk : Buffer.concat([this.#buf, chunk]);
    try {
      this.#advance();
    } catch (err) {
      this.#fail(toUnderpassError(err));
    }
    if (this.#buf.length > MAX_HANDSHAKE_BYTES && this.#phase !== "connecting" && this.#phase !== "done") {
      this.#fail(new SocksHandshakeError("handshake too long"));
    }
  }

  #advance(): void {
    for (;;) {
      switch (this.#phase) {
        case "greeting": {
          const r = parseGreeting(this.#buf);
          if (r === NEED_MORE) return;
          if (!r.ok) throw new SocksHandshakeError(r.message);
          this.#buf = this.#buf.subarray(r.consumed);
          const offersUserPass = r.value.methods.includes(SOCKS5_AUTH.USERNAME_PASSWORD);
          if (!this.#o.requireAuth && r.value.methods.includes(SOCKS5_AUTH.NO_AUTH)) {
            this.#principal = { clientId: null, clientName: null, location: this.#o.anonymousLocation };
            this.#socket.write(encodeMethodReply(SOCKS5_AUTH.NO_AUTH));
            this.#phase = "request";
          } else if (offersUserPass) {
            this.#socket.write(encodeMethodReply(SOCKS5_AUTH.USERNAME_PASSWORD));
            this.#phase = "auth";
          } else {
            this.#log.info(
              { remote: this.#socket.remoteAddress },
              "socks client offers no acceptable method",
            );
            this.#phase = "done";
            this.#socket.end(encodeMethodReply(SOCKS5_AUTH.NO_ACCEPTABLE));
            return;
          }
          break;
        }
        case "auth": {
          const r = parseCredentials(this.#buf);
          if (r === NEED_MORE) return;
          if (!r.ok) throw new SocksHandshakeError(r.message);
          this.#buf = this.#buf.subarray(r.consumed);
          const principal = this.#authenticate(r.value.username, r.value.password);
          if (!principal) {
            this.#o.audit.warn(
              { event: "socks.auth-failed", username: r.value.username, remote: this.#socket.remoteAddress },
              "socks authentication failed",
            );
            this.#phase = "done";
            this.#socket.end(encodeAuthReply(USERPASS_STATUS.FAILURE));
            return;
          }
          this.#principal = principal;
          this.#socket.write(encodeAuthReply(USERPASS_STATUS.SUCCESS));
          this.#phase = "request";
          break;
        }
        case "request": {
          const r = parseRequest(this.#buf);
          if (r === NEED_MORE) return;
          if (!r.ok) {
            if (r.addressTypeUnsupported) throw new UnsupportedAddressTypeError(r.message);
            throw new SocksHandshakeError(r.message);
          }
          this.#buf = this.#buf.subarray(r.consumed);
          this.#phase = "connecting";
          this.#socket.off("data", this.#onData);
          this.#socket.pause();
          void this.#serve(r.value);
          return;
        }
        case "connecting":
        case "done":
          return;
        default: {
          const never: never = this.#phase;
          throw new Error(`bad phase ${String(never)}`);
        }
      }
    }
  }

  #authenticate(username: string, password: string): Principal | null {
    if (!this.#o.requireAuth) {
      // credentials offered while authentication is off: accept them, as RFC 1929 allows
      const c = this.#o.store.findClientByUsername(username);
      if (c && secretMatches(password, c.passwordHash)) {
        return { clientId: c.id, clientName: c.name, location: c.location };
      }
      return { clientId: null, clientName: null, location: this.#o.anonymousLocation };
    }
    const c = this.#o.store.findClientByUsername(username);
    if (!c || !secretMatches(password, c.passwordHash)) return null;
    return { clientId: c.id, clientName: c.name, location: c.location };
  }

  async #serve(req: SocksRequest): Promise<void> {
    const p = this.#principal!;
    if (req.command !== SOCKS5_CMD.CONNECT) {
      return this.#fail(
        new UnsupportedCommandError(`SOCKS command 0x${req.command.toString(16)} is not supported`),
      );
    }
    const grant = resolveDestination(this.#o.store, p.location, req.host, req.port);
    if (!grant.allowed) {
      this.#o.audit.warn(
        {
          event: "socks.denied",
          client: p.clientName,
          clientId: p.clientId,
          location: p.location,
          host: req.host,
          port: req.port,
          nearest: grant.nearest.map((m) => `${m.virtualHost}:${formatPortRange(m.virtualPort)}`),
        },
        `denied ${req.host}:${req.port}: no mapping in location ${p.location}`,
      );
      return this.#fail(
        new NotAllowedError(`${req.host}:${req.port} is not mapped for location ${p.location}`),
      );
    }
    const tunnel = this.#o.registry.pick(grant.mapping.location);
    if (!tunnel) {
      return this.#fail(new NoAgentError(`no agent connected for location ${grant.mapping.location}`));
    }
    const socket = this.#socket;
    let cancelled = false;
    const onEarlyClose = (): void => {
      cancelled = true;
    };
    socket.once("close", onEarlyClose);
    let result: Awaited<ReturnType<typeof tunnel.session.open>>;
    try {
      result = await tunnel.session.open(
        OPEN_KIND.CONNECT,
        grant.internalHost,
        grant.internalPort,
        this.#o.dialTimeoutMs,
      );
    } catch (err) {
      socket.off("close", onEarlyClose);
      return this.#fail(toUnderpassError(err));
    }
    socket.off("close", onEarlyClose);
    const { stream } = result;
    if (cancelled || socket.destroyed) {
      stream.reset(RESET_CODE.CANCELLED, "client went away");
      return;
    }
    if (this.#timer) clearTimeout(this.#timer);
    this.#phase = "done";
    this.#o.metrics.countReply(SOCKS5_REPLY.SUCCEEDED);
    const id = this.#o.connections.newId();
    this.#o.connections.add({
      id,
      kind: "connect",
      clientId: p.clientId,
      clientName: p.clientName,
      mappingId: grant.mapping.id,
      location: grant.mapping.location,
      virtualHost: req.host,
      virtualPort: req.port,
      internalHost: grant.internalHost,
      internalPort: grant.internalPort,
      agentId: tunnel.agentId,
      remoteAddress: `${socket.remoteAddress}:${socket.remotePort}`,
      startedAt: new Date(),
      stream,
      socket,
    });
    this.#o.audit.info(
      {
        event: "socks.connect",
        connectionId: id,
        client: p.clientName,
        location: p.location,
        virtualHost: req.host,
        virtualPort: req.port,
        mappingId: grant.mapping.id,
        agentId: tunnel.agentId,
        streamId: stream.id,
      },
      "connected",
    );
    socket.write(encodeReply(SOCKS5_REPLY.SUCCEEDED));
    const early = this.#buf;
    this.#buf = Buffer.alloc(0);
    pipeSocketStream(socket, stream, {
      onClose: ({ error }) => {
        this.#o.connections.remove(id);
        if (error) this.#log.debug({ connectionId: id, err: error.message }, "connection broke");
      },
    });
    if (early.length > 0 && !stream.write(early)) socket.pause();
    else socket.resume();
  }

  #fail(err: UnderpassError): void {
    if (this.#phase === "done") return;
    const before = this.#phase;
    this.#phase = "done";
    if (this.#timer) clearTimeout(this.#timer);
    const reply: Socks5Reply = err instanceof AuthError ? SOCKS5_REPLY.NOT_ALLOWED : err.socksReply;
    this.#log.info({ code: err.code, reply, remote: this.#socket.remoteAddress }, err.message);
    if (this.#socket.destroyed) return;
    if (before === "connecting" || before === "request") {
      this.#o.metrics.countReply(reply);
      this.#socket.end(encodeReply(reply));
    } else {
      this.#socket.destroy();
    }
  }
}
