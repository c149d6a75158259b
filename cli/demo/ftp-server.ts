/**
 * A small but real FTP server (RFC 959, RFC 1639 LPSV/LPRT, RFC 2428 EPSV/EPRT, RFC 3659
 * SIZE/MDTM/MLSD) serving a directory: the target of `underpass demo` and the second FTP server
 * of the tests. Passive and active mode, binary and ASCII, uploads when allowed, paths confined
 * to the root.
 */
import { realpath, stat } from "node:fs/promises";
import net from "node:net";
import { ValidationError } from "../../shared/errors.js";
import { type Logger, silentLogger } from "../../shared/logger.js";
import { type PortRange, rangeSize } from "../../shared/net/port-range.js";
import { FtpFileSystem } from "./ftp-fs.js";
import { FtpSession } from "./ftp-session.js";

export interface DemoFtpServerOptions {
  /** Directory served as "/". */
  readonly root: string;
  /** Listen address; default 127.0.0.1. */
  readonly host?: string;
  /** Control port; default 0 (OS-assigned). */
  readonly port?: number;
  /** Ports for passive data listeners; default OS-assigned ephemeral ports. */
  readonly pasvPorts?: PortRange;
  /** IPv4 address announced in 227 replies; default the control connection's local address. */
  readonly pasvAddress?: string;
  /** Named users and their passwords, in addition to anonymous. */
  readonly users?: Readonly<Record<string, string>>;
  /** Whether `anonymous`/`ftp` may log in with any password; default true. */
  readonly anonymous?: boolean;
  /** Whether STOR, DELE, MKD and RMD are allowed; default false. */
  readonly allowUpload?: boolean;
  /** Passive accept, active connect and transfer inactivity timeout in ms; default 30 s. */
  readonly dataTimeoutMs?: number;
  /** Control connection inactivity timeout in ms; default 5 min. */
  readonly idleTimeoutMs?: number;
  /** Allow PORT/EPRT to, and passive connections from, other hosts than the client's; default false. */
  readonly allowForeignDataAddress?: boolean;
  /** Control connections served at once; more are answered 421; default 64. */
  readonly maxSessions?: number;
  readonly logger?: Logger;
}

export interface DemoFtpServer {
  /** The listening control port. */
  readonly port: number;
  /** The listening address. */
  readonly host: string;
  /** Close the listener, every control and data connection and every passive listener. */
  close(): Promise<void>;
}

const DEFAULT_DATA_TIMEOUT_MS = 30_000;
const DEFAULT_IDLE_TIMEOUT_MS = 300_000;
const DEFAULT_MAX_SESSIONS = 64;

function validate(opts: DemoFtpServerOptions): void {
  const issues: { path: string; message: string }[] = [];
  const { pasvPorts, pasvAddress, port } = opts;
  if (port !== undefined && (!Number.isInteger(port) || port < 0 || port > 65535)) {
    issues.push({ path: "port", message: `${port} is not in 0-65535` });
  }
  if (pasvPorts && (pasvPorts.start < 1 || pasvPorts.end > 65535 || rangeSize(pasvPorts) < 1)) {
    issues.push({
      path: "pasvPorts",
      message: `${pasvPorts.start}-${pasvPorts.end} is not a range of 1-65535`,
    });
  }
  if (pasvAddress !== undefined && !net.isIPv4(pasvAddress)) {
    issues.push({
      path: "pasvAddress",
      message: `"${pasvAddress}" is not an IPv4 address (227 can only carry IPv4)`,
    });
  }
  if (issues.length > 0) {
    throw new ValidationError(
      `invalid demo FTP server options: ${issues.map((i) => i.message).join("; ")}`,
      issues,
    );
  }
}

export async function startDemoFtpServer(opts: DemoFtpServerOptions): Promise<DemoFtpServer> {
  validate(opts);
  const root = await realpath(opts.root);
  if (!(await stat(root)).isDirectory()) {
    throw new ValidationError("invalid demo FTP server options", [
      { path: "root", message: "not a directory" },
    ]);
  }
  const logger = opts.logger ?? silentLogger();
  const config = {
    fs: new FtpFileSystem(root),
    users: new Map(Object.entries(opts.users ?? {})),
    anonymous: opts.anonymous ?? true,
    allowUpload: opts.allowUpload ?? false,
    pasvPorts: opts.pasvPorts,
    pasvAddress: opts.pasvAddress,
    pasvCursor: { next: opts.pasvPorts?.start ?? 0 },
    dataTimeoutMs: opts.dataTimeoutMs ?? DEFAULT_DATA_TIMEOUT_MS,
    idleTimeoutMs: opts.idleTimeoutMs ?? DEFAULT_IDLE_TIMEOUT_MS,
    allowForeignDataAddress: opts.allowForeignDataAddress ?? false,
    logger,
  };
  const maxSessions = opts.maxSessions ?? DEFAULT_MAX_SESSIONS;
  const sessions = new Set<FtpSession>();

  const server = net.createServer((socket) => {
    if (sessions.size >= maxSessions) {
      socket.on("error", () => {});
      socket.end("421 Too many connections, try again later\r\n");
      return;
    }
    const session = new FtpSession(socket, config);
    sessions.add(session);
    socket.once("close", () => sessions.delete(session));
  });

  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen({ host: opts.host ?? "127.0.0.1", port: opts.port ?? 0 }, () => {
      server.off("error", reject);
      resolve();
    });
  });
  server.on("error", (err) => logger.error({ err }, "demo FTP server error"));
  const address = server.address() as net.AddressInfo;
  logger.info({ host: address.address, port: address.port, root }, "demo FTP server listening");

  let closing: Promise<void> | undefined;
  return {
    port: address.port,
    host: address.address,
    close() {
      closing ??= (async () => {
        const stopped = new Promise<void>((resolve) => server.close(() => resolve()));
        await Promise.all([...sessions].map((s) => s.destroy()));
        await stopped;
      })();
      return closing;
    },
  };
}
