/**
 * One control connection of the demo FTP server: RFC 959 commands, RFC 1639 LPSV/LPRT,
 * RFC 2428 EPSV/EPRT and RFC 3659 SIZE/MDTM/MLSD/MLST. Commands run one at a time in arrival
 * order; ABOR is the exception and interrupts a running transfer (RFC 959 §4.1.3).
 */
import { createHash, timingSafeEqual } from "node:crypto";
import type { Socket } from "node:net";
import { Readable } from "node:stream";
import type { Logger } from "../../shared/logger.js";
import { DataChannel, type DataChannelConfig } from "./ftp-channel.js";
import { FtpCommandReader } from "./ftp-command-reader.js";
import { receiveFromSocket, sendOnSocket } from "./ftp-data.js";
import {
  type Entry,
  type FtpFileSystem,
  FtpReplyError,
  formatListLine,
  formatMlsxLine,
  formatTimeVal,
  MLST_FACTS,
} from "./ftp-fs.js";

export interface SessionConfig extends DataChannelConfig {
  readonly fs: FtpFileSystem;
  /** User name → password; checked in constant time. */
  readonly users: ReadonlyMap<string, string>;
  /** Whether `anonymous`/`ftp` may log in with any password. */
  readonly anonymous: boolean;
  readonly allowUpload: boolean;
  /** Control connection inactivity timeout outside transfers, in ms. */
  readonly idleTimeoutMs: number;
  readonly logger: Logger;
}

/** Longest command line accepted, in bytes (RFC 959 sets no limit; real commands are short). */
const MAX_LINE = 4096;
/** Commands queued behind a running one before the control socket stops being read. */
const MAX_QUEUE = 32;
/** Unsent reply bytes after which a client that does not read is cut off. */
const MAX_PENDING_REPLY = 1 << 20;
const MAX_FAILED_LOGINS = 3;
/** FEAT lines (RFC 2389) besides MLST, whose facts depend on OPTS MLST. */
const FEATURES = ["EPRT", "EPSV", "MDTM", "REST STREAM", "SIZE", "UTF8"];
const PRE_LOGIN = new Set(["USER", "PASS", "QUIT", "FEAT", "SYST", "NOOP", "OPTS", "HELP"]);

type Handler = (arg: string) => void | Promise<void>;

function need(arg: string): string {
  if (arg.trim() === "") throw new FtpReplyError(501, "Syntax error in parameters or arguments");
  return arg;
}

function digest(text: string): Buffer {
  return createHash("sha256").update(text, "utf8").digest();
}

export class FtpSession {
  private readonly log: Logger;
  private readonly queue: string[] = [];
  private running: Promise<void> | undefined;
  private readonly reader = new FtpCommandReader(MAX_LINE);
  private user: string | undefined;
  private loggedIn = false;
  private failedLogins = 0;
  private cwd = "/";
  private ascii = false;
  private restOffset = 0;
  private readonly data: DataChannel;
  private mlstFacts = new Set<string>(MLST_FACTS);
  private closed = false;
  private readonly handlers: Record<string, Handler>;

  constructor(
    private readonly socket: Socket,
    private readonly config: SessionConfig,
  ) {
    this.log = config.logger.child({ remote: `${socket.remoteAddress}:${socket.remotePort}` });
    this.handlers = this.commandTable();
    this.data = new DataChannel(socket, config, (code, text) => this.reply(code, text));
    socket.setNoDelay(true);
    socket.on("data", (chunk: Buffer) => this.onData(chunk));
    socket.on("error", (err) => this.log.debug({ err: err.message }, "control connection error"));
    socket.on("close", () => void this.destroy());
    socket.setTimeout(config.idleTimeoutMs, () => {
      if (this.data.transferring) return; // the control connection is quiet during a transfer
      this.reply(421, "Idle timeout, closing control connection");
      this.end();
    });
    this.reply(220, "Underpass demo FTP server ready");
  }

  /** Close everything this session holds; resolves once its running command has finished. */
  destroy(): Promise<void> {
    if (!this.closed) {
      this.closed = true;
      this.data.close();
      this.socket.destroy();
    }
    return this.running ?? Promise.resolve();
  }

  // ---- control connection ----------------------------------------------------------------

  private onData(chunk: Buffer): void {
    for (const line of this.reader.push(chunk)) {
      if (line.kind === "too-long") this.reply(500, "Command line too long");
      else this.onLine(line.text);
    }
  }

  private onLine(line: string): void {
    if (line.trim() === "") return;
    if (/^\s*ABOR\s*$/i.test(line) && this.data.transferring) {
      this.data.abort(); // the transfer answers 426, then 226 for the ABOR
      return;
    }
    this.queue.push(line);
    if (this.queue.length >= MAX_QUEUE) this.socket.pause();
    this.kick();
  }

  private kick(): void {
    if (this.running || this.closed) return;
    this.running = this.drain().finally(() => {
      this.running = undefined;
      if (this.queue.length > 0) this.kick();
    });
  }

  private async drain(): Promise<void> {
    for (let line = this.queue.shift(); line !== undefined && !this.closed; line = this.queue.shift()) {
      if (this.queue.length < MAX_QUEUE && this.socket.isPaused()) this.socket.resume();
      await this.execute(line);
    }
  }

  private async execute(line: string): Promise<void> {
    const space = line.indexOf(" ");
    const verb = (space < 0 ? line : line.slice(0, space)).toUpperCase();
    const arg = space < 0 ? "" : line.slice(space + 1);
    this.log.debug({ verb, arg: verb === "PASS" ? "[redacted]" : arg }, "ftp command");
    const handler = Object.hasOwn(this.handlers, verb) ? this.handlers[verb] : undefined;
    if (!handler) return this.reply(502, "Command not implemented");
    if (!this.loggedIn && !PRE_LOGIN.has(verb)) return this.reply(530, "Please login with USER and PASS");
    try {
      await handler(arg);
    } catch (err) {
      if (err instanceof FtpReplyError) return this.reply(err.reply, err.message);
      this.log.warn({ err, verb }, "ftp command failed");
      this.reply(451, "Requested action aborted: local error in processing");
    }
  }

  /** Send a reply; several lines make an RFC 959 §4.2 multi-line reply. */
  private reply(code: number, text: string | readonly string[]): void {
    if (this.closed || !this.socket.writable) return;
    const lines = typeof text === "string" ? [text] : text;
    const body = lines.map((l, i) =>
      i === lines.length - 1 ? `${code} ${l}` : i === 0 ? `${code}-${l}` : ` ${l}`,
    );
    this.socket.write(`${body.join("\r\n")}\r\n`);
    if (this.socket.writableLength > MAX_PENDING_REPLY) void this.destroy();
  }

  private end(): void {
    this.closed = true;
    this.data.close();
    this.socket.end();
  }

  // ---- commands --------------------------------------------------------------------------

  private commandTable(): Record<string, Handler> {
    const fs = this.config.fs;
    const path = (arg: string) => fs.resolve(this.cwd, need(arg));
    const writable = () => {
      if (!this.config.allowUpload) throw new FtpReplyError(550, "Permission denied (uploads are off)");
    };
    const table: Record<string, Handler> = {
      USER: (arg) => this.userCommand(need(arg)),
      PASS: (arg) => this.passCommand(arg),
      QUIT: () => {
        this.reply(221, "Goodbye");
        this.end();
      },
      SYST: () => this.reply(215, "UNIX Type: L8"),
      FEAT: () => {
        const facts = MLST_FACTS.map((f) => `${f}${this.mlstFacts.has(f) ? "*" : ""};`).join("");
        this.reply(211, ["Features:", ...FEATURES, `MLST ${facts}`, "End"]);
      },
      HELP: () =>
        this.reply(214, ["The following commands are recognized:", Object.keys(table).join(" "), "Help OK"]),
      NOOP: () => this.reply(200, "NOOP ok"),
      OPTS: (arg) => this.optsCommand(need(arg)),
      TYPE: (arg) => {
        const t = need(arg).toUpperCase().trim();
        if (/^(I|L 8)$/.test(t)) this.ascii = false;
        else if (/^A( N)?$/.test(t)) this.ascii = true;
        else throw new FtpReplyError(/^(E|A [TC]|L \d+)$/.test(t) ? 504 : 501, `Type "${t}" not supported`);
        this.reply(200, `Switching to ${this.ascii ? "ASCII" : "Binary"} mode`);
      },
      MODE: (arg) => this.onlyParameter(arg, "S", "BC", "Mode"),
      STRU: (arg) => this.onlyParameter(arg, "F", "RP", "Structure"),
      ALLO: () => this.reply(202, "No storage allocation necessary"),
      PWD: () => this.reply(257, `"${this.cwd.replaceAll('"', '""')}" is the current directory`),
      CWD: async (arg) => {
        const target = path(arg);
        await fs.directory(target);
        this.cwd = target;
        this.reply(250, "Directory successfully changed");
      },
      CDUP: () => table["CWD"]!(".."),
      MKD: async (arg) => {
        writable();
        const target = path(arg);
        await fs.makeDirectory(target);
        this.reply(257, `"${target.replaceAll('"', '""')}" created`);
      },
      RMD: async (arg) => {
        writable();
        await fs.removeDirectory(path(arg));
        this.reply(250, "Directory removed");
      },
      DELE: async (arg) => {
        writable();
        await fs.deleteFile(path(arg));
        this.reply(250, "File deleted");
      },
      SIZE: async (arg) => this.reply(213, String((await fs.file(path(arg))).stats.size)),
      MDTM: async (arg) => this.reply(213, formatTimeVal((await fs.file(path(arg))).stats.mtime)),
      REST: (arg) => {
        if (!/^\d{1,15}$/.test(arg.trim())) throw new FtpReplyError(501, "REST needs a byte offset");
        this.restOffset = Number(arg.trim());
        this.reply(350, `Restarting at ${this.restOffset}. Send RETR to resume`);
      },
      ABOR: () => {
        this.data.reset(); // no transfer running, or ABOR would have been handled on arrival
        this.reply(225, "No transfer to abort");
      },
      PASV: () => this.data.passive("PASV", ""),
      LPSV: () => this.data.passive("LPSV", ""),
      EPSV: (arg) => this.data.passive("EPSV", arg.trim().toUpperCase()),
      PORT: (arg) => this.data.port(need(arg)),
      LPRT: (arg) => this.data.lprt(need(arg)),
      EPRT: (arg) => this.data.eprt(need(arg)),
      RETR: (arg) => this.retrieve(path(arg)),
      STOR: async (arg) => {
        writable();
        if (this.takeRest() !== 0) throw new FtpReplyError(554, "REST is supported for RETR only");
        const target = path(arg);
        this.data.require(); // before the file is truncated
        const sink = (await fs.openForWrite(target)).createWriteStream();
        await this.data.run(`data connection for ${target}`, sink, (socket, signal) =>
          receiveFromSocket(socket, sink, this.ascii, signal, this.config.dataTimeoutMs),
        );
      },
      LIST: (arg) => this.listing("LIST", arg),
      NLST: (arg) => this.listing("NLST", arg),
      MLSD: (arg) => this.listing("MLSD", arg),
      MLST: async (arg) => {
        const target = fs.resolve(this.cwd, arg.trim() === "" ? "." : arg);
        const { stats } = await fs.existing(target);
        const line = formatMlsxLine({ name: target, stats }, this.mlstFacts, this.config.allowUpload);
        this.reply(250, [`Listing ${target}`, line, "End"]);
      },
    };
    // RFC 775 X-commands, still sent by some clients.
    for (const name of ["PWD", "CWD", "CUP", "MKD", "RMD"])
      table[`X${name}`] = table[name === "CUP" ? "CDUP" : name]!;
    return table;
  }

  private userCommand(user: string): void {
    this.user = user;
    this.loggedIn = false;
    const anonymous = this.isAnonymous(user);
    this.reply(
      331,
      anonymous ? "Anonymous login ok, send your e-mail address as password" : "Password required",
    );
  }

  private passCommand(password: string): void {
    const user = this.user;
    if (user === undefined) throw new FtpReplyError(503, "Login with USER first");
    this.user = undefined;
    const expected = this.config.users.get(user);
    const ok =
      expected !== undefined ? timingSafeEqual(digest(password), digest(expected)) : this.isAnonymous(user);
    if (ok) {
      this.loggedIn = true;
      this.log.info({ user }, "ftp login");
      return this.reply(230, "Login successful");
    }
    this.reply(530, "Login incorrect");
    if (++this.failedLogins >= MAX_FAILED_LOGINS) {
      this.reply(421, "Too many failed logins");
      this.end();
    }
  }

  private isAnonymous(user: string): boolean {
    return this.config.anonymous && !this.config.users.has(user) && /^(anonymous|ftp)$/i.test(user);
  }

  private optsCommand(arg: string): void {
    const [option = "", value = ""] = arg.trim().split(/\s+/, 2);
    switch (option.toUpperCase()) {
      case "UTF8":
        if (value.toUpperCase() === "OFF") throw new FtpReplyError(504, "UTF8 is always on");
        return this.reply(200, "Always in UTF8 mode");
      case "MLST": {
        const chosen = value.split(";").map((f) => f.toLowerCase());
        this.mlstFacts = new Set(MLST_FACTS.filter((f) => chosen.includes(f)));
        return this.reply(200, `MLST OPTS ${[...this.mlstFacts].map((f) => `${f};`).join("")}`);
      }
      default:
        throw new FtpReplyError(501, "Option not understood");
    }
  }

  /** MODE and STRU: one supported value, some known but unsupported (504), the rest malformed (501). */
  private onlyParameter(arg: string, supported: string, known: string, what: string): void {
    const value = need(arg).trim().toUpperCase();
    if (value === supported) return this.reply(200, `${what} set to ${value}`);
    throw new FtpReplyError(
      value.length === 1 && known.includes(value) ? 504 : 501,
      `${what} ${value} not supported`,
    );
  }

  // ---- transfers -----------------------------------------------------------------------

  private takeRest(): number {
    const offset = this.restOffset;
    this.restOffset = 0;
    return offset;
  }

  private async retrieve(target: string): Promise<void> {
    const offset = this.takeRest();
    this.data.require();
    const { handle, size } = await this.config.fs.openForRead(target);
    const source = handle.createReadStream({ start: offset });
    const mode = this.ascii ? "ASCII" : "BINARY";
    await this.data.run(
      `${mode} mode data connection for ${target} (${size} bytes)`,
      source,
      (socket, signal) => sendOnSocket(source, socket, this.ascii, signal, this.config.dataTimeoutMs),
    );
  }

  private async listing(kind: "LIST" | "NLST" | "MLSD", arg: string): Promise<void> {
    this.takeRest();
    // LIST/NLST arguments may start with ls options (`LIST -la`), which are ignored.
    const pathArg = kind === "MLSD" ? arg.trim() : arg.replace(/^\s*(?:-[a-zA-Z]+\s*)*/, "");
    const target = this.config.fs.resolve(this.cwd, pathArg === "" ? "." : pathArg);
    this.data.require();
    if (kind === "MLSD" && !(await this.config.fs.existing(target)).stats.isDirectory()) {
      throw new FtpReplyError(501, "MLSD needs a directory");
    }
    const entries = await this.config.fs.list(target);
    const now = Date.now();
    const line = (e: Entry) =>
      kind === "LIST"
        ? formatListLine(e, now)
        : kind === "NLST"
          ? e.name
          : formatMlsxLine(e, this.mlstFacts, this.config.allowUpload);
    const text = entries.map((e) => `${line(e)}\r\n`).join("");
    const source = Readable.from([Buffer.from(text, "utf8")]);
    await this.data.run(`ASCII mode data connection for ${kind}`, source, (socket, signal) =>
      sendOnSocket(source, socket, false, signal, this.config.dataTimeoutMs),
    );
  }
}
