/**
 * One SOCKS5 client connection (RFC 1928, RFC 1929), through small stages:
 * authenticate (authenticate.ts), resolve the destination (resolve.ts), pick a tunnel and open
 * the stream on premises (open.ts), reply, splice (splice.ts). Each stage answers a value or a
 * coded error, and a coded error becomes the SOCKS reply (reply.ts). The states are named in
 * state.ts. A CONNECT is answered with success only after the agent connected to the internal
 * target; the target's first bytes follow the reply at once. What happens is published on the
 * relay's events (cloud/events.ts), where metrics and the audit log pick it up.
 */
import type { Socket } from "node:net";
import {
  AuthError,
  SocksHandshakeError,
  toUnderpassError,
  UnderpassError,
  UnsupportedCommandError,
} from "../../shared/errors.js";
import type { Logger } from "../../shared/logger.js";
import { unmapIPv4 } from "../../shared/net/host.js";
import { OPEN_KIND, type OpenKind, RESET_CODE } from "../../shared/tunnel/constants.js";
import { CAPABILITY } from "../../shared/tunnel/handshake.js";
import type { OpenResult } from "../../shared/tunnel/mux-session.js";
import { ftpControlFor } from "../ftp/control.js";
import { ownerKey } from "../ftp/expectations.js";
import type { BindPeer } from "../tunnel/bind-peers.js";
import type { Tunnel } from "../tunnel/registry.js";
import { anonymous, authenticate, type Principal } from "./authenticate.js";
import { waitForBindPeer } from "./bind-wait.js";
import {
  type Credentials,
  encodeAuthReply,
  encodeMethodReply,
  encodeReply,
  NEED_MORE,
  type SocksRequest,
} from "./codec.js";
import { SOCKS5_AUTH, SOCKS5_CMD, SOCKS5_REPLY, USERPASS_STATUS } from "./constants.js";
import { readHandshake } from "./handshake.js";
import { openOnPremises, pickTunnel } from "./open.js";
import {
  peerOf,
  publishAccepted,
  publishAuthenticated,
  publishAuthFailed,
  publishBindListening,
  publishDenied,
  publishRefused,
  publishRequested,
} from "./publish.js";
import { socksReplyFor } from "./reply.js";
import { type BindTarget, resolveBind, resolveConnect } from "./resolve.js";
import type { SocksServerOptions, SocksShared } from "./server.js";
import { splice } from "./splice.js";
import { HANDSHAKE_STATES, nextState, REPLYING_STATES, type SocksState } from "./state.js";

/** Largest handshake we accept before the request is complete (greeting + auth + request). */
const MAX_HANDSHAKE_BYTES = 1024;

const EMPTY = Buffer.alloc(0);

function ignore(): void {}

export class ClientConnection {
  readonly #socket: Socket;
  readonly #shared: SocksShared;
  readonly #o: SocksServerOptions;
  readonly #log: Logger;
  #state: SocksState = "greeting";
  /** Handshake bytes not parsed yet; after the request, the client's early bytes. */
  #buf: Buffer = EMPTY;
  #principal: Principal | null = null;
  #timer: NodeJS.Timeout | null = null;
  /** When the TCP connection was accepted, and when the request was complete (performance.now(), ms). */
  #acceptedAt = 0;
  #requestAt = 0;
  readonly #onData = (chunk: Buffer): void => this.#receive(chunk);

  constructor(socket: Socket, shared: SocksShared) {
    this.#socket = socket;
    this.#shared = shared;
    this.#o = shared.o;
    this.#log = shared.o.logger;
  }

  start(): void {
    const s = this.#socket;
    this.#acceptedAt = performance.now();
    publishAccepted(this.#o.events, s);
    s.on("data", this.#onData);
    s.on("error", ignore); // 'close' follows
    s.on("close", () => this.#enter("closed"));
    this.#timer = setTimeout(() => {
      if (!HANDSHAKE_STATES.has(this.#state)) return;
      this.#log.debug({ remote: s.remoteAddress }, "socks handshake timed out");
      this.#enter("closed");
      s.destroy();
    }, this.#o.handshakeTimeoutMs);
  }

  /** The one transition function; false when the connection was closed meanwhile. */
  #enter(to: SocksState): boolean {
    const next = nextState(this.#state, to);
    if (next === null) return false;
    this.#state = next;
    if (this.#timer && !HANDSHAKE_STATES.has(next)) {
      clearTimeout(this.#timer);
      this.#timer = null;
    }
    return true;
  }

  // ---- handshake: greeting, credentials, request -------------------------------------------

  #receive(chunk: Buffer): void {
    if (this.#state === "closed") return; // refused: nothing more is read
    this.#buf = this.#buf.length === 0 ? chunk : Buffer.concat([this.#buf, chunk]);
    this.#consume();
  }

  #consume(): void {
    try {
      this.#advance();
    } catch (err) {
      this.#fail(toUnderpassError(err));
    }
    if (this.#buf.length > MAX_HANDSHAKE_BYTES && HANDSHAKE_STATES.has(this.#state)) {
      this.#fail(new SocksHandshakeError("handshake too long"));
    }
  }

  #advance(): void {
    for (;;) {
      const state = this.#state;
      // authenticating: later bytes wait for the store's answer; later states read no more here
      if (state !== "greeting" && state !== "credentials" && state !== "request") return;
      const step = readHandshake(state, this.#buf, this.#o);
      if (step === NEED_MORE) return;
      if (step instanceof UnderpassError) return this.#fail(step);
      this.#buf = this.#buf.subarray(step.consumed);
      switch (step.step) {
        case "method":
          if (step.method === SOCKS5_AUTH.NO_ACCEPTABLE) {
            this.#log.info(
              { remote: this.#socket.remoteAddress },
              "socks client offers no acceptable method",
            );
            this.#enter("closed");
            this.#refuse(encodeMethodReply(SOCKS5_AUTH.NO_ACCEPTABLE));
            return;
          }
          this.#socket.write(encodeMethodReply(step.method));
          if (step.method === SOCKS5_AUTH.NO_AUTH) this.#authenticated(anonymous(this.#o), "none");
          else this.#enter("credentials");
          break;
        case "credentials":
          this.#enter("authenticating");
          this.#checkCredentials(step.credentials).catch((err: unknown) => this.#fail(toUnderpassError(err)));
          return;
        case "request": {
          this.#enter("resolving");
          this.#requestAt = performance.now();
          const handshakeMs = this.#requestAt - this.#acceptedAt;
          publishRequested(this.#o.events, this.#socket, this.#principal!, step.request, handshakeMs);
          this.#socket.off("data", this.#onData);
          this.#socket.pause();
          this.#serve(step.request).catch((err: unknown) => this.#fail(toUnderpassError(err)));
          return;
        }
        default: {
          const never: never = step;
          throw new Error(`bad handshake step ${String(never)}`);
        }
      }
    }
  }

  async #checkCredentials(credentials: Credentials): Promise<void> {
    const who = await authenticate(this.#o.store, this.#o, credentials);
    if (this.#state !== "authenticating") return; // gone or timed out meanwhile
    if (who instanceof AuthError) {
      publishAuthFailed(this.#o.events, this.#socket, credentials.username);
      this.#enter("closed");
      this.#refuse(encodeAuthReply(USERPASS_STATUS.FAILURE));
      return;
    }
    this.#socket.write(encodeAuthReply(USERPASS_STATUS.SUCCESS));
    this.#authenticated(who, "password");
    this.#consume(); // a request that came with the credentials
  }

  #authenticated(who: Principal, method: "password" | "none"): void {
    this.#principal = who;
    this.#enter("request");
    publishAuthenticated(this.#o.events, this.#socket, who, method);
  }

  // ---- CONNECT: resolve, pick, open, reply, splice ------------------------------------------

  async #serve(req: SocksRequest): Promise<void> {
    if (req.command === SOCKS5_CMD.BIND) return this.#serveBind(req);
    if (req.command !== SOCKS5_CMD.CONNECT) {
      return this.#fail(
        new UnsupportedCommandError(`SOCKS command 0x${req.command.toString(16)} is not supported`),
      );
    }
    const who = this.#principal!;
    const socket = this.#socket;
    const { store, ftpExpectations, registry } = this.#o;
    const target = await resolveConnect(
      store,
      ftpExpectations,
      who,
      this.#owner,
      req,
      socket.localAddress ?? "",
    );
    if ("error" in target) {
      publishDenied(this.#o.events, socket, who, "connect", req, target.nearest);
      return this.#fail(target.error);
    }
    const tunnel = pickTunnel(registry, target.mapping.location, { agentId: target.agentId });
    if (tunnel instanceof UnderpassError) return this.#fail(tunnel);
    const { internalHost, internalPort, mapping } = target;
    const opened = await this.#open(
      tunnel,
      OPEN_KIND.CONNECT,
      internalHost,
      internalPort,
      this.#o.dialTimeoutMs,
    );
    if (!opened || !this.#enter("spliced")) return;
    // BND: the agent's address towards the target (socksify puts it into PORT as the control socket's own)
    this.#reply(unmapIPv4(opened.address) || "0.0.0.0", opened.port);
    const { stream } = opened;
    splice(
      this.#shared.splice,
      {
        grant: target.grant,
        who,
        mapping,
        virtualHost: req.host,
        virtualPort: req.port,
        internalHost,
        internalPort,
        tunnel,
        stream,
        socket,
        ...peerOf(this.#socket),
        openMs: performance.now() - this.#requestAt,
      },
      this.#takeEarly(),
      target.grant === "connect" && mapping.protocol === "ftp"
        ? ftpControlFor(this.#shared.ftp, {
            socket,
            stream,
            tunnel,
            mapping,
            internalHost,
            internalPort,
            owner: this.#owner,
            who,
            virtualHost: req.host,
          })
        : null,
    );
  }

  /** Open a stream on premises; on failure the client has its reply and null comes back. */
  async #open(
    tunnel: Tunnel,
    kind: OpenKind,
    host: string,
    port: number,
    timeoutMs: number,
  ): Promise<OpenResult | null> {
    if (!this.#enter("opening")) return null;
    const opened = await openOnPremises(tunnel, kind, host, port, timeoutMs, this.#o.events);
    if (opened instanceof UnderpassError) {
      this.#fail(opened);
      return null;
    }
    if (this.#state === "closed" || this.#socket.destroyed) {
      opened.stream.reset(RESET_CODE.CANCELLED, "client went away");
      return null;
    }
    return opened;
  }

  #reply(address: string, port: number): void {
    this.#socket.write(encodeReply(SOCKS5_REPLY.SUCCEEDED, address, port));
  }

  // ---- BIND (RFC 1928 §6, FTP active mode) ---------------------------------------------------

  /**
   * The agent that carries the BIND's connection (resolve.ts) listens on premises where that
   * connection's internal host can reach it; the first reply names the listener, the second
   * the peer that connected.
   */
  async #serveBind(req: SocksRequest): Promise<void> {
    const who = this.#principal!;
    const { store, connections, registry } = this.#o;
    const target = await resolveBind(store, connections, who, this.#socket.remoteAddress ?? "", req);
    if (target instanceof UnderpassError) return this.#fail(target);
    if ("error" in target) {
      publishDenied(this.#o.events, this.#socket, who, "bind", req, target.nearest);
      return this.#fail(target.error);
    }
    const { control } = target;
    const tunnel = pickTunnel(registry, control.location, {
      capability: CAPABILITY.BIND,
      agentId: control.agentId,
    });
    if (tunnel instanceof UnderpassError) return this.#fail(tunnel);
    const { internalHost, internalPort } = control;
    const opened = await this.#open(
      tunnel,
      OPEN_KIND.BIND,
      internalHost,
      internalPort,
      this.#o.bindTimeoutMs,
    );
    if (!opened || !this.#enter("bound")) return;
    const { stream, address, port } = opened;
    const forget = this.#o.ftpExpectations.noteBindListen(this.#owner, address, port);
    publishBindListening(this.#o.events, who, control, tunnel, opened);
    this.#reply(address, port);
    waitForBindPeer(this.#socket, stream, this.#o.bindPeers, {
      onOver: forget,
      onPeer: (peer) => this.#bindPeer(target, tunnel, opened, peer),
      onBroken: (err) => {
        publishRefused(this.#o.events, this.#socket, who, SOCKS5_REPLY.HOST_UNREACHABLE, err);
        if (this.#enter("closed") && !this.#socket.destroyed) {
          this.#refuse(encodeReply(SOCKS5_REPLY.HOST_UNREACHABLE));
        }
      },
    });
  }

  #bindPeer({ control, mapping }: BindTarget, tunnel: Tunnel, opened: OpenResult, peer: BindPeer): void {
    if (!this.#enter("spliced")) return;
    this.#reply(peer.address, peer.port);
    splice(
      this.#shared.splice,
      {
        grant: "bind",
        who: this.#principal!,
        mapping,
        virtualHost: control.virtualHost,
        virtualPort: control.virtualPort,
        internalHost: peer.address,
        internalPort: peer.port,
        tunnel,
        stream: opened.stream,
        socket: this.#socket,
        ...peerOf(this.#socket),
        openMs: null,
      },
      this.#takeEarly(),
    );
  }

  // ---- endings and what they publish --------------------------------------------------------

  /** A coded error ends the connection: the SOCKS reply it maps to once the request was read. */
  #fail(err: UnderpassError): void {
    const before = this.#state;
    if (!this.#enter("closed")) return;
    const reply = socksReplyFor(err);
    this.#log.info({ code: err.code, reply, remote: this.#socket.remoteAddress }, err.message);
    if (this.#socket.destroyed) return;
    if (REPLYING_STATES.has(before)) {
      // a request was read, so the client has authenticated (state.ts)
      publishRefused(this.#o.events, this.#socket, this.#principal!, reply, err);
      this.#refuse(encodeReply(reply));
    } else {
      this.#socket.destroy();
    }
  }

  /** Send the last words and close: the refused client is not read any more. */
  #refuse(reply: Buffer): void {
    const s = this.#socket;
    s.off("data", this.#onData);
    s.end(reply, () => s.destroy());
  }

  // ---- small readers -------------------------------------------------------------------------

  get #owner(): string {
    return ownerKey(this.#principal!.clientId, this.#socket.remoteAddress ?? "");
  }

  /** The bytes the client sent after its request, for the splice to send first. */
  #takeEarly(): Buffer {
    const early = this.#buf;
    this.#buf = EMPTY;
    return early;
  }
}
