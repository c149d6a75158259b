/**
 * The data connection state of one demo FTP session: what PASV/PORT (RFC 959 §4.1.2), LPSV/LPRT
 * (RFC 1639) or EPSV/EPRT (RFC 2428) set up, used by exactly one transfer, and the replies that
 * bracket the transfer (150, then 226/426/451, or 425).
 */
import { isIPv4, type Socket } from "node:net";
import type { Readable, Writable } from "node:stream";
import {
  type DataAddressResult,
  formatEpsvPort,
  formatHostPortNumbers,
  formatLongHostPort,
  parseEprtAddress,
  parseLprtAddress,
  parsePortAddress,
} from "../../shared/ftp/data-address.js";
import { unmapIPv4 } from "../../shared/net/host.js";
import type { PortRange } from "../../shared/net/port-range.js";
import { connectActive, PassiveListener, sameHost, type TransferResult } from "./ftp-data.js";
import { FtpReplyError } from "./ftp-fs.js";

export interface DataChannelConfig {
  readonly pasvPorts: PortRange | undefined;
  /** IPv4 address announced in 227; default the control connection's local address. */
  readonly pasvAddress: string | undefined;
  /** Next port of `pasvPorts` to try, shared by every session. */
  readonly pasvCursor: { next: number };
  /** Passive accept, active connect and transfer inactivity timeout, in ms. */
  readonly dataTimeoutMs: number;
  /** Allow data connections to and from other hosts than the client's (FTP bounce, RFC 2577). */
  readonly allowForeignDataAddress: boolean;
}

type Setup = { kind: "passive"; listener: PassiveListener } | { kind: "active"; host: string; port: number };

/** Moves bytes between the data connection and a local stream; resolves with how it ended. */
export type Pump = (socket: Socket, signal: AbortSignal) => Promise<TransferResult>;

export class DataChannel {
  private setup: Setup | undefined;
  private transfer: AbortController | undefined;
  private abortRequested = false;
  private epsvAll = false;
  private closed = false;

  constructor(
    private readonly control: Socket,
    private readonly config: DataChannelConfig,
    private readonly reply: (code: number, text: string) => void,
  ) {}

  /** True while a transfer command runs (from its 150 to its final reply). */
  get transferring(): boolean {
    return this.transfer !== undefined;
  }

  /** ABOR during a transfer: the transfer answers 426, then 226 for the ABOR (RFC 959 §4.1.3). */
  abort(): void {
    this.abortRequested = true;
    this.transfer?.abort();
  }

  /** Forget the set-up connection (a new PASV/PORT, or ABOR with no transfer running). */
  reset(): void {
    if (this.setup?.kind === "passive") this.setup.listener.close();
    this.setup = undefined;
  }

  /** The session ends: stop the transfer and every listener, for good. */
  close(): void {
    this.closed = true;
    this.transfer?.abort();
    this.reset();
  }

  /** 425 unless a passive or active setup came first; checked before a transfer touches any file. */
  require(): void {
    if (!this.setup) throw new FtpReplyError(425, "Use PORT, EPRT, PASV or EPSV first");
  }

  /** PASV, LPSV (RFC 1639 §3) or EPSV with its argument: "", "1", "2" or "ALL". */
  async passive(command: "PASV" | "LPSV" | "EPSV", arg: string): Promise<void> {
    const local = unmapIPv4(this.control.localAddress ?? "");
    const family = isIPv4(local) ? "1" : "2";
    if (command === "EPSV" && arg === "ALL") {
      this.epsvAll = true;
      return this.reply(200, "EPSV ALL ok");
    }
    if (command === "EPSV" && arg !== "" && arg !== family) {
      if (arg !== "1" && arg !== "2") throw new FtpReplyError(501, "EPSV takes 1, 2 or ALL");
      throw new FtpReplyError(522, `Network protocol not supported, use (${family})`);
    }
    // RFC 2428 §4: after EPSV ALL every other data connection setup command is refused
    if (command !== "EPSV" && this.epsvAll) throw new FtpReplyError(503, "EPSV ALL is in effect, use EPSV");
    const announced = this.config.pasvAddress ?? local;
    if (command === "PASV" && !isIPv4(announced)) {
      throw new FtpReplyError(425, "PASV cannot announce IPv6, use EPSV");
    }
    this.reset();
    const listener = await PassiveListener.open({
      host: local,
      ports: this.config.pasvPorts,
      cursor: this.config.pasvCursor,
      peer: this.config.allowForeignDataAddress ? undefined : this.control.remoteAddress,
      timeoutMs: this.config.dataTimeoutMs,
    }).catch(() => undefined); // the address cannot be bound at all
    if (!listener) throw new FtpReplyError(425, "No free passive port, try again later");
    if (this.closed) return listener.close();
    this.setup = { kind: "passive", listener };
    switch (command) {
      case "EPSV":
        return this.reply(229, `Entering Extended Passive Mode ${formatEpsvPort(listener.port)}`);
      case "LPSV":
        return this.reply(
          228,
          `Entering Long Passive Mode (${formatLongHostPort(announced, listener.port)})`,
        );
      case "PASV":
        return this.reply(227, `Entering Passive Mode (${formatHostPortNumbers(announced, listener.port)})`);
      default: {
        const never: never = command;
        throw new Error(`unknown passive command ${String(never)}`);
      }
    }
  }

  /** PORT h1,h2,h3,h4,p1,p2 (RFC 959 §4.1.2). */
  port(arg: string): void {
    this.active(parsePortAddress(arg), "PORT");
  }

  /** LPRT af,hal,h1,...,pal,p1,p2 for IPv4 (af 4) or IPv6 (af 6) (RFC 1639 §2). */
  lprt(arg: string): void {
    this.active(parseLprtAddress(arg), "LPRT");
  }

  /** EPRT <d><net-prt><d><net-addr><d><tcp-port><d> with any delimiter (RFC 2428 §2). */
  eprt(arg: string): void {
    this.active(parseEprtAddress(arg), "EPRT");
  }

  /** Set up an active data connection to the address the command named. */
  private active(address: DataAddressResult, command: "PORT" | "LPRT" | "EPRT"): void {
    if (!address.ok && address.problem === "protocol") {
      // clients read the families they may use from these replies (RFC 1639 §4, RFC 2428 §2)
      if (command === "LPRT") throw new FtpReplyError(521, "Supported address families are (4, 6)");
      throw new FtpReplyError(522, "Network protocol not supported, use (1,2)");
    }
    if (!address.ok && address.problem !== "port") throw new FtpReplyError(501, address.message);
    if (this.epsvAll) throw new FtpReplyError(503, "EPSV ALL is in effect, use EPSV");
    if (!address.ok) throw new FtpReplyError(501, address.message);
    const { host, port } = address.value;
    if (!this.config.allowForeignDataAddress) {
      // RFC 2577 §3: no bounce attacks through other hosts or privileged ports.
      if (!sameHost(host, this.control.remoteAddress ?? "")) {
        throw new FtpReplyError(500, `Illegal ${command}: the data address must be the client's own`);
      }
      if (port < 1024) throw new FtpReplyError(500, `Illegal ${command}: privileged port ${port}`);
    }
    this.reset();
    this.setup = { kind: "active", host, port };
    this.reply(200, `${command} command successful`);
  }

  /**
   * Run one transfer over the set-up data connection, which it uses up: 150, then 226 only
   * after the data connection has flushed and closed, 426 when it broke or was aborted, 451
   * when the local stream failed, 425 when it could not be opened. `local` is destroyed on failure.
   */
  async run(what: string, local: Readable | Writable, pump: Pump): Promise<void> {
    const setup = this.setup;
    this.setup = undefined;
    if (!setup) {
      local.destroy();
      throw new FtpReplyError(425, "Use PORT, EPRT, PASV or EPSV first");
    }
    const controller = new AbortController();
    this.transfer = controller;
    this.abortRequested = false;
    try {
      let socket: Socket;
      try {
        if (setup.kind === "passive") {
          if (!setup.listener.usable) throw new Error("passive listener timed out");
          this.reply(150, `Opening ${what}`);
          socket = await setup.listener.accept(controller.signal);
        } else {
          socket = await connectActive(setup.host, setup.port, this.config.dataTimeoutMs, controller.signal);
          this.reply(150, `Opening ${what}`);
        }
      } catch {
        if (setup.kind === "passive") setup.listener.close();
        local.destroy();
        return this.finish(this.abortRequested ? "aborted" : undefined);
      }
      this.finish(await pump(socket, controller.signal));
    } finally {
      this.transfer = undefined;
    }
  }

  private finish(result: TransferResult | undefined): void {
    switch (result) {
      case undefined:
        return this.reply(425, "Cannot open data connection");
      case "complete":
        return this.reply(226, "Transfer complete");
      case "aborted":
        this.reply(426, "Connection closed; transfer aborted");
        return this.reply(226, "ABOR successful");
      case "local":
        return this.reply(451, "Requested action aborted: local error in processing");
      case "network":
        return this.reply(426, "Connection closed; transfer aborted");
      default: {
        const never: never = result;
        throw new Error(`unknown transfer result ${String(never)}`);
      }
    }
  }
}
