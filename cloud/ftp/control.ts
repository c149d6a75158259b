/**
 * The control channel of an FTP-aware mapping (`protocol: "ftp"`), carried line by line
 * between the SOCKS client and the tunnel stream to the FTP server:
 * - the server's 227/229 replies open exactly the announced data port, for this client, for a
 *   short time (expectations.ts); a 227 is rewritten so the client never sees an internal
 *   or NAT'ed address;
 * - the client's PORT/EPRT (active mode) must name the client's own address (no FTP bounce);
 *   the agent then listens on-premise (BIND), the command reaching the server names that
 *   listener, and the server's data connection is carried back to the client's address;
 * - after AUTH TLS (234) or on a TLS hello (implicit FTPS) the channel is opaque and the
 *   bytes pass untouched: nothing can be read or rewritten any more.
 */
import { connect, isIPv4, type Socket } from "node:net";
import { UnderpassError } from "../../shared/errors.js";
import type { Logger } from "../../shared/logger.js";
import { normalizeHost, unmapIPv4 } from "../../shared/net/host.js";
import type { PipeControl } from "../../shared/net/pipe.js";
import { abortSocket } from "../../shared/net/socket-abort.js";
import { OPEN_KIND, RESET_CODE } from "../../shared/tunnel/constants.js";
import type { MuxStream } from "../../shared/tunnel/mux-stream.js";
import type { BindListeners } from "../limits/bind-listeners.js";
import type { BufferBudget } from "../limits/buffer-budget.js";
import { clientKey } from "../limits/source-key.js";
import type { Principal } from "../socks/authenticate.js";
import { openOnPremises } from "../socks/open.js";
import { type SpliceDeps, type SpliceFilter, splice } from "../socks/splice.js";
import type { MappingRecord } from "../store/store.js";
import type { BindPeer, BindPeers } from "../tunnel/bind-peers.js";
import type { Tunnel } from "../tunnel/registry.js";
import {
  formatEprtCommand,
  formatPasvReply,
  formatPortCommand,
  type HostPort,
  parseEprtArgument,
  parseEpsvReply,
  parsePasvReply,
  parsePortArgument,
  splitCommand,
} from "./commands.js";
import { DATA_EXPECTATION_TTL_MS, type FtpExpectations } from "./expectations.js";

export interface FtpContext {
  readonly expectations: FtpExpectations;
  readonly bindPeers: BindPeers;
  /** Where active-mode data connections are listed and published; its events take the FTP ones. */
  readonly splice: SpliceDeps;
  readonly dialTimeoutMs: number;
  /** How long the agent keeps an active-mode listener open, in ms. */
  readonly bindTimeoutMs: number;
  /** IPv4 address announced in rewritten 227 replies; by default the relay address the client reached. */
  readonly pasvAddress: string | undefined;
  /** Listeners on premises per client and per agent (an active-mode data port is one). */
  readonly bindListeners: BindListeners;
  /** Bytes held for clients that have not read them (an active-mode data connection holds some). */
  readonly budget: BufferBudget;
}

export interface FtpControlSession {
  readonly connectionId: string;
  readonly socket: Socket;
  readonly stream: MuxStream;
  readonly tunnel: Tunnel;
  readonly mapping: MappingRecord;
  readonly internalHost: string;
  readonly internalPort: number;
  /** Whose announced ports these are (see `ownerKey`). */
  readonly owner: string;
  readonly who: Principal;
  /** The virtual host the client asked for. */
  readonly virtualHost: string;
}

/** The filter for a control connection, made once the splice has named the connection. */
export function ftpControlFor(
  ctx: FtpContext,
  session: Omit<FtpControlSession, "connectionId">,
): (connectionId: string) => FtpControl {
  return (connectionId) => new FtpControl({ ...session, connectionId }, ctx);
}

/** Longest control line accepted; FTP lines are far shorter. */
const MAX_LINE = 8 * 1024;
/** First byte of a TLS record carrying a handshake (ClientHello, ServerHello). */
const TLS_HANDSHAKE = 0x16;
/** What a filter hands on when a chunk yields nothing to forward. */
const NOTHING = Buffer.alloc(0);

export class FtpControl implements SpliceFilter {
  readonly #s: FtpControlSession;
  readonly #ctx: FtpContext;
  readonly #log: Logger;
  /** The client's address as the relay sees it: the only one active-mode data may go to. */
  readonly #clientAddress: string;
  /** The relay's address the client reached. */
  readonly #relayAddress: string;
  #opaque = false;
  #authPending = false;
  #fromClient = "";
  #fromServer = "";
  /** A PORT/EPRT is being set up: the client is held and its later lines wait. */
  #busy = false;
  /** The active-mode BIND waiting for the server, cancelled by the next PORT/EPRT/PASV. */
  #activeStream: MuxStream | null = null;
  #activeCancel: (() => void) | null = null;
  /** Gives back the active-mode listener's place under the BIND bounds. */
  #activeGiveBack: (() => void) | null = null;
  /** A PASV/EPSV was sent: the next final reply may announce a port. */
  #pasvPending = false;
  /** The code of the multi-line reply being read (its inner lines are text, not replies). */
  #multiLine: string | null = null;
  #clientSpoke = false;
  #serverSpoke = false;
  /** The client began with a TLS hello (implicit FTPS): the server must answer in TLS too. */
  #implicitTls = false;
  #closing = false;
  /** A 227/229's port is being published to the other relays: its reply waits until then. */
  #announcing: Promise<void> | null = null;
  /** Server bytes that came while `#announcing`, unread. */
  readonly #serverQueue: Buffer[] = [];
  #queuedBytes = 0;

  constructor(session: FtpControlSession, ctx: FtpContext) {
    this.#s = session;
    this.#ctx = ctx;
    this.#log = ctx.splice.logger.child({ connectionId: session.connectionId, ftp: true });
    this.#clientAddress = normalizeHost(unmapIPv4(session.socket.remoteAddress ?? ""));
    this.#relayAddress = normalizeHost(unmapIPv4(session.socket.localAddress ?? ""));
  }

  /** The control connection is over: what it announced or set up goes with it. */
  closed(): void {
    this.#cancelActive();
    this.#ctx.expectations.dropControl(this.#s.owner, this.#s.connectionId);
  }

  // ---- server → client ------------------------------------------------------------------

  fromStream(chunk: Buffer): Buffer {
    if (!this.#serverSpoke) {
      this.#serverSpoke = true;
      if (this.#implicitTls && chunk[0] !== TLS_HANDSHAKE) {
        // a plain FTP server after a client "TLS hello": the channel is not encrypted, so it
        // must not pass unread
        this.#log.warn("the client began with TLS but the server answers in clear; closing");
        this.#s.stream.reset(RESET_CODE.CANCELLED, "clear-text FTP after a client TLS hello");
        abortSocket(this.#s.socket);
        return NOTHING;
      }
    }
    if (this.#announcing !== null) {
      this.#queueServer(chunk);
      return NOTHING;
    }
    return this.#readServer(chunk);
  }

  /** What reaches the client of `chunk`; stops at a 227/229 whose port is still being published. */
  #readServer(chunk: Buffer): Buffer {
    if (this.#opaque) return chunk;
    this.#fromServer += chunk.toString("latin1");
    let out = "";
    for (;;) {
      const nl = this.#fromServer.indexOf("\n");
      if (nl < 0) break;
      const line = this.#fromServer.slice(0, nl + 1);
      this.#fromServer = this.#fromServer.slice(nl + 1);
      const piece = this.#serverLine(line);
      if (this.#announcing !== null) {
        // the client must not see the port before every relay would let its data CONNECT in
        this.#holdFor(this.#announcing, piece);
        break;
      }
      out += piece;
      if (this.#opaque) {
        // after 234 the rest is TLS: pass it on as it came
        out += this.#fromServer;
        this.#fromServer = "";
        break;
      }
    }
    if (this.#fromServer.length > MAX_LINE) {
      this.#log.warn("FTP server sent an overlong line; closing the control connection");
      this.#s.stream.reset(RESET_CODE.INTERNAL, "overlong FTP reply line");
      abortSocket(this.#s.socket);
      return NOTHING;
    }
    return out.length > 0 ? Buffer.from(out, "latin1") : NOTHING;
  }

  /** Server bytes that came while a port was being published, kept in order within a bound. */
  #queueServer(chunk: Buffer): void {
    this.#queuedBytes += chunk.length;
    if (this.#queuedBytes > MAX_LINE) {
      this.#log.warn("FTP server kept sending while its data port was published; closing");
      this.#s.stream.reset(RESET_CODE.INTERNAL, "FTP server flooded the control connection");
      abortSocket(this.#s.socket);
      return;
    }
    this.#serverQueue.push(chunk);
  }

  /** Once `published` settles: `line` to the client, then what the server sent meanwhile. */
  #holdFor(published: Promise<void>, line: string): void {
    const resume = (): void => {
      this.#announcing = null;
      const socket = this.#s.socket;
      if (socket.destroyed) return;
      socket.write(Buffer.from(line, "latin1"));
      // the rest of the chunk the reply came in, then the chunks that came after it
      let out = this.#readServer(NOTHING);
      while (this.#announcing === null && this.#serverQueue.length > 0) {
        const next = this.#serverQueue.shift()!;
        this.#queuedBytes -= next.length;
        out = Buffer.concat([out, this.#readServer(next)]);
      }
      if (out.length > 0) socket.write(out);
    };
    published.then(resume, (err: unknown) => {
      // the other relays will not know this port; this one still does, as a single relay would
      this.#log.warn({ err: String(err) }, "could not publish the announced data port to the other relays");
      resume();
    });
  }

  #serverLine(line: string): string {
    const text = line.replace(/\r?\n$/, "");
    if (this.#multiLine !== null) {
      // inside a multi-line reply only "NNN " of the same code ends it; the rest is text
      if (text.startsWith(`${this.#multiLine} `)) this.#multiLine = null;
      return line;
    }
    const head = /^(\d{3})([ -])/.exec(text);
    if (!head) return line;
    if (head[2] === "-") {
      this.#multiLine = head[1]!;
      return line;
    }
    if (this.#authPending) {
      this.#authPending = false;
      if (text.startsWith("234")) {
        this.#goOpaque("AUTH accepted; the control channel is encrypted from here on");
      }
      return line;
    }
    const solicited = this.#pasvPending;
    this.#pasvPending = false;
    const pasv = parsePasvReply(text);
    if (pasv) {
      // never show the client an internal or NAT'ed address, asked for or not
      const announce = this.#announceAddress();
      if (solicited) this.#expect(pasv.port, announce);
      this.#rewrote(pasv.port, announce, solicited);
      return formatPasvReply(announce, pasv.port);
    }
    const epsv = parseEpsvReply(text);
    if (epsv !== null && solicited) {
      this.#expect(epsv, null);
      this.#rewrote(epsv, null, solicited);
    }
    return line;
  }

  #rewrote(port: number, announced: string | null, solicited: boolean): void {
    const ch = this.#ctx.splice.events.ftpPassiveRewrite;
    if (ch.active) {
      ch.publish({ relayId: ch.relayId, connectionId: this.#s.connectionId, port, announced, solicited });
    }
  }

  #announceAddress(): string {
    if (this.#ctx.pasvAddress) return this.#ctx.pasvAddress;
    return isIPv4(this.#relayAddress) ? this.#relayAddress : "0.0.0.0";
  }

  /** Let this client, and no one else, open the announced port for a short while. */
  #expect(port: number, announced: string | null): void {
    this.#cancelActive();
    const hosts = new Set([normalizeHost(this.#s.virtualHost), this.#relayAddress]);
    if (announced) hosts.add(announced);
    const published = this.#ctx.expectations.add({
      owner: this.#s.owner,
      controlId: this.#s.connectionId,
      port,
      hosts,
      mapping: this.#s.mapping,
      internalHost: this.#s.internalHost,
      internalPort: port,
      agentId: this.#s.tunnel.agentId,
      expiresAt: Date.now() + DATA_EXPECTATION_TTL_MS,
    });
    if (published) this.#announcing = published;
    this.#log.debug({ port }, "passive data port announced");
  }

  // ---- client → server ------------------------------------------------------------------

  fromSocket(chunk: Buffer, pipe: PipeControl): void {
    if (this.#closing) return;
    if (this.#opaque) {
      pipe.toStream(chunk);
      return;
    }
    const first = !this.#clientSpoke;
    this.#clientSpoke = true;
    if (first && !this.#serverSpoke && chunk[0] === TLS_HANDSHAKE) {
      // implicit FTPS: TLS from the first byte, before the server said anything
      this.#implicitTls = true;
      this.#goOpaque("TLS from the first byte (implicit FTPS); the control channel is opaque");
      pipe.toStream(chunk);
      return;
    }
    this.#fromClient += chunk.toString("latin1");
    if (this.#fromClient.length > MAX_LINE && this.#fromClient.indexOf("\n") < 0) {
      this.#log.warn("FTP client sent an overlong line; closing the control connection");
      this.#closing = true;
      this.#fromClient = "";
      const socket = this.#s.socket;
      socket.end("500 Line too long.\r\n", () => socket.destroy());
      this.#s.stream.reset(RESET_CODE.CANCELLED, "overlong FTP command line");
      return;
    }
    this.#drainClient(pipe);
  }

  #drainClient(pipe: PipeControl): void {
    while (!this.#busy && !this.#opaque) {
      const nl = this.#fromClient.indexOf("\n");
      if (nl < 0) break;
      const line = this.#fromClient.slice(0, nl + 1);
      this.#fromClient = this.#fromClient.slice(nl + 1);
      const { verb, arg, ambiguous } = splitCommand(line.replace(/\r?\n$/, ""));
      if (ambiguous) {
        // never forwarded: the server might read a PORT the relay did not check
        this.#s.socket.write("500 Command refused: a Telnet IAC byte that is no Telnet command.\r\n");
        continue;
      }
      if (verb === "PORT" || verb === "EPRT") {
        this.#busy = true;
        pipe.hold();
        void this.#active(verb, arg).then(
          (r) => {
            this.#busy = false;
            if (r.forward) pipe.toStream(Buffer.from(r.forward, "latin1"));
            if (r.reply && !this.#s.socket.destroyed) this.#s.socket.write(r.reply);
            this.#drainClient(pipe);
            if (!this.#busy) pipe.release();
          },
          (err: unknown) => {
            this.#log.warn({ err: String(err) }, "active-mode setup failed; closing the control connection");
            this.#s.stream.reset(RESET_CODE.INTERNAL, "active-mode setup failed");
            abortSocket(this.#s.socket);
          },
        );
        return;
      }
      if (verb === "PASV" || verb === "EPSV") {
        this.#cancelActive();
        this.#pasvPending = arg.toUpperCase() !== "ALL";
      }
      if (verb === "AUTH") this.#authPending = true;
      if (verb === "LPRT" || verb === "LPSV") {
        this.#s.socket.write("502 Command not implemented.\r\n");
        continue;
      }
      pipe.toStream(Buffer.from(line, "latin1"));
    }
    if (this.#opaque && this.#fromClient.length > 0) {
      pipe.toStream(Buffer.from(this.#fromClient, "latin1"));
      this.#fromClient = "";
    }
  }

  #goOpaque(why: string): void {
    this.#opaque = true;
    this.#log.debug(why);
  }

  /**
   * PORT/EPRT: check the address, have the agent listen on-premise, and name that listener
   * to the server. Resolves to what to forward, or the reply that refuses the command.
   */
  async #active(verb: "PORT" | "EPRT", arg: string): Promise<{ forward?: string; reply?: string }> {
    const target: HostPort | null = verb === "PORT" ? parsePortArgument(arg) : parseEprtArgument(arg);
    if (!target) return { reply: "501 Syntax error in parameters or arguments.\r\n" };
    const host = normalizeHost(unmapIPv4(target.host));
    const as = (h: string, port: number): string =>
      verb === "PORT" ? formatPortCommand(h, port) : formatEprtCommand(h, port);
    if (await this.#ctx.expectations.isBindListen(this.#s.owner, host, target.port)) {
      // the client did a SOCKS BIND itself and names the agent's listener: pass it on
      return this.#s.socket.destroyed ? {} : { forward: as(host, target.port) };
    }
    if (target.port < 1024) {
      // RFC 2577: no data connections to privileged ports
      return { reply: "504 Data port below 1024 refused.\r\n" };
    }
    if (host !== this.#clientAddress) {
      const bounce = this.#ctx.splice.events.ftpBounceRefused;
      if (bounce.active) {
        bounce.publish({
          relayId: bounce.relayId,
          connectionId: this.#s.connectionId,
          clientName: this.#s.who.clientName,
          verb,
          named: `${target.host}:${target.port}`,
          clientAddress: this.#clientAddress,
        });
      }
      return {
        reply: `500 ${verb} refused: the data address must be your own (${this.#clientAddress}).\r\n`,
      };
    }
    this.#cancelActive();
    const s = this.#s;
    const giveBack = this.#ctx.bindListeners.take(
      clientKey(s.who.clientId, this.#clientAddress),
      s.tunnel.agentId,
    );
    if (giveBack instanceof UnderpassError) {
      this.#log.info({ err: giveBack.message }, "no active-mode listener: a BIND bound bit");
      return { reply: "425 Can't open data connection: too many listeners.\r\n" };
    }
    const listen = await openOnPremises(
      this.#s.tunnel,
      OPEN_KIND.BIND,
      this.#s.internalHost,
      this.#s.internalPort,
      this.#ctx.bindTimeoutMs,
      this.#ctx.splice.events,
    );
    if (listen instanceof UnderpassError) {
      giveBack();
      this.#log.info({ err: listen.message }, "the agent could not listen for active-mode data");
      return { reply: "425 Can't open data connection.\r\n" };
    }
    if (this.#s.socket.destroyed) {
      giveBack();
      listen.stream.reset(RESET_CODE.CANCELLED, "control connection closed");
      return {};
    }
    if (verb === "PORT" && !isIPv4(listen.address)) {
      giveBack();
      listen.stream.reset(RESET_CODE.CANCELLED, "PORT cannot name an IPv6 listener");
      return { reply: "425 Can't open data connection: use EPRT.\r\n" };
    }
    this.#activeStream = listen.stream;
    this.#activeGiveBack = giveBack;
    // its place is given back when the peer comes, the next PORT/EPRT/PASV, or the control
    // connection's end (a listener that timed out on premises counts until then: one at most)
    this.#activeCancel = this.#ctx.bindPeers.expect(listen.stream, (peer) => {
      giveBack();
      if (this.#activeStream === listen.stream) {
        this.#activeStream = null;
        this.#activeCancel = null;
        this.#activeGiveBack = null;
      }
      this.#dialBack(listen.stream, target, peer);
    });
    this.#log.debug(
      { client: `${target.host}:${target.port}`, listen: `${listen.address}:${listen.port}` },
      "active-mode data: the agent listens",
    );
    return { forward: as(listen.address, listen.port) };
  }

  #cancelActive(): void {
    this.#activeGiveBack?.();
    this.#activeGiveBack = null;
    this.#activeCancel?.();
    this.#activeCancel = null;
    this.#activeStream?.reset(RESET_CODE.CANCELLED, "no longer wanted");
    this.#activeStream = null;
  }

  /** The FTP server connected to the agent's listener: carry it to the client's own address. */
  #dialBack(stream: MuxStream, client: HostPort, peer: BindPeer): void {
    const reservation = this.#ctx.budget.reserve(clientKey(this.#s.who.clientId, this.#clientAddress));
    if (reservation instanceof UnderpassError) {
      this.#log.info({ err: reservation.message }, "active-mode data refused: the buffer budget bit");
      stream.reset(RESET_CODE.CANCELLED, reservation.message);
      this.#dialed(client, peer, null, reservation.message);
      return;
    }
    const socket = connect({ host: client.host, port: client.port, allowHalfOpen: true, noDelay: true });
    const timer = setTimeout(() => socket.destroy(new Error("timed out")), this.#ctx.dialTimeoutMs);
    socket.once("error", (err) => {
      clearTimeout(timer);
      this.#log.info(
        { err: err.message, client: `${client.host}:${client.port}` },
        "active-mode dial-back failed",
      );
      stream.reset(RESET_CODE.CONNECTION_RESET, `cannot reach the client: ${err.message}`);
      reservation.release();
      this.#dialed(client, peer, null, err.message);
    });
    socket.once("connect", () => {
      clearTimeout(timer);
      socket.removeAllListeners("error");
      if (stream.phase === "closed") {
        reservation.release();
        socket.destroy();
        return;
      }
      const s = this.#s;
      const data = splice(
        this.#ctx.splice,
        {
          grant: "ftp-active-data",
          who: s.who,
          mapping: s.mapping,
          virtualHost: s.virtualHost,
          virtualPort: client.port,
          internalHost: peer.address,
          internalPort: peer.port,
          tunnel: s.tunnel,
          stream,
          socket,
          remoteAddress: client.host,
          remotePort: client.port,
          openMs: null,
          reservation,
        },
        NOTHING,
      );
      this.#dialed(client, peer, data.id, null);
    });
  }

  #dialed(client: HostPort, peer: BindPeer, dataConnectionId: string | null, error: string | null): void {
    const ch = this.#ctx.splice.events.ftpActiveDial;
    if (!ch.active) return;
    ch.publish({
      relayId: ch.relayId,
      connectionId: this.#s.connectionId,
      dataConnectionId,
      clientName: this.#s.who.clientName,
      dialBack: `${client.host}:${client.port}`,
      peer: `${peer.address}:${peer.port}`,
      outcome: error === null ? "connected" : "failed",
      error,
    });
  }
}
