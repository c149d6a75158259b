/**
 * The FTP check: a real FTP session through the real path (relay SOCKS endpoint → tunnel →
 * agent → server), step by step — connect, greeting, login, then EPSV, PASV and, for FTP-aware
 * mappings, active mode — each with what the server announced, whether a mapping and the
 * agent's policy cover it, whether the data connection opened, the first names of a listing,
 * and for a failure a coded reason with a concrete fix.
 */
import { createServer, isIPv4, type Server, type Socket } from "node:net";
import {
  ConnectionRefusedError,
  HostUnreachableError,
  NoAgentError,
  NotAllowedError,
  type UnderpassError,
} from "../../shared/errors.js";
import { normalizeHost, unmapIPv4 } from "../../shared/net/host.js";
import { formatPortRange, rangeContains, translatePort } from "../../shared/net/port-range.js";
import type { MappingRecord } from "../store/store.js";
import type { FtpCheckCode } from "./check-codes.js";
import { formatEprtCommand, formatPortCommand, parseEpsvReply, parsePasvReply } from "./commands.js";
import { type FtpReply, FtpReplyReader, replyText } from "./reply-reader.js";

export type FtpCheckStepName = "connect" | "greeting" | "login" | "epsv" | "pasv" | "active";

export interface FtpCheckStep {
  readonly step: FtpCheckStepName;
  readonly ok: boolean;
  /** One line for a person. */
  readonly detail: string;
  /** Why it failed, or what to know although it passed. */
  readonly code?: FtpCheckCode;
  /** What to change, naming the mapping, port or setting. */
  readonly fix?: string;
  /** The server's reply line that decided the step. */
  readonly reply?: string;
  /** Passive modes: what the server announced (PASV: with an address). */
  readonly announced?: { readonly host: string | null; readonly port: number };
  /** Passive modes: the mapping that covers the data port, "ftp-aware" or null. */
  readonly coveredBy?: string | null;
  readonly dataOpened?: boolean;
  /** The first names of the listing. */
  readonly names?: readonly string[];
}

export interface FtpCheckAnswer {
  readonly mappingId: string;
  readonly target: string;
  /** Every step passed. */
  readonly ok: boolean;
  readonly steps: readonly FtpCheckStep[];
}

export interface FtpCheckInput {
  /** The control mapping under check. */
  readonly mapping: MappingRecord;
  /** Every mapping of its location, to tell which covers a data port. */
  readonly mappings: readonly MappingRecord[];
  /** A connection to host:port through the relay's SOCKS endpoint; rejects with a coded error. */
  connect(host: string, port: number): Promise<Socket>;
  readonly username: string;
  readonly password: string;
  readonly path: string;
  /** Bound on each step, in ms. */
  readonly stepTimeoutMs: number;
}

/** Names shown from a listing. */
const MAX_NAMES = 10;
/** Bytes of a listing read at most; the first names are all the check wants. */
const MAX_LISTING_BYTES = 256 * 1024;

/** How a data port is covered: a range mapping (and the internal port it leads to), the FTP-aware follower, or nothing. */
type Coverage =
  | { readonly kind: "mapping"; readonly mapping: MappingRecord; readonly internalPort: number }
  | { readonly kind: "ftp-aware" }
  | { readonly kind: "none"; readonly nearest: readonly MappingRecord[] };

function coverage(input: FtpCheckInput, port: number): Coverage {
  if (input.mapping.protocol === "ftp") return { kind: "ftp-aware" };
  const host = input.mapping.virtualHost;
  const sameHost = input.mappings.filter((m) => m.virtualHost === host && m.id !== input.mapping.id);
  const m = sameHost.find((x) => rangeContains(x.virtualPort, port));
  if (m)
    return { kind: "mapping", mapping: m, internalPort: translatePort(m.virtualPort, m.internalPort, port) };
  return { kind: "none", nearest: sameHost };
}

function coveredBy(c: Coverage): string | null {
  return c.kind === "mapping" ? c.mapping.id : c.kind === "ftp-aware" ? "ftp-aware" : null;
}

/** The step that explains a failed data connection to `port`, from the coded error and the coverage. */
function dataFailure(
  input: FtpCheckInput,
  port: number,
  c: Coverage,
  err: UnderpassError,
): Omit<FtpCheckStep, "step"> {
  const m = input.mapping;
  const vhost = m.virtualHost;
  const internal =
    c.kind === "mapping" ? `${c.mapping.internalHost}:${c.internalPort}` : `${m.internalHost}:${port}`;
  const base = { ok: false, coveredBy: coveredBy(c), dataOpened: false };
  if (err instanceof NotAllowedError && c.kind === "none") {
    const near = c.nearest.map((x) => `${x.id} covers ${formatPortRange(x.virtualPort)}`).join(", ");
    return {
      ...base,
      code: "UP_FTP_PASSIVE_PORT_NOT_MAPPED",
      detail: `the server announced passive port ${port}; no mapping of location ${m.location} covers ${vhost}:${port}`,
      fix: near
        ? `the server announced passive port ${port}; mapping ${near}: widen it to the server's passive range, and the agent's UNDERPASS_ALLOW too (or make ${m.id} FTP-aware: protocol "ftp")`
        : `add a mapping ${vhost}:<passive range> → ${m.internalHost}:<same range> in location ${m.location} covering port ${port}, and allow the range in the agent's UNDERPASS_ALLOW (or make ${m.id} FTP-aware: protocol "ftp")`,
    };
  }
  if (err instanceof NotAllowedError) {
    return {
      ...base,
      code: "UP_FTP_DATA_NOT_ALLOWED",
      detail: `the agent's local policy refuses ${internal}`,
      fix: `add ${internal} (the server's whole passive range) to the agent's UNDERPASS_ALLOW`,
    };
  }
  if (err instanceof NoAgentError) {
    return {
      ...base,
      code: "UP_FTP_NO_AGENT",
      detail: "the agent went away",
      fix: `start an agent of location ${m.location}`,
    };
  }
  if (err instanceof ConnectionRefusedError && c.kind === "mapping" && c.internalPort !== port) {
    return {
      ...base,
      code: "UP_FTP_DATA_PORT_SHIFTED",
      detail: `mapping ${c.mapping.id} sends virtual port ${port} to internal port ${c.internalPort}, where nothing listens`,
      fix: `map the passive range port for port: ${vhost}:${formatPortRange(c.mapping.virtualPort)} → ${c.mapping.internalHost}:${formatPortRange(c.mapping.virtualPort)}`,
    };
  }
  if (err instanceof ConnectionRefusedError) {
    return {
      ...base,
      code: "UP_FTP_DATA_REFUSED",
      detail: `${internal} refused the data connection`,
      fix: "check that the server's passive ports are open between the agent and the server",
    };
  }
  return {
    ...base,
    code: "UP_FTP_DATA_UNREACHABLE",
    detail: `the data connection to ${internal} failed: ${err.message}`,
    fix: "check that a firewall between the agent and the server lets the passive ports through",
  };
}

/** The step that explains a failed control connection. */
function connectFailure(m: MappingRecord, err: UnderpassError): FtpCheckStep {
  const target = `${m.internalHost}:${formatPortRange(m.internalPort)}`;
  const step = "connect" as const;
  if (err instanceof NoAgentError) {
    return {
      step,
      ok: false,
      code: "UP_FTP_NO_AGENT",
      detail: `no agent of location ${m.location} is connected (SOCKS reply 0x03)`,
      fix: `start an agent with a token of location ${m.location}: underpass agents add <name> --location ${m.location}, then underpass agent with UNDERPASS_AGENT_TOKEN`,
    };
  }
  if (err instanceof NotAllowedError) {
    return {
      step,
      ok: false,
      code: "UP_FTP_CONTROL_NOT_ALLOWED",
      detail: `the agent's local policy refuses ${target} (SOCKS reply 0x02)`,
      fix: `add ${target} to the agent's UNDERPASS_ALLOW`,
    };
  }
  if (err instanceof HostUnreachableError) {
    return {
      step,
      ok: false,
      code: "UP_FTP_CONTROL_UNREACHABLE",
      detail: `the agent cannot resolve or reach ${target} (SOCKS reply 0x04): ${err.message}`,
      fix: `check that ${m.internalHost} resolves and routes from the agent's host`,
    };
  }
  if (err instanceof ConnectionRefusedError) {
    return {
      step,
      ok: false,
      code: "UP_FTP_CONTROL_REFUSED",
      detail: `${target} refused the connection (SOCKS reply 0x05)`,
      fix: `check that the FTP server runs and listens on ${target}`,
    };
  }
  return { step, ok: false, code: "UP_FTP_CONTROL_FAILED", detail: err.message, fix: "see the relay's log" };
}

/** One FTP session; the steps it took. */
class Session {
  readonly steps: FtpCheckStep[] = [];
  readonly #input: FtpCheckInput;
  readonly #control: Socket;
  readonly #reader: FtpReplyReader;

  constructor(input: FtpCheckInput, control: Socket) {
    this.#input = input;
    this.#control = control;
    this.#reader = new FtpReplyReader(control);
  }

  #reply(): Promise<FtpReply> {
    return this.#reader.next(this.#input.stepTimeoutMs);
  }

  async #command(line: string): Promise<FtpReply> {
    this.#control.write(`${line}\r\n`);
    return this.#reply();
  }

  /** Greeting and login; false when the session cannot go on. */
  async open(): Promise<boolean> {
    const greeting = await this.#reply().catch((err: Error) => err);
    if (greeting instanceof Error || greeting.code !== 220) {
      this.steps.push({
        step: "greeting",
        ok: false,
        code: "UP_FTP_NO_GREETING",
        detail:
          greeting instanceof Error ? greeting.message : `the server greeted with ${replyText(greeting)}`,
        fix: "check that the mapping's internal port is the FTP server's control port",
        ...(greeting instanceof Error ? {} : { reply: replyText(greeting) }),
      });
      return false;
    }
    this.steps.push({ step: "greeting", ok: true, detail: replyText(greeting), reply: replyText(greeting) });

    const { username, password } = this.#input;
    let r = await this.#command(`USER ${username}`);
    if (r.code === 331) r = await this.#command(`PASS ${password}`);
    if (r.code !== 230) {
      this.steps.push({
        step: "login",
        ok: false,
        code: "UP_FTP_LOGIN_FAILED",
        detail: `the server refused the login of ${username}: ${replyText(r)}`,
        fix:
          username === "anonymous"
            ? "give a username and password the server accepts"
            : `check the password of ${username}`,
        reply: replyText(r),
      });
      return false;
    }
    this.steps.push({ step: "login", ok: true, detail: `logged in as ${username}`, reply: replyText(r) });
    return true;
  }

  /** EPSV or PASV, the data connection it announces, and a listing over it. */
  async passive(kind: "epsv" | "pasv"): Promise<void> {
    const m = this.#input.mapping;
    const r = await this.#command(kind.toUpperCase());
    const last = replyText(r);
    const announced = kind === "epsv" ? parseEpsvReply(last) : parsePasvReply(last);
    const port = typeof announced === "number" ? announced : (announced?.port ?? null);
    if (port === null) {
      this.steps.push({
        step: kind,
        ok: false,
        code: "UP_FTP_PASSIVE_UNSUPPORTED",
        detail: `the server answered ${last}`,
        fix:
          kind === "epsv"
            ? "clients must use PASV (curl --disable-epsv)"
            : "clients must use EPSV or active mode",
        reply: last,
      });
      return;
    }
    const host = typeof announced === "object" && announced !== null ? announced.host : null;
    const c = coverage(this.#input, port);
    let note: Pick<FtpCheckStep, "code" | "fix"> = {};
    // a client that trusts the 227 dials its address; one that ignores it dials the control host
    let dialHost = m.virtualHost;
    if (host !== null && m.protocol === "ftp") {
      note = {
        code: "UP_FTP_PASV_ADDRESS_REWRITTEN",
        fix: `the relay announces ${host} in the 227, so clients that trust the address reach the relay`,
      };
      dialHost = host;
    } else if (host !== null && normalizeHost(host) !== normalizeHost(m.virtualHost)) {
      note = {
        code: "UP_FTP_PASV_ADDRESS_IGNORED",
        fix: `the server's 227 names ${host}, an address on the premises, not ${m.virtualHost}: PASV works only for clients that ignore the 227 address and dial the control host (curl, lftp, the JDK); for clients that trust it (Python's ftplib) make ${m.id} FTP-aware (protocol "ftp") so the relay rewrites it`,
      };
    }
    const shown = { announced: { host, port }, coveredBy: coveredBy(c), reply: last };
    let data: Socket;
    try {
      data = await this.#input.connect(dialHost, port);
    } catch (err) {
      this.steps.push({ step: kind, ...shown, ...dataFailure(this.#input, port, c, err as UnderpassError) });
      return;
    }
    const listed = await this.#list(data, Promise.resolve(data));
    this.steps.push({ step: kind, ...shown, ...listed, ...(listed.ok ? note : {}) });
  }

  /** Active mode through the agent's listener: PORT (or EPRT) naming a listener here. */
  async active(): Promise<void> {
    const address = this.#control.localAddress ?? "127.0.0.1";
    const server: Server = createServer();
    await new Promise<void>((resolve, reject) => {
      server.once("error", reject);
      server.listen(0, address, resolve);
    });
    try {
      const port = (server.address() as { port: number }).port;
      const cmd = formatEprtOrPort(address, port);
      const r = await this.#command(cmd.trim());
      if (r.code !== 200) {
        this.steps.push({
          step: "active",
          ok: false,
          code: "UP_FTP_ACTIVE_REFUSED",
          detail: `${cmd.split(" ")[0]} was answered ${replyText(r)}`,
          fix: "check that the agent has UNDERPASS_BIND_PORTS and the relay allows active mode for this mapping",
          reply: replyText(r),
        });
        return;
      }
      const accepted = new Promise<Socket>((resolve) => server.once("connection", resolve));
      const listed = await this.#list(null, accepted);
      this.steps.push({
        step: "active",
        ...listed,
        ...(listed.ok || listed.dataOpened !== false
          ? {}
          : {
              code: "UP_FTP_ACTIVE_NO_CONNECTION" as const,
              fix: "check that the FTP server can reach the agent at UNDERPASS_BIND_ADDRESS on UNDERPASS_BIND_PORTS",
            }),
      });
    } finally {
      server.close();
    }
  }

  /** NLST over a data connection (open already, or still to arrive); the names and whether it completed. */
  async #list(
    open: Socket | null,
    connection: Promise<Socket>,
  ): Promise<Pick<FtpCheckStep, "ok" | "detail" | "code" | "fix" | "dataOpened" | "names">> {
    const path = this.#input.path;
    const start = await this.#command(`NLST ${path}`);
    if (start.code !== 150 && start.code !== 125) {
      open?.destroy();
      return {
        ok: false,
        dataOpened: open !== null,
        code: "UP_FTP_LIST_FAILED",
        detail: `NLST ${path} was answered ${replyText(start)}`,
        fix:
          start.code === 550 ? `check that ${path} exists and the user may list it` : "see the server's log",
      };
    }
    const timeout = this.#input.stepTimeoutMs;
    const data = await Promise.race([connection, delay(timeout).then(() => null)]);
    if (data === null) {
      return {
        ok: false,
        dataOpened: false,
        code: "UP_FTP_LIST_FAILED",
        detail: `no data connection within ${timeout} ms`,
      };
    }
    const text = await readListing(data, timeout);
    const done = await this.#reply().catch((err: Error) => err);
    const names = text
      .split(/\r?\n/)
      .map((l) => l.trim())
      .filter((l) => l.length > 0)
      // NLST of a directory may name `dir/file` (vsftpd does); the name is what a person looks for
      .map((l) => l.replace(/^.*\//, ""))
      .slice(0, MAX_NAMES);
    if (done instanceof Error || (done.code !== 226 && done.code !== 250)) {
      return {
        ok: false,
        dataOpened: true,
        names,
        code: "UP_FTP_LIST_FAILED",
        detail: `the listing did not complete: ${done instanceof Error ? done.message : replyText(done)}`,
      };
    }
    return {
      ok: true,
      dataOpened: true,
      names,
      detail: `listed ${path}: ${names.length === 0 ? "(empty)" : names.join(", ")}`,
    };
  }

  close(): void {
    if (!this.#control.destroyed) this.#control.end("QUIT\r\n");
    setTimeout(() => this.#control.destroy(), 1_000).unref();
  }
}

/** PORT for an IPv4 listener (every server knows it), EPRT for IPv6 (RFC 2428). */
function formatEprtOrPort(address: string, port: number): string {
  const v4 = unmapIPv4(address);
  return isIPv4(v4) ? formatPortCommand(v4, port) : formatEprtCommand(address, port);
}

function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms).unref());
}

/** The listing's text up to the data connection's end, bounded in bytes and time. */
function readListing(s: Socket, timeoutMs: number): Promise<string> {
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    let size = 0;
    const done = (): void => {
      clearTimeout(timer);
      s.destroy();
      resolve(Buffer.concat(chunks).toString("utf8"));
    };
    const timer = setTimeout(done, timeoutMs);
    s.on("data", (b: Buffer) => {
      if (size < MAX_LISTING_BYTES) chunks.push(b);
      size += b.length;
    });
    s.on("end", done);
    s.on("close", done);
    s.on("error", done);
    s.resume();
  });
}

/** Runs the check; never throws for what the path or the server did (that is a failed step). */
export async function runFtpCheck(input: FtpCheckInput): Promise<FtpCheckAnswer> {
  const m = input.mapping;
  const answer = (steps: readonly FtpCheckStep[]): FtpCheckAnswer => ({
    mappingId: m.id,
    target: `${m.virtualHost}:${formatPortRange(m.virtualPort)}`,
    ok: steps.every((s) => s.ok),
    steps,
  });
  let control: Socket;
  try {
    control = await input.connect(m.virtualHost, m.virtualPort.start);
  } catch (err) {
    return answer([connectFailure(m, err as UnderpassError)]);
  }
  const connected: FtpCheckStep = {
    step: "connect",
    ok: true,
    detail: `connected to ${m.virtualHost}:${m.virtualPort.start} → ${m.internalHost}:${m.internalPort.start} through the agent`,
  };
  const session = new Session(input, control);
  try {
    if (await session.open()) {
      await session.passive("epsv");
      await session.passive("pasv");
      if (m.protocol === "ftp") await session.active();
    }
  } catch (err) {
    session.steps.push({
      step: session.steps.at(-1)?.step ?? "greeting",
      ok: false,
      code: "UP_FTP_CONTROL_FAILED",
      detail: `the control connection failed: ${err instanceof Error ? err.message : String(err)}`,
    });
  } finally {
    session.close();
  }
  return answer([connected, ...session.steps]);
}
