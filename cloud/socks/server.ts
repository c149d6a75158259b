/**
 * The relay's SOCKS5 endpoint (RFC 1928, RFC 1929). A CONNECT is checked against the client's
 * location, sent to an agent of that location, and answered with success only after the agent
 * connected to the internal target; the target's first bytes follow the reply at once.
 */
import { createServer, type Server, type Socket } from "node:net";
import {
  NoAgentError,
  NotAllowedError,
  SocksHandshakeError,
  toUnderpassError,
  type UnderpassError,
  UnsupportedAddressTypeError,
  UnsupportedCommandError,
} from "../../shared/errors.js";
import type { Logger } from "../../shared/logger.js";
import { unmapIPv4 } from "../../shared/net/host.js";
import { pipeSocketStream } from "../../shared/net/pipe.js";
import { formatPortRange } from "../../shared/net/port-range.js";
import { OPEN_KIND, type OpenKind, RESET_CODE } from "../../shared/tunnel/constants.js";
import { CAPABILITY } from "../../shared/tunnel/handshake.js";
import type { OpenResult } from "../../shared/tunnel/mux-session.js";
import type { MuxStream } from "../../shared/tunnel/mux-stream.js";
import type { RelayMetrics } from "../admin/metrics.js";
import { secretMatches } from "../admin/secrets.js";
import { FtpControl } from "../ftp/control.js";
import { type FtpDataExpectations, ownerKey } from "../ftp/expectations.js";
import type { MappingRecord, Store } from "../store/store.js";
import type { BindPeers } from "../tunnel/bind-peers.js";
import type { AgentRegistry, Tunnel } from "../tunnel/registry.js";
import { type Grant, resolveDestination } from "./access-control.js";
import {
  encodeAuthReply,
  encodeMethodReply,
  encodeReply,
  NEED_MORE,
  parseCredentials,
  parseGreeting,
  parseRequest,
  type SocksRequest,
} from "./codec.js";
import type { LiveConnections } from "./connections.js";
import { SOCKS5_AUTH, SOCKS5_CMD, SOCKS5_REPLY, type Socks5Reply, USERPASS_STATUS } from "./constants.js";
import { socksReplyFor } from "./reply.js";

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
  /** How long a BIND listener on premises waits for its peer, in ms. */
  readonly bindTimeoutMs: number;
  readonly bindPeers: BindPeers;
  /** Data ports announced on FTP-aware control connections. */
  readonly ftpExpectations: FtpDataExpectations;
  /** IPv4 address announced in rewritten 227 replies; by default the relay address the client reached. */
  readonly ftpPasvAddress?: string | undefined;
}

/** Who is asking, once authenticated. */
interface Principal {
  readonly clientId: string | null;
  readonly clientName: string | null;
  readonly location: string;
}

/** Handshake state; `done` is terminal (piped, refused or closed). */
type Phase = "greeting" | "auth" | "authenticating" | "request" | "connecting" | "done";

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
      if (
        this.#phase === "greeting" ||
        this.#phase === "auth" ||
        this.#phase === "authenticating" ||
        this.#phase === "request"
      ) {
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
    if (this.#phase === "done") return; // refused: nothing more is read
    this.#buf = this.#buf.length === 0 ? chunk : Buffer.concat([this.#buf, chunk]);
    try {
      this.#advance();
    } catch (err) {
      this.#fail(toUnderpassError(err));
    }
    const phase = this.#phase as Phase; // #advance() moved it on
    if (this.#buf.length > MAX_HANDSHAKE_BYTES && phase !== "connecting" && phase !== "done") {
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
            this.#refuse(encodeMethodReply(SOCKS5_AUTH.NO_ACCEPTABLE));
            return;
          }
          break;
        }
        case "auth": {
          const r = parseCredentials(this.#buf);
          if (r === NEED_MORE) return;
          if (!r.ok) throw new SocksHandshakeError(r.message);
          this.#buf = this.#buf.subarray(r.consumed);
          // The store answers asynchronously; bytes that arrive meanwhile wait in #buf.
          this.#phase = "authenticating";
          const { username, password } = r.value;
          void this.#authenticate(username, password).then(
            (principal) => this.#authenticated(username, principal),
            (err: unknown) => this.#fail(toUnderpassError(err)),
          );
          return;
        }
        case "authenticating":
          return;
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

  #authenticated(username: string, principal: Principal | null): void {
    if (this.#phase !== "authenticating" || this.#socket.destroyed) return; // timed out or gone meanwhile
    if (!principal) {
      this.#o.audit.warn(
        { event: "socks.auth-failed", username, remote: this.#socket.remoteAddress },
        "socks authentication failed",
      );
      this.#phase = "done";
      this.#refuse(encodeAuthReply(USERPASS_STATUS.FAILURE));
      return;
    }
    this.#principal = principal;
    this.#socket.write(encodeAuthReply(USERPASS_STATUS.SUCCESS));
    this.#phase = "request";
    this.#receive(Buffer.alloc(0)); // a request sent along with the credentials
  }

  async #authenticate(username: string, password: string): Promise<Principal | null> {
    if (!this.#o.requireAuth) {
      // credentials offered while authentication is off: accept them, as RFC 1929 allows
      const c = await this.#o.store.findClientByUsername(username);
      if (c && secretMatches(password, c.passwordHash)) {
        return { clientId: c.id, clientName: c.name, location: c.location };
      }
      return { clientId: null, clientName: null, location: this.#o.anonymousLocation };
    }
    const c = await this.#o.store.findClientByUsername(username);
    if (!c || !secretMatches(password, c.passwordHash)) return null;
    return { clientId: c.id, clientName: c.name, location: c.location };
  }

  get #owner(): string {
    return ownerKey(this.#principal!.clientId, this.#socket.remoteAddress ?? "");
  }

  async #serve(req: SocksRequest): Promise<void> {
    if (req.command === SOCKS5_CMD.BIND) return this.#serveBind(req);
    if (req.command !== SOCKS5_CMD.CONNECT) {
      return this.#fail(
        new UnsupportedCommandError(`SOCKS command 0x${req.command.toString(16)} is not supported`),
      );
    }
    const p = this.#principal!;
    const socket = this.#socket;
    // a data port an FTP-aware control connection of this client announced comes first
    const data = this.#o.ftpExpectations.take(this.#owner, req.host, req.port, socket.localAddress ?? "");
    let grant: Grant;
    if (data) {
      grant = {
        allowed: true,
        mapping: data.mapping,
        internalHost: data.internalHost,
        internalPort: data.internalPort,
      };
    } else {
      const g = await resolveDestination(this.#o.store, p.location, req.host, req.port);
      if (!g.allowed) {
        this.#o.audit.warn(
          {
            event: "socks.denied",
            client: p.clientName,
            clientId: p.clientId,
            location: p.location,
            host: req.host,
            port: req.port,
            nearest: g.nearest.map((m) => `${m.virtualHost}:${formatPortRange(m.virtualPort)}`),
          },
          `denied ${req.host}:${req.port}: no mapping in location ${p.location}`,
        );
        return this.#fail(
          new NotAllowedError(`${req.host}:${req.port} is not mapped for location ${p.location}`),
        );
      }
      grant = g;
    }
    const tunnel = this.#o.registry.pick(grant.mapping.location, { agentId: data?.agentId });
    if (!tunnel) {
      return this.#fail(new NoAgentError(`no agent connected for location ${grant.mapping.location}`));
    }
    const opened = await this.#openOnPremises(
      tunnel,
      OPEN_KIND.CONNECT,
      grant.internalHost,
      grant.internalPort,
      this.#o.dialTimeoutMs,
    );
    if (!opened) return;
    const { stream } = opened;
    const id = this.#register(
      "connect",
      grant.mapping,
      req,
      grant.internalHost,
      grant.internalPort,
      tunnel,
      stream,
    );
    this.#o.audit.info(
      {
        event: data ? "socks.ftp-data" : "socks.connect",
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
    // BND: the agent's address towards the target (socksify puts it into PORT as the control socket's own)
    socket.write(encodeReply(SOCKS5_REPLY.SUCCEEDED, unmapIPv4(opened.address) || "0.0.0.0", opened.port));
    const early = this.#buf;
    this.#buf = Buffer.alloc(0);
    const onClose = (error: Error | null): void => {
      this.#o.connections.remove(id);
      if (error) this.#log.debug({ connectionId: id, err: error.message }, "connection broke");
    };
    if (grant.mapping.protocol === "ftp" && !data) {
      const control = new FtpControl(
        {
          connectionId: id,
          socket,
          stream,
          tunnel,
          mapping: grant.mapping,
          internalHost: grant.internalHost,
          internalPort: grant.internalPort,
          owner: this.#owner,
          clientId: p.clientId,
          clientName: p.clientName,
          virtualHost: req.host,
        },
        {
          expectations: this.#o.ftpExpectations,
          bindPeers: this.#o.bindPeers,
          connections: this.#o.connections,
          logger: this.#log,
          audit: this.#o.audit,
          dialTimeoutMs: this.#o.dialTimeoutMs,
          bindTimeoutMs: this.#o.bindTimeoutMs,
          pasvAddress: this.#o.ftpPasvAddress,
        },
      );
      control.start(early, onClose);
      return;
    }
    pipeSocketStream(socket, stream, { onClose: ({ error }) => onClose(error) });
    if (early.length > 0 && !stream.write(early)) socket.pause();
    else socket.resume();
  }

  /**
   * SOCKS5 BIND (RFC 1928 §6), for FTP active mode. DST.ADDR is not trusted (socksify sends
   * fake addresses): the BIND belongs to a live connection of this client, the one to DST's
   * host if there is one, else the newest. The agent that carries it listens on premises
   * where that connection's internal host can reach it; the first reply names the listener,
   * the second the peer that connected.
   */
  async #serveBind(req: SocksRequest): Promise<void> {
    const p = this.#principal!;
    const control = this.#o.connections.controlFor(p.clientId, this.#socket.remoteAddress ?? "", req.host);
    if (!control) {
      this.#o.audit.warn(
        {
          event: "socks.bind-denied",
          client: p.clientName,
          clientId: p.clientId,
          host: req.host,
          port: req.port,
        },
        "BIND without a live connection to a mapped host",
      );
      return this.#fail(new NotAllowedError("BIND needs a live connection of this client to a mapped host"));
    }
    const mapping = await this.#o.store.getMapping(control.mappingId);
    if (!mapping) return this.#fail(new NotAllowedError("the mapping of the connection is gone"));
    const tunnel = this.#o.registry.pick(control.location, {
      capability: CAPABILITY.BIND,
      agentId: control.agentId,
    });
    if (!tunnel)
      return this.#fail(new NoAgentError(`no agent serving BIND for location ${control.location}`));
    const opened = await this.#openOnPremises(
      tunnel,
      OPEN_KIND.BIND,
      control.internalHost,
      control.internalPort,
      this.#o.bindTimeoutMs,
    );
    if (!opened) return;
    const { stream } = opened;
    const socket = this.#socket;
    const forget = this.#o.ftpExpectations.noteBindListen(this.#owner, opened.address, opened.port);
    this.#o.audit.info(
      {
        event: "socks.bind",
        client: p.clientName,
        location: control.location,
        virtualHost: control.virtualHost,
        listen: `${opened.address}:${opened.port}`,
        agentId: tunnel.agentId,
      },
      "bind listening",
    );
    socket.write(encodeReply(SOCKS5_REPLY.SUCCEEDED, opened.address, opened.port));
    let cancel = (): void => {};
    const onGone = (): void => {
      forget();
      cancel();
      stream.reset(RESET_CODE.CANCELLED, "client went away");
    };
    socket.once("close", onGone);
    cancel = this.#o.bindPeers.expect(stream, (peer) => {
      socket.off("close", onGone);
      forget();
      if (socket.destroyed) {
        stream.reset(RESET_CODE.CANCELLED, "client went away");
        return;
      }
      this.#o.metrics.countReply(SOCKS5_REPLY.SUCCEEDED);
      const id = this.#register(
        "bind",
        mapping,
        { host: control.virtualHost, port: control.virtualPort },
        peer.address,
        peer.port,
        tunnel,
        stream,
      );
      socket.write(encodeReply(SOCKS5_REPLY.SUCCEEDED, peer.address, peer.port));
      const early = this.#buf;
      this.#buf = Buffer.alloc(0);
      pipeSocketStream(socket, stream, { onClose: () => this.#o.connections.remove(id) });
      if (early.length > 0 && !stream.write(early)) socket.pause();
      else socket.resume();
    });
    // until the peer connects, the stream can only break: say so in a second reply
    stream.attach({
      onData: () => {},
      onEnd: () => {},
      onReset: () => {
        socket.off("close", onGone);
        forget();
        cancel();
        this.#o.metrics.countReply(SOCKS5_REPLY.HOST_UNREACHABLE);
        if (!socket.destroyed) this.#refuse(encodeReply(SOCKS5_REPLY.HOST_UNREACHABLE));
      },
      onDrain: () => {},
    });
  }

  /** Open a stream on premises; on failure the client has its reply and null comes back. */
  async #openOnPremises(
    tunnel: Tunnel,
    kind: OpenKind,
    host: string,
    port: number,
    timeoutMs: number,
  ): Promise<OpenResult | null> {
    const socket = this.#socket;
    let cancelled = false;
    const onEarlyClose = (): void => {
      cancelled = true;
    };
    socket.once("close", onEarlyClose);
    let result: OpenResult;
    try {
      result = await tunnel.session.open(kind, host, port, timeoutMs);
    } catch (err) {
      this.#fail(toUnderpassError(err));
      return null;
    } finally {
      socket.off("close", onEarlyClose);
    }
    if (cancelled || socket.destroyed) {
      result.stream.reset(RESET_CODE.CANCELLED, "client went away");
      return null;
    }
    if (this.#timer) clearTimeout(this.#timer);
    this.#phase = "done";
    if (kind === OPEN_KIND.CONNECT) this.#o.metrics.countReply(SOCKS5_REPLY.SUCCEEDED);
    return result;
  }

  #register(
    kind: "connect" | "bind",
    mapping: MappingRecord,
    virtual: { host: string; port: number },
    internalHost: string,
    internalPort: number,
    tunnel: Tunnel,
    stream: MuxStream,
  ): string {
    const p = this.#principal!;
    const socket = this.#socket;
    const id = this.#o.connections.newId();
    this.#o.connections.add({
      id,
      kind,
      clientId: p.clientId,
      clientName: p.clientName,
      mappingId: mapping.id,
      location: mapping.location,
      virtualHost: virtual.host,
      virtualPort: virtual.port,
      internalHost,
      internalPort,
      agentId: tunnel.agentId,
      remoteAddress: `${socket.remoteAddress}:${socket.remotePort}`,
      startedAt: new Date(),
      stream,
      socket,
    });
    return id;
  }

  /** Send the last words and close: the refused client is not read any more. */
  #refuse(reply: Buffer): void {
    const s = this.#socket;
    s.off("data", this.#onData);
    s.end(reply, () => s.destroy());
  }

  #fail(err: UnderpassError): void {
    if (this.#phase === "done") return;
    const before = this.#phase;
    this.#phase = "done";
    if (this.#timer) clearTimeout(this.#timer);
    const reply: Socks5Reply = socksReplyFor(err);
    this.#log.info({ code: err.code, reply, remote: this.#socket.remoteAddress }, err.message);
    if (this.#socket.destroyed) return;
    if (before === "connecting" || before === "request") {
      this.#o.metrics.countReply(reply);
      this.#refuse(encodeReply(reply));
    } else {
      this.#socket.destroy();
    }
  }
}
