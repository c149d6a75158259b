/**
 * Real FTP clients (curl, lftp, lftp under proxychains4) for the end-to-end tests, and the
 * process primitives behind them: every child runs in its own process group, is bounded by a
 * timeout, and is tracked so that a test's `after()` (and, as a last resort, process exit)
 * kills whatever is still running.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { accessSync, constants as fsConstants } from "node:fs";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { isIP } from "node:net";
import { tmpdir } from "node:os";
import { delimiter, join } from "node:path";

// ---------------------------------------------------------------------------------------------
// Process groups and the registry

/** Grace between SIGTERM and SIGKILL, in ms. */
const DEFAULT_KILL_GRACE_MS = 2000;
/** Per-stream cap on collected output, in bytes; the rest is counted, not kept. */
const DEFAULT_MAX_OUTPUT_BYTES = 8 * 1024 * 1024;

function hasExited(child: ChildProcess): boolean {
  return child.exitCode !== null || child.signalCode !== null;
}

/**
 * Sends `signal` to the child's whole process group (children are spawned `detached`, so the
 * group id is the child's pid), falling back to the child alone. Returns whether a signal was
 * delivered. Safe to call on a child that has exited.
 */
export function killTree(child: ChildProcess, signal: NodeJS.Signals = "SIGTERM"): boolean {
  const pid = child.pid;
  if (pid === undefined) return false;
  try {
    process.kill(-pid, signal);
    return true;
  } catch {
    if (hasExited(child)) return false;
    try {
      return child.kill(signal);
    } catch {
      return false;
    }
  }
}

/** Resolves when the child has exited, or after `ms` (false then). */
function exited(child: ChildProcess, ms: number): Promise<boolean> {
  if (hasExited(child)) return Promise.resolve(true);
  return new Promise((resolve) => {
    const timer = setTimeout(() => {
      child.off("exit", onExit);
      resolve(false);
    }, ms);
    const onExit = () => {
      clearTimeout(timer);
      resolve(true);
    };
    child.once("exit", onExit);
  });
}

/**
 * SIGTERM to the child's group, SIGKILL after `graceMs`, and a final SIGKILL to the group so
 * that grandchildren (a shell's children, lftp's resolver) do not outlive it. vsftpd sessions
 * call setsid() and leave the group: `VsftpdServer.close()` sweeps those.
 */
export async function terminate(child: ChildProcess, graceMs = DEFAULT_KILL_GRACE_MS): Promise<void> {
  if (!hasExited(child)) {
    killTree(child, "SIGTERM");
    if (!(await exited(child, graceMs))) {
      killTree(child, "SIGKILL");
      await exited(child, graceMs);
    }
  }
  killTree(child, "SIGKILL");
}

/**
 * The children a test (or a whole test file) started. `killAll()` in `after()` ends every one
 * still running; anything left when the process exits gets SIGKILL.
 */
export class ChildRegistry {
  readonly #children = new Set<ChildProcess>();

  static readonly #all = new Set<ChildRegistry>();
  static #exitHookInstalled = false;

  constructor() {
    ChildRegistry.#all.add(this);
    if (!ChildRegistry.#exitHookInstalled) {
      ChildRegistry.#exitHookInstalled = true;
      // 'exit' listeners must be synchronous: process.kill is.
      process.once("exit", () => {
        for (const registry of ChildRegistry.#all) {
          for (const child of registry.#children) killTree(child, "SIGKILL");
        }
      });
    }
  }

  /** Starts tracking `child`; returns it for chaining. */
  track<T extends ChildProcess>(child: T): T {
    this.#children.add(child);
    return child;
  }

  /** Stops tracking `child` (its owner ended it). */
  forget(child: ChildProcess): void {
    this.#children.delete(child);
  }

  /** Tracked children that have not exited. */
  get running(): ChildProcess[] {
    return [...this.#children].filter((c) => !hasExited(c));
  }

  /** Ends every tracked child (and its process group) and forgets them all. */
  async killAll(graceMs = DEFAULT_KILL_GRACE_MS): Promise<void> {
    const children = [...this.#children];
    this.#children.clear();
    await Promise.all(children.map((c) => terminate(c, graceMs)));
  }
}

/** The registry used when a helper is not given one. */
export const defaultRegistry = new ChildRegistry();

/** Tracks `child` in `registry` (the default one unless given). */
export function track<T extends ChildProcess>(child: T, registry: ChildRegistry = defaultRegistry): T {
  return registry.track(child);
}

// ---------------------------------------------------------------------------------------------
// Finding commands

/** Where Debian puts daemons, which a non-root PATH often lacks (vsftpd is in /usr/sbin). */
const SBIN_DIRS = ["/usr/local/sbin", "/usr/sbin", "/sbin"];

/** Absolute path of an executable `name` on PATH or in the sbin directories, or undefined. */
export function findCommand(name: string): string | undefined {
  const dirs = [...(process.env["PATH"] ?? "").split(delimiter).filter(Boolean), ...SBIN_DIRS];
  for (const dir of dirs) {
    const candidate = join(dir, name);
    try {
      accessSync(candidate, fsConstants.X_OK);
      return candidate;
    } catch {
      // not here
    }
  }
  return undefined;
}

/** Like `findCommand`, but throws an error that says how to install the missing tool. */
export function requireCommand(name: string, debianPackage = name): string {
  const found = findCommand(name);
  if (found === undefined) {
    throw new Error(
      `${name} is not installed: run .ci/run --system-only (or apt-get install ${debianPackage}) first`,
    );
  }
  return found;
}

// ---------------------------------------------------------------------------------------------
// spawnBounded

export interface SpawnResult {
  /** Exit code, or null when the child ended by a signal. */
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
  readonly stdout: string;
  readonly stderr: string;
  /** True when the harness killed the child at `timeoutMs`. */
  readonly timedOut: boolean;
  /** Wall time from spawn to exit, in ms. */
  readonly durationMs: number;
  /** The command line, for failure messages (secrets replaced by `***`). */
  readonly command: string;
}

export interface SpawnBoundedOptions {
  /** The child is killed (group SIGTERM, then SIGKILL) after this long, in ms. */
  timeoutMs: number;
  /** Full environment of the child; defaults to this process's. */
  env?: NodeJS.ProcessEnv;
  /** Written to the child's stdin, which is then closed; without it stdin is /dev/null. */
  input?: string | Buffer;
  cwd?: string;
  registry?: ChildRegistry;
  /** Per-stream cap on collected output, in bytes (8 MiB unless given). */
  maxOutputBytes?: number;
  /** The command line shown in results; defaults to `cmd args...`. */
  display?: string;
}

class OutputBuffer {
  readonly #chunks: Buffer[] = [];
  #kept = 0;
  #dropped = 0;
  constructor(readonly limit: number) {}
  push(chunk: Buffer): void {
    const room = this.limit - this.#kept;
    if (room <= 0) {
      this.#dropped += chunk.length;
      return;
    }
    const part = chunk.length <= room ? chunk : chunk.subarray(0, room);
    this.#chunks.push(part);
    this.#kept += part.length;
    this.#dropped += chunk.length - part.length;
  }
  text(): string {
    const s = Buffer.concat(this.#chunks).toString("utf8");
    return this.#dropped === 0 ? s : `${s}\n[harness: ${this.#dropped} more bytes dropped]`;
  }
}

/**
 * Runs `cmd args` in its own process group and collects its output. Resolves when it exits,
 * whatever the code; kills the group at `timeoutMs` (`timedOut` is then true). Rejects only
 * when the command cannot be started at all.
 */
export function spawnBounded(
  cmd: string,
  args: readonly string[],
  options: SpawnBoundedOptions,
): Promise<SpawnResult> {
  const registry = options.registry ?? defaultRegistry;
  const display = options.display ?? [cmd, ...args].map(shellQuote).join(" ");
  const started = Date.now();
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, [...args], {
      cwd: options.cwd,
      env: options.env ?? process.env,
      detached: true, // own process group, so killTree reaches grandchildren
      stdio: [options.input === undefined ? "ignore" : "pipe", "pipe", "pipe"],
    });
    registry.track(child);
    const limit = options.maxOutputBytes ?? DEFAULT_MAX_OUTPUT_BYTES;
    const out = new OutputBuffer(limit);
    const err = new OutputBuffer(limit);
    child.stdout?.on("data", (d: Buffer) => out.push(d));
    child.stderr?.on("data", (d: Buffer) => err.push(d));
    if (options.input !== undefined && child.stdin) {
      child.stdin.on("error", () => {}); // EPIPE when the child does not read its input
      child.stdin.end(options.input);
    }

    let timedOut = false;
    let settled = false;
    let exitCode: number | null = null;
    let exitSignal: NodeJS.Signals | null = null;
    let closeTimer: NodeJS.Timeout | undefined;

    const killTimer = setTimeout(() => {
      timedOut = true;
      void terminate(child);
    }, options.timeoutMs);

    const finish = () => {
      if (settled) return;
      settled = true;
      clearTimeout(killTimer);
      if (closeTimer) clearTimeout(closeTimer);
      registry.forget(child);
      killTree(child, "SIGKILL"); // stragglers left in the group
      resolve({
        code: exitCode,
        signal: exitSignal,
        stdout: out.text(),
        stderr: err.text(),
        timedOut,
        durationMs: Date.now() - started,
        command: display,
      });
    };

    child.once("error", (e: NodeJS.ErrnoException) => {
      if (child.pid !== undefined) return; // a late error on a running child: 'close' follows
      settled = true;
      clearTimeout(killTimer);
      registry.forget(child);
      const hint = e.code === "ENOENT" ? " (not installed? run .ci/run --system-only)" : "";
      reject(new Error(`cannot start ${cmd}: ${e.message}${hint}`, { cause: e }));
    });
    child.once("exit", (code, signal) => {
      exitCode = code;
      exitSignal = signal;
      // 'close' waits for stdio to close; a grandchild holding the pipes must not hang us.
      closeTimer = setTimeout(() => {
        child.stdout?.destroy();
        child.stderr?.destroy();
        finish();
      }, 2000);
    });
    child.once("close", (code, signal) => {
      exitCode = code ?? exitCode;
      exitSignal = signal ?? exitSignal;
      finish();
    });
  });
}

/** Quotes an argument for display in a failure message (not for execution). */
function shellQuote(s: string): string {
  return /^[\w@%+=:,./-]+$/.test(s) ? s : `'${s.replaceAll("'", `'\\''`)}'`;
}

/** A multi-line description of a result, for assertion messages. */
export function formatResult(r: SpawnResult): string {
  const how = r.timedOut
    ? `killed after timeout (${r.durationMs} ms)`
    : r.signal !== null
      ? `ended by ${r.signal}`
      : `exit code ${r.code}`;
  return [
    `$ ${r.command}`,
    `-> ${how} in ${r.durationMs} ms`,
    "--- stdout",
    r.stdout,
    "--- stderr",
    r.stderr,
  ].join("\n");
}

// ---------------------------------------------------------------------------------------------
// The clients

/** A SOCKS5 proxy, e.g. the relay's SOCKS endpoint; credentials per RFC 1929. */
export interface SocksProxy {
  host: string;
  port: number;
  username?: string;
  password?: string;
}

/** Proxy variables curl and lftp would otherwise honour; the harness decides on proxies itself. */
const PROXY_ENV = ["all_proxy", "ftp_proxy", "http_proxy", "https_proxy", "no_proxy"];

/** This process's environment without proxy variables or a stray LD_PRELOAD, plus `extra`. */
function clientEnv(extra?: NodeJS.ProcessEnv): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env };
  for (const k of PROXY_ENV) {
    delete env[k];
    delete env[k.toUpperCase()];
  }
  delete env["LD_PRELOAD"];
  env["LC_ALL"] = "C";
  return { ...env, ...extra };
}

/** Seconds with millisecond precision, the way curl's time options take them. */
function seconds(ms: number): string {
  return (ms / 1000).toFixed(3);
}

export interface CurlFtpOptions {
  /** `ftp://host:port/path`; a path ending in `/` lists the directory. */
  url: string;
  /** Go through SOCKS5; `remoteDns` = `socks5h` (the proxy resolves the host name). */
  socks?: SocksProxy & { remoteDns: boolean };
  /** PASV instead of EPSV (`--disable-epsv`). */
  disableEpsv?: boolean;
  /** Save the download here (`-o`); otherwise it lands in `stdout`. */
  output?: string;
  /** Upload this file (`-T`); a URL ending in `/` keeps the local file name. */
  upload?: string;
  /** More curl arguments, placed before the URL (e.g. `-v`, `--ftp-port`, `--no-ftp-skip-pasv-ip`). */
  extraArgs?: readonly string[];
  /** curl's `--max-time`; the process is killed a little after it, in ms. */
  timeoutMs: number;
  /** curl's `--connect-timeout`, in ms (10 s or `timeoutMs`, whichever is smaller, unless given). */
  connectTimeoutMs?: number;
  env?: NodeJS.ProcessEnv;
  registry?: ChildRegistry;
}

/** `socks5h://user:pass@host:port`, credentials URL-encoded; `redact` hides the password. */
export function socksUrl(socks: SocksProxy & { remoteDns: boolean }, redact = false): string {
  const scheme = socks.remoteDns ? "socks5h" : "socks5";
  const host = isIP(socks.host) === 6 ? `[${socks.host}]` : socks.host;
  let auth = "";
  if (socks.username !== undefined) {
    auth = encodeURIComponent(socks.username);
    if (socks.password !== undefined) auth += `:${redact ? "***" : encodeURIComponent(socks.password)}`;
    auth += "@";
  }
  return `${scheme}://${auth}${host}:${socks.port}`;
}

/** Runs curl against an FTP URL, optionally through a SOCKS5 proxy. */
export function curlFtp(opts: CurlFtpOptions): Promise<SpawnResult> {
  const curl = requireCommand("curl");
  const connectMs = opts.connectTimeoutMs ?? Math.min(10_000, opts.timeoutMs);
  // -q first: ignore ~/.curlrc.
  const head = ["-q", "-sS", "--connect-timeout", seconds(connectMs), "--max-time", seconds(opts.timeoutMs)];
  const tail: string[] = [];
  if (opts.disableEpsv) tail.push("--disable-epsv");
  if (opts.output !== undefined) tail.push("-o", opts.output);
  if (opts.upload !== undefined) tail.push("-T", opts.upload);
  tail.push(...(opts.extraArgs ?? []), opts.url);
  const args = opts.socks ? [...head, "--proxy", socksUrl(opts.socks), ...tail] : [...head, ...tail];
  const shown = opts.socks ? [...head, "--proxy", socksUrl(opts.socks, true), ...tail] : args;
  return spawnBounded(curl, args, {
    timeoutMs: opts.timeoutMs + 5000, // curl's own --max-time should fire first
    env: clientEnv(opts.env),
    registry: opts.registry,
    display: [curl, ...shown].map(shellQuote).join(" "),
  });
}

/** lftp settings that fail fast instead of retrying for minutes; `settings` overrides them. */
export const LFTP_FAST_FAIL_SETTINGS: Readonly<Record<string, string>> = {
  "cmd:fail-exit": "yes",
  "cmd:interactive": "no",
  "cmd:move-background": "no",
  "net:max-retries": "1", // 1 = one try, no retry
  "net:persist-retries": "0",
  "net:timeout": "20",
  "net:reconnect-interval-base": "1",
  "net:reconnect-interval-max": "1",
  "ftp:passive-mode": "on",
  "ftp:prefer-epsv": "no",
  "ftp:ssl-allow": "no", // vsftpd here has no TLS; skip the AUTH TLS round trip
  "xfer:clobber": "on",
  // /etc/lftp.conf on Debian sets "inet6 inet"; proxychains and the relay speak IPv4 here.
  "dns:order": "inet",
  // Leave dns:use-fork alone: with "no", lftp 4.9.2 reports "host name resolve timeout" even
  // for numeric addresses here. The forked resolver inherits proxychains' LD_PRELOAD.
  "dns:max-retries": "1",
  "dns:fatal-timeout": "10",
};

export interface LftpOptions {
  /** lftp commands, separated by newlines or `;`, e.g. `open ftp://h:21\nls\nget f -o /tmp/f`. */
  script: string;
  /** The process is killed after this long, in ms. */
  timeoutMs: number;
  /** Through proxychains4 and this SOCKS5 proxy (its host must be an IP address); direct if absent. */
  socks?: SocksProxy;
  /** lftp settings on top of (and overriding) `LFTP_FAST_FAIL_SETTINGS`. */
  settings?: Record<string, string | number | boolean>;
  /** proxychains4 `tcp_read_time_out` / `tcp_connect_time_out`, in ms (30000 / 15000 unless given). */
  proxyReadTimeoutMs?: number;
  proxyConnectTimeoutMs?: number;
  env?: NodeJS.ProcessEnv;
  registry?: ChildRegistry;
}

function lftpValue(v: string | number | boolean): string {
  const s = typeof v === "boolean" ? (v ? "yes" : "no") : String(v);
  return /^[\w.:/@,-]+$/.test(s) ? s : `"${s.replaceAll("\\", "\\\\").replaceAll('"', '\\"')}"`;
}

/** The proxychains4 configuration for one SOCKS5 proxy. */
export function proxychainsConfig(
  socks: SocksProxy,
  readTimeoutMs = 30_000,
  connectTimeoutMs = 15_000,
): string {
  const host = socks.host === "localhost" ? "127.0.0.1" : socks.host;
  if (isIP(host) === 0) {
    throw new Error(`proxychains4 needs the proxy as an IP address, not "${socks.host}"`);
  }
  const words = [socks.username, socks.password].filter((w): w is string => w !== undefined);
  if (words.some((w) => w === "" || /[\s#]/.test(w))) {
    throw new Error(
      "proxychains4 cannot express a SOCKS username or password that is empty or has spaces or #",
    );
  }
  return [
    "# written by test/helpers/clients.ts",
    "strict_chain",
    "quiet_mode",
    "proxy_dns", // host names go to the proxy (SOCKS5 ATYP 0x03); the client sees 224.x.x.x
    "remote_dns_subnet 224",
    `tcp_read_time_out ${Math.round(readTimeoutMs)}`,
    `tcp_connect_time_out ${Math.round(connectTimeoutMs)}`,
    "[ProxyList]",
    ["socks5", host, String(socks.port), ...words].join(" "),
    "",
  ].join("\n");
}

/**
 * Runs `lftp -c <settings + script>`, directly or (with `socks`) as
 * `proxychains4 -q -f <conf> lftp ...`. lftp's state files go to a temp LFTP_HOME.
 */
export async function lftp(opts: LftpOptions): Promise<SpawnResult> {
  const lftpBin = requireCommand("lftp");
  const proxychains = opts.socks ? requireCommand("proxychains4") : undefined;
  const settings = { ...LFTP_FAST_FAIL_SETTINGS, ...opts.settings };
  const preamble = Object.entries(settings).map(([k, v]) => `set ${k} ${lftpValue(v)}`);
  const script = [...preamble, opts.script].join("\n");
  const dir = await mkdtemp(join(tmpdir(), "underpass-lftp-"));
  try {
    const env = clientEnv({ ...opts.env, LFTP_HOME: dir });
    const lftpArgs = ["--norc", "-c", script];
    // The script is long and full of settings; show only what the test asked for.
    const shownLftp = `lftp --norc -c ${shellQuote(opts.script)}`;
    if (proxychains === undefined || opts.socks === undefined) {
      return await spawnBounded(lftpBin, lftpArgs, {
        timeoutMs: opts.timeoutMs,
        env,
        registry: opts.registry,
        display: shownLftp,
      });
    }
    const conf = join(dir, "proxychains.conf");
    await writeFile(
      conf,
      proxychainsConfig(opts.socks, opts.proxyReadTimeoutMs, opts.proxyConnectTimeoutMs),
      { mode: 0o600 },
    );
    return await spawnBounded(proxychains, ["-q", "-f", conf, lftpBin, ...lftpArgs], {
      timeoutMs: opts.timeoutMs,
      env,
      registry: opts.registry,
      display: `proxychains4 -q -f ${conf} ${shownLftp}`,
    });
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/** lftp through proxychains4 and the given SOCKS5 proxy. */
export function lftpProxychains(opts: LftpOptions & { socks: SocksProxy }): Promise<SpawnResult> {
  return lftp(opts);
}
