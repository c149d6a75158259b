/**
 * A real vsftpd per test: anonymous FTP on a loopback port, a fixed passive range, an announced
 * passive address of the test's choosing (e.g. an unroutable one, as behind NAT), an `upload/`
 * directory that accepts anonymous uploads and, on request, FTPS (explicit AUTH TLS or
 * implicit TLS, with vsftpd's TLS session reuse on data connections). Needs root (vsftpd
 * chroots anonymous sessions and drops to the `ftp` user) and the Debian package (`.ci/run`
 * installs it).
 */
import { type ChildProcess, spawn } from "node:child_process";
import { createHash, randomBytes } from "node:crypto";
import { closeSync, createReadStream, createWriteStream, openSync, readFileSync } from "node:fs";
import { chmod, chown, mkdir, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { isIP } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Readable, Transform } from "node:stream";
import { pipeline } from "node:stream/promises";
import { type ChildRegistry, defaultRegistry, requireCommand, terminate } from "./clients.js";
import { forEachProcess, readBanner } from "./daemon.js";
import { freePort, type PortSpan, waitFor } from "./ports.js";

export interface VsftpdOptions {
  /** anon_root; a fresh temp dir unless given. It is made mode 0755 (vsftpd refuses a writable chroot). */
  root?: string;
  /** pasv_min_port / pasv_max_port. */
  pasvPorts: PortSpan;
  /** IPv4 address announced in the 227 reply (pasv_address); the listen address unless given. */
  pasvAddress?: string;
  /** Create `upload/` (owned by `ftp`) and allow anonymous STOR into it; default true. */
  allowUpload?: boolean;
  /** listen_address; default 127.0.0.1. */
  listenAddress?: string;
  /** FTPS with this certificate; plain FTP without it. */
  tls?: VsftpdTlsOptions;
  /** More vsftpd.conf lines, overriding the harness's. */
  extraConfig?: Record<string, string>;
  /** How long to wait for the 220 banner, in ms (default 10 s). */
  startTimeoutMs?: number;
  registry?: ChildRegistry;
}

export interface VsftpdTlsOptions {
  /** PEM certificate and key (rsa_cert_file, rsa_private_key_file), e.g. from helpers/tls.ts. */
  certFile: string;
  keyFile: string;
  /**
   * implicit_ssl: TLS from the first byte, as on port 990 (`ftps://`). Otherwise explicit FTPS:
   * plain until the client sends AUTH TLS.
   */
  implicit?: boolean;
  /**
   * require_ssl_reuse: a data connection must resume the control connection's TLS session
   * (default true, as vsftpd's own default).
   */
  requireReuse?: boolean;
  /** force_anon_data_ssl / force_local_data_ssl: no clear-text data connection (default true). */
  forceData?: boolean;
  /** force_anon_logins_ssl / force_local_logins_ssl: no clear-text login (default true). */
  forceLogins?: boolean;
}

/** vsftpd.conf lines for FTPS; ssl_enable=NO without options. */
function tlsConfig(tls: VsftpdTlsOptions | undefined): Record<string, string> {
  if (tls === undefined) return { ssl_enable: "NO" };
  const yesNo = (b: boolean) => (b ? "YES" : "NO");
  const forceData = yesNo(tls.forceData ?? true);
  const forceLogins = yesNo(tls.forceLogins ?? true);
  return {
    ssl_enable: "YES",
    implicit_ssl: yesNo(tls.implicit ?? false),
    rsa_cert_file: tls.certFile,
    rsa_private_key_file: tls.keyFile,
    allow_anon_ssl: "YES",
    force_anon_data_ssl: forceData,
    force_local_data_ssl: forceData,
    force_anon_logins_ssl: forceLogins,
    force_local_logins_ssl: forceLogins,
    require_ssl_reuse: yesNo(tls.requireReuse ?? true),
    ssl_sslv2: "NO",
    ssl_sslv3: "NO",
    ssl_tlsv1: "YES",
    // vsftpd 3.0.3's default (DES-CBC3-SHA) is not offered by OpenSSL 3.
    ssl_ciphers: "HIGH",
  };
}

export interface VsftpdServer {
  /** The listen address. */
  readonly host: string;
  /** The control port. */
  readonly port: number;
  /** anon_root: what `ftp://host:port/` shows. */
  readonly root: string;
  /** `root/upload`, where anonymous uploads land (created only with `allowUpload`). */
  readonly uploadDir: string;
  readonly pasvPorts: PortSpan;
  /** The address announced in 227 replies. */
  readonly pasvAddress: string;
  /** "implicit" (TLS from the first byte), "explicit" (AUTH TLS) or "none". */
  readonly tls: "implicit" | "explicit" | "none";
  /** vsftpd's own log (every command and response: log_ftp_protocol=YES). */
  readonly logFile: string;
  /** `ftp://host:port/<path>` (`ftps://` for implicit FTPS). */
  url(path?: string): string;
  /** The vsftpd log and whatever the daemon wrote to its stdio, for failure messages. */
  readLog(): Promise<string>;
  /** Pids of the listener and its session processes still alive (empty after close()). */
  processes(): number[];
  /** Kills vsftpd and its session processes (SIGTERM, SIGKILL after 3 s) and removes its temp dir. */
  close(): Promise<void>;
}

/** Tries of a fresh control port when another process took the one freePort() returned. */
const START_ATTEMPTS = 3;

/**
 * Pids of every process whose command line is exactly `vsftpd <confFile>`. vsftpd's session
 * processes call setsid(), so they leave the listener's process group and a group kill misses
 * them; a session blocked in accept() on a passive port would otherwise live on for
 * accept_timeout (60 s) after its server was "closed". The conf path is a unique temp path.
 */
function sessionPids(confFile: string): number[] {
  const pids: number[] = [];
  forEachProcess((pid) => {
    const argv = readFileSync(`/proc/${pid}/cmdline`, "utf8").split("\0");
    if (argv[1] === confFile && argv[0]?.endsWith("vsftpd")) pids.push(pid);
  });
  return pids;
}

/** SIGKILL to every process of the vsftpd instance that uses `confFile`. */
function killSessions(confFile: string): number {
  const pids = sessionPids(confFile);
  for (const pid of pids) {
    try {
      process.kill(pid, "SIGKILL");
    } catch {
      // already gone
    }
  }
  return pids.length;
}

/** Config files of instances not yet closed; swept when the process exits. */
const liveConfigs = new Set<string>();
process.once("exit", () => {
  for (const conf of liveConfigs) killSessions(conf);
});

/** Kills the listener (group SIGTERM, then SIGKILL) and then every session left, bounded. */
async function stopInstance(child: ChildProcess, confFile: string, graceMs: number): Promise<void> {
  await terminate(child, graceMs);
  const deadline = Date.now() + graceMs;
  while (killSessions(confFile) > 0 && Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, 20));
  }
  liveConfigs.delete(confFile);
}

/** uid and gid of the `ftp` user that anonymous sessions run as (ftp_username). */
async function ftpUser(): Promise<{ uid: number; gid: number }> {
  const passwd = await readFile("/etc/passwd", "utf8");
  for (const line of passwd.split("\n")) {
    const f = line.split(":");
    if (f[0] === "ftp" && f[2] !== undefined && f[3] !== undefined)
      return { uid: Number(f[2]), gid: Number(f[3]) };
  }
  throw new Error("there is no `ftp` user for anonymous vsftpd sessions: run .ci/run --system-only");
}

function configText(entries: Record<string, string>): string {
  return `${Object.entries(entries)
    .map(([k, v]) => `${k}=${v}`)
    .join("\n")}\n`;
}

/**
 * Starts vsftpd in the foreground with a config of its own and resolves once it has sent a
 * `220` banner. Rejects with vsftpd's output and log if it exits first.
 */
export async function startVsftpd(opts: VsftpdOptions): Promise<VsftpdServer> {
  const vsftpd = requireCommand("vsftpd");
  if (process.getuid?.() !== 0) {
    throw new Error("vsftpd needs root here (it chroots anonymous sessions and switches to `ftp`)");
  }
  const host = opts.listenAddress ?? "127.0.0.1";
  const pasvAddress = opts.pasvAddress ?? host;
  if (isIP(pasvAddress) !== 4) throw new Error(`pasvAddress must be an IPv4 address, not "${pasvAddress}"`);
  const { start, end } = opts.pasvPorts;
  if (!(Number.isInteger(start) && Number.isInteger(end) && start >= 1 && start <= end && end <= 65535)) {
    throw new RangeError(`bad passive range ${start}-${end}`);
  }
  const allowUpload = opts.allowUpload ?? true;
  const ftp = await ftpUser();
  const registry = opts.registry ?? defaultRegistry;
  const implicit = opts.tls?.implicit ?? false;
  const tlsMode = opts.tls === undefined ? "none" : implicit ? "implicit" : "explicit";

  const dir = await mkdtemp(join(tmpdir(), "underpass-vsftpd-"));
  const cleanupDir = () => rm(dir, { recursive: true, force: true });
  try {
    const root = opts.root ?? join(dir, "root");
    const uploadDir = join(root, "upload");
    // secure_chroot_dir: empty and not writable; one per instance so nothing depends on /var/run.
    const empty = join(dir, "empty");
    await mkdir(root, { recursive: true });
    await chmod(root, 0o755);
    await mkdir(empty, { mode: 0o555 });
    if (allowUpload) {
      await mkdir(uploadDir, { recursive: true });
      await chown(uploadDir, ftp.uid, ftp.gid);
      await chmod(uploadDir, 0o755);
    }
    const logFile = join(dir, "vsftpd.log");
    const stdioFile = join(dir, "stdio.log");
    const confFile = join(dir, "vsftpd.conf");

    const readLog = async () => {
      const parts: string[] = [];
      for (const [name, file] of [
        ["stdio (500 OOPS errors appear here)", stdioFile],
        ["vsftpd.log", logFile],
      ] as const) {
        const text = await readFile(file, "utf8").catch(() => "");
        parts.push(`--- ${name}\n${text.trimEnd()}`);
      }
      return parts.join("\n");
    };

    let lastFailure = "";
    for (let attempt = 1; attempt <= START_ATTEMPTS; attempt++) {
      const port = await freePort(host);
      const config: Record<string, string> = {
        listen: "YES",
        listen_ipv6: "NO",
        listen_address: host,
        listen_port: String(port),
        background: "NO",
        anonymous_enable: "YES",
        local_enable: "NO",
        no_anon_password: "YES",
        anon_root: root,
        anon_world_readable_only: "YES",
        write_enable: allowUpload ? "YES" : "NO",
        anon_upload_enable: allowUpload ? "YES" : "NO",
        anon_mkdir_write_enable: "NO",
        // Lets a test upload the same name twice (overwrite counts as an "other" write).
        anon_other_write_enable: allowUpload ? "YES" : "NO",
        anon_umask: "022",
        dirlist_enable: "YES",
        download_enable: "YES",
        pasv_enable: "YES",
        pasv_min_port: String(start),
        pasv_max_port: String(end),
        pasv_address: pasvAddress,
        pasv_addr_resolve: "NO",
        pasv_promiscuous: "NO",
        port_enable: "YES",
        connect_from_port_20: "NO",
        // No seccomp, no namespaces: both fail in unprivileged containers.
        seccomp_sandbox: "NO",
        isolate: "NO",
        isolate_network: "NO",
        secure_chroot_dir: empty,
        ...tlsConfig(opts.tls),
        tcp_wrappers: "NO",
        syslog_enable: "NO",
        // xferlog_enable=YES + xferlog_std_format=NO writes vsftpd's own log (no wu-ftpd xferlog).
        xferlog_enable: "YES",
        xferlog_std_format: "NO",
        dual_log_enable: "NO",
        vsftpd_log_file: logFile,
        xferlog_file: join(dir, "xferlog"),
        log_ftp_protocol: "YES",
        max_clients: "0",
        max_per_ip: "0",
        ...opts.extraConfig,
      };
      await writeFile(confFile, configText(config), { mode: 0o600 });
      await writeFile(stdioFile, "");

      // vsftpd writes its fatal "500 OOPS" messages to fd 0 (the control connection in inetd
      // mode), so all three stdio descriptors point at one file we can read back.
      const fd = openSync(stdioFile, "a");
      let child: ChildProcess;
      try {
        child = spawn(vsftpd, [confFile], { detached: true, stdio: [fd, fd, fd] });
      } finally {
        closeSync(fd);
      }
      registry.track(child);
      liveConfigs.add(confFile);
      let exitInfo: string | undefined;
      const exit = new Promise<{ exited: string }>((resolve) =>
        child.once("exit", (code, signal) => {
          exitInfo = signal === null ? `exit code ${code}` : `signal ${signal}`;
          resolve({ exited: exitInfo });
        }),
      );
      const spawnError = new Promise<never>((_, reject) => child.once("error", reject));
      spawnError.catch(() => {});

      try {
        const outcome = await Promise.race([
          spawnError,
          exit,
          waitFor(
            // A truthy { exited } ends the polling at once when vsftpd dies.
            async () =>
              exitInfo !== undefined
                ? { exited: exitInfo }
                : { banner: await readBanner(port, host, 1000, implicit) },
            {
              timeoutMs: opts.startTimeoutMs ?? 10_000,
              intervalMs: 20,
              what: `vsftpd's banner on ${host}:${port}`,
            },
          ),
        ]);
        if ("exited" in outcome)
          throw new Error(`vsftpd exited before it accepted connections (${outcome.exited})`);
        if (!outcome.banner.startsWith("220")) throw new Error(`unexpected banner "${outcome.banner}"`);
      } catch (err) {
        await stopInstance(child, confFile, 1000);
        registry.forget(child);
        const log = await readLog();
        lastFailure = `${err instanceof Error ? err.message : String(err)}\n${log}`;
        if (/could not bind listening/i.test(log) && attempt < START_ATTEMPTS) continue;
        throw new Error(`vsftpd did not start (${vsftpd} ${confFile}): ${lastFailure}`);
      }

      let closing: Promise<void> | undefined;
      return {
        host,
        port,
        root,
        uploadDir,
        pasvPorts: { start, end },
        pasvAddress,
        tls: tlsMode,
        logFile,
        url: (path = "/") =>
          `${implicit ? "ftps" : "ftp"}://${host}:${port}${path.startsWith("/") ? path : `/${path}`}`,
        readLog,
        processes: () => sessionPids(confFile),
        close: () =>
          (closing ??= (async () => {
            await stopInstance(child, confFile, 3000);
            registry.forget(child);
            await cleanupDir();
          })()),
      };
    }
    throw new Error(`vsftpd did not start: ${lastFailure}`);
  } catch (err) {
    await cleanupDir();
    throw err;
  }
}

/** A file of `size` random bytes (streamed, so any size works), mode 0644. */
export async function makeFile(
  dir: string,
  name: string,
  size: number,
): Promise<{ path: string; sha256: string; size: number }> {
  const path = join(dir, name);
  const hash = createHash("sha256");
  /** Chunk size, in bytes. */
  const CHUNK = 1024 * 1024;
  async function* bytes() {
    for (let left = size; left > 0; left -= CHUNK) yield randomBytes(Math.min(CHUNK, left));
  }
  const tap = new Transform({
    transform(chunk: Buffer, _enc, cb) {
      hash.update(chunk);
      cb(null, chunk);
    },
  });
  await pipeline(Readable.from(bytes()), tap, createWriteStream(path, { mode: 0o644 }));
  await chmod(path, 0o644); // anon_world_readable_only: the umask must not hide it from `ftp`
  return { path, sha256: hash.digest("hex"), size };
}

/** SHA-256 of a file, hex, streamed. */
export async function sha256File(path: string): Promise<string> {
  const hash = createHash("sha256");
  await pipeline(createReadStream(path), hash);
  return hash.digest("hex");
}
