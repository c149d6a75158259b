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
  NotAllowedError,
  SocksHandshakeError,
  toUnderpassError,
  UnderpassError,
  UnsupportedCommandError,
} from "../../shared/errors.js";
import type { Logger } from "../../shared/logger.js";
import { unmapIPv4 } from "../../shared/net/host.js";
import { OPEN_KIND, type OpenKind, RESET_CODE } from "../../shared/tunnel/constants.js";
import type { OpenResult } from "../../shared/tunnel/mux-session.js";
import { ftpControlFor } from "../ftp/control.js";
import { ownerKey } from "../ftp/expectations.js";
import type { PreauthSlot } from "../limits/preauth-guard.js";
import { clientKey } from "../limits/source-key.js";
import type { MappingRecord } from "../store/store.js";
import type { Tunnel } from "../tunnel/registry.js";
import { Admission } from "./admission.js";
import { anonymous, authenticate, type Principal } from "./authenticate.js";
import { serveBind } from "./bind-request.js";
import type { CancelBindWait } from "./bind-wait.js";
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
  publishDenied,
  publishRefused,
  publishRequested,
} from "./publish.js";
import { socksReplyFor } from "./reply.js";
import { resolveConnect } from "./resolve.js";
import { AccessWatch } from "./revocation.js";
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
  readonly #admission: Admission;
  /** Followed for revocation from authentication to splice (revocation.ts). */
  readonly #access: AccessWatch;
  /** A BIND waiting for its peer, and what ends that wait. */
  #cancelBind: CancelBindWait | null = null;
  readonly #onData = (chunk: Buffer): void => this.#receive(chunk);
  readonly #onEnd = (): void => {
    // a FIN before the handshake could complete: no more bytes can finish it, so its
    // slot is given back now rather than at the deadline ("authenticating" still has a
    // request to read from what came before the FIN)
    const st = this.#state;
    if (st === "greeting" || st === "credentials" || st === "request") this.#socket.destroy();
  };
  readonly #onClose = (): void => {
    this.#enter("closed");
    this.#access.stop();
    this.#admission.closed();
  };

  constructor(socket: Socket, shared: SocksShared, slot: PreauthSlot) {
    this.#socket = socket;
    this.#shared = shared;
    this.#o = shared.o;
    this.#log = shared.o.logger;
    this.#admission = new Admission(shared.o.guards, slot);
    // before any store lookup: a revocation from here on is seen (revocation.ts)
    this.#access = new AccessWatch(shared.o.connections, (reason) => this.#revoked(reason));
  }

  start(): void {
    const s = this.#socket;
    this.#acceptedAt = performance.now();
    publishAccepted(this.#o.events, s);
    s.on("data", this.#onData);
    s.on("error", ignore); // 'close' follows
    s.on("end", this.#onEnd);
    s.on("close", this.#onClose);
    this.#timer = setTimeout(() => {
      if (!HANDSHAKE_STATES.has(this.#state)) return;
      this.#admission.deadlineRanOut(this.#o.handshakeTimeoutMs);
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
          const over = this.#admission.establish(this.#principal!);
          if (over) return this.#fail(over);
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
      // the failure, not the success, waits: the right password is answered at once
      this.#admission.answerFailure(credentials.username, () => {
        if (this.#enter("closed")) this.#refuse(encodeAuthReply(USERPASS_STATUS.FAILURE));
      });
      return;
    }
    this.#socket.write(encodeAuthReply(USERPASS_STATUS.SUCCESS));
    this.#authenticated(who, "password", credentials);
    this.#consume(); // a request that came with the credentials
  }

  #authenticated(who: Principal, method: "password" | "none", credentials: Credentials | null = null): void {
    this.#principal = who;
    this.#enter("request");
    this.#admission.authenticated();
    this.#access.follow(who, credentials);
    publishAuthenticated(this.#o.events, this.#socket, who, method);
  }

  // ---- revocation (revocation.ts) ----------------------------------------------------------

  /** Its client or mapping was deleted or changed: refuse it, whatever it waits for. */
  #revoked(reason: string): void {
    const err = new NotAllowedError(`access revoked: ${reason}`);
    if (this.#state === "bound") {
      if (!this.#cancelBind?.(reason)) return;
      publishRefused(this.#o.events, this.#socket, this.#principal!, SOCKS5_REPLY.NOT_ALLOWED, err);
      if (this.#enter("closed") && !this.#socket.destroyed)
        this.#refuse(encodeReply(SOCKS5_REPLY.NOT_ALLOWED));
      return;
    }
    this.#fail(err);
  }

  /** Before a success reply (revocation.ts); false when it was refused. */
  async #stillAllowed(mapping: MappingRecord): Promise<boolean> {
    const ok = await this.#access.stillAllowed(this.#o.store, this.#o, this.#principal!, mapping);
    if (!ok) this.#fail(new NotAllowedError("access revoked while the connection was set up"));
    return ok && this.#state !== "closed";
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
    this.#access.mappingId = target.mapping.id;
    const tunnel = pickTunnel(
      registry,
      target.mapping.location,
      { agentId: target.agentId },
      this.#o.guards.tunnelsFull,
    );
    if (tunnel instanceof UnderpassError) return this.#fail(tunnel);
    const { internalHost, internalPort, mapping } = target;
    const reservation = this.#o.budget.reserve(clientKey(who.clientId, socket.remoteAddress));
    if (reservation instanceof UnderpassError) return this.#fail(reservation);
    const opened = await this.#open(
      tunnel,
      OPEN_KIND.CONNECT,
      internalHost,
      internalPort,
      this.#o.dialTimeoutMs,
    );
    if (!opened) return reservation.release();
    if (!(await this.#stillAllowed(mapping)) || !this.#enter("spliced")) {
      opened.stream.reset(RESET_CODE.CANCELLED, "access revoked");
      return reservation.release();
    }
    this.#access.stop();
    // BND: the agent's address towards the target (socksify puts it into PORT as the control socket's own)
    this.#reply(unmapIPv4(opened.address) || "0.0.0.0", opened.port);
    const { stream } = opened;
    // the splice takes the socket over: this object, its watch and its listeners can go
    socket.off("end", this.#onEnd);
    socket.off("close", this.#onClose);
    socket.off("error", ignore);
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
        reservation,
        admission: this.#admission,
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

  // ---- BIND (RFC 1928 §6, FTP active mode): bind-request.ts --------------------------------

  #serveBind(req: SocksRequest): Promise<void> {
    return serveBind(
      {
        o: this.#o,
        splice: this.#shared.splice,
        socket: this.#socket,
        who: this.#principal!,
        owner: this.#owner,
        access: this.#access,
        fail: (err) => this.#fail(err),
        open: (tunnel, kind, host, port, timeoutMs) => this.#open(tunnel, kind, host, port, timeoutMs),
        stillAllowed: (mapping) => this.#stillAllowed(mapping),
        enter: (state) => this.#enter(state),
        reply: (address, port) => this.#reply(address, port),
        refuse: (reply) => this.#refuse(reply),
        takeEarly: (more) => {
          if (more.length > 0) this.#buf = Buffer.concat([this.#buf, more]);
          return this.#takeEarly();
        },
        waiting: (cancel) => {
          this.#cancelBind = cancel;
        },
      },
      req,
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
