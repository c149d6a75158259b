/**
 * Stock clients that real integration flows run, unmodified, through a SOCKS5 proxy with
 * RFC 1929 username/password: the JDK's own ftp:// URL client, Python's ftplib under
 * proxychains4 or under Dante's socksify, curl and lftp speaking FTPS, and OpenSSH's sftp/scp
 * with a ProxyCommand. Each helper runs the client in its own process group, bounded in time,
 * and returns its exit code and output (`SpawnResult`); none of them asserts anything.
 */
import { createHash } from "node:crypto";
import { existsSync } from "node:fs";
import { mkdtemp, readFile, rename, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import {
  type ChildRegistry,
  type CurlFtpOptions,
  curlFtp,
  formatResult,
  type LftpOptions,
  lftp,
  proxychainsConfig,
  requireCommand,
  type SocksProxy,
  type SpawnResult,
  spawnBounded,
} from "./clients.js";
import type { SshLogin } from "./sshd.js";
import type { Stack } from "./stack.js";

/** test/fixtures in the source tree (this file runs as dist/test/helpers/ftp-clients.js). */
export const FIXTURES = fileURLToPath(new URL("../../../test/fixtures/", import.meta.url));

/** The environment a client runs with: no stray LD_PRELOAD, the C locale, plus `extra`. */
function toolEnv(extra: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env, LC_ALL: "C", ...extra };
  if (extra["LD_PRELOAD"] === undefined) delete env["LD_PRELOAD"];
  return env;
}

/** The proxy and its credentials in the variables our fixtures read. */
function socksEnv(socks: SocksProxy): NodeJS.ProcessEnv {
  return {
    UNDERPASS_SOCKS_HOST: socks.host,
    UNDERPASS_SOCKS_PORT: String(socks.port),
    ...(socks.username === undefined ? {} : { UNDERPASS_SOCKS_USERNAME: socks.username }),
    ...(socks.password === undefined ? {} : { UNDERPASS_SOCKS_PASSWORD: socks.password }),
  };
}

/** The relay's SOCKS endpoint with the stack's client credentials. */
export function socksProxyOf(stack: Stack): SocksProxy & { username: string; password: string } {
  return {
    host: "127.0.0.1",
    port: stack.socksPort,
    username: stack.client.username,
    password: stack.client.password,
  };
}

/** Runs `fn` with a fresh temp dir, removed afterwards. */
async function withTempDir<T>(prefix: string, fn: (dir: string) => Promise<T>): Promise<T> {
  const dir = await mkdtemp(join(tmpdir(), prefix));
  try {
    return await fn(dir);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

// ---------------------------------------------------------------------------------------------
// JDK 17: ftp:// URLs

const JAVA_SOURCE = "FtpUrlTransfer.java";
let javaClasses: Promise<string> | undefined;

/**
 * Compiles test/fixtures/FtpUrlTransfer.java with javac, once per process, into a cache dir
 * named after the source's hash (shared by concurrent test files: each compiles into a dir of
 * its own and renames it into place). Resolves with the class path.
 */
export function javaFtpClasses(registry?: ChildRegistry): Promise<string> {
  javaClasses ??= (async () => {
    const source = join(FIXTURES, JAVA_SOURCE);
    const hash = createHash("sha256")
      .update(await readFile(source))
      .digest("hex")
      .slice(0, 16);
    const cache = join(tmpdir(), `underpass-java-${hash}`);
    if (existsSync(join(cache, "FtpUrlTransfer.class"))) return cache;
    const build = await mkdtemp(`${cache}-build-`);
    const r = await spawnBounded(requireCommand("javac", "openjdk-17-jdk-headless"), ["-d", build, source], {
      timeoutMs: 120_000,
      env: toolEnv(),
      registry,
    });
    if (r.code !== 0) {
      await rm(build, { recursive: true, force: true });
      throw new Error(`javac failed\n${formatResult(r)}`);
    }
    try {
      await rename(build, cache);
    } catch {
      await rm(build, { recursive: true, force: true }); // another process put it there first
    }
    return cache;
  })();
  javaClasses.catch(() => (javaClasses = undefined));
  return javaClasses;
}

export interface JavaFtpOptions {
  /** `get`: RETR the URL into `file`; `put`: STOR `file` at the URL (URLConnection.getOutputStream). */
  direction: "get" | "put";
  /** `ftp://host:port/path`; the host should be a name the proxy resolves. */
  url: string;
  file: string;
  /** -DsocksProxyHost/-DsocksProxyPort; the credentials reach the JDK through an Authenticator. */
  socks: SocksProxy;
  /** -Djdk.net.ftp.trustPasvAddress=true: dial the address in 227 instead of the control peer's. */
  trustPasvAddress?: boolean;
  /** The process is killed after this long, in ms; the JDK's connect/read timeouts are 20 s at most. */
  timeoutMs: number;
  registry?: ChildRegistry;
}

/** Runs the JDK's ftp:// client (test/fixtures/FtpUrlTransfer.java) through a SOCKS5 proxy. */
export async function javaFtpUrl(opts: JavaFtpOptions): Promise<SpawnResult> {
  const classes = await javaFtpClasses(opts.registry);
  const java = requireCommand("java", "openjdk-17-jdk-headless");
  const args = [
    // A short-lived client: skip the optimising compiler, keep one GC thread.
    "-XX:TieredStopAtLevel=1",
    "-XX:+UseSerialGC",
    "-Djava.net.preferIPv4Stack=true",
    `-DsocksProxyHost=${opts.socks.host}`,
    `-DsocksProxyPort=${opts.socks.port}`,
    // The default (localhost|127.*|...) would send loopback targets around the proxy.
    "-Dftp.nonProxyHosts=",
    ...(opts.trustPasvAddress ? ["-Djdk.net.ftp.trustPasvAddress=true"] : []),
    "-cp",
    classes,
    "FtpUrlTransfer",
    opts.direction,
    opts.url,
    opts.file,
  ];
  return spawnBounded(java, args, {
    timeoutMs: opts.timeoutMs,
    env: toolEnv({
      ...socksEnv(opts.socks),
      UNDERPASS_FTP_TIMEOUT_MS: String(Math.min(20_000, opts.timeoutMs)),
    }),
    registry: opts.registry,
  });
}

// ---------------------------------------------------------------------------------------------
// Python ftplib, under proxychains4 or Dante's socksify

/** One ftplib operation, in order. */
export type FtplibAction =
  | { readonly op: "get"; readonly remote: string; readonly local: string }
  | { readonly op: "put"; readonly local: string; readonly remote: string }
  | { readonly op: "list"; readonly dir?: string };

export interface FtplibOptions {
  /** The FTP server as the client names it (a virtual host: the proxy resolves it). */
  host: string;
  port: number;
  /** Active mode (`set_pasv(False)`: ftplib listens and sends PORT); passive (PASV) otherwise. */
  active?: boolean;
  actions: readonly FtplibAction[];
  socks: SocksProxy;
  /** The process is killed after this long, in ms; ftplib's socket timeout is 20 s at most. */
  timeoutMs: number;
  registry?: ChildRegistry;
}

/** Debian's python3 where there is one (a version-manager shim is a shell script, preloaded too). */
function python3(): string {
  return existsSync("/usr/bin/python3") ? "/usr/bin/python3" : requireCommand("python3");
}

function ftplibArgs(opts: FtplibOptions): string[] {
  return [
    join(FIXTURES, "ftplib_transfer.py"),
    "--host",
    opts.host,
    "--port",
    String(opts.port),
    "--timeout",
    String(Math.min(20_000, opts.timeoutMs) / 1000),
    ...(opts.active ? ["--active"] : []),
    JSON.stringify(opts.actions),
  ];
}

/**
 * ftplib (test/fixtures/ftplib_transfer.py) under `proxychains4 -q -f <conf>` with proxy_dns.
 * Every command and reply is on stdout.
 */
export function ftplibProxychains(opts: FtplibOptions): Promise<SpawnResult> {
  const proxychains = requireCommand("proxychains4");
  return withTempDir("underpass-ftplib-", async (dir) => {
    const conf = join(dir, "proxychains.conf");
    await writeFile(conf, proxychainsConfig(opts.socks), { mode: 0o600 });
    return spawnBounded(proxychains, ["-q", "-f", conf, python3(), ...ftplibArgs(opts)], {
      timeoutMs: opts.timeoutMs,
      env: toolEnv(),
      registry: opts.registry,
    });
  });
}

/** The Dante client configuration: everything through one SOCKS5 proxy, CONNECT and BIND. */
export function danteConfig(socks: SocksProxy): string {
  return [
    "# written by test/helpers/ftp-clients.ts",
    "logoutput: stderr",
    // Host names go to the proxy (SOCKS5 ATYP 0x03); the program sees a fake address.
    "resolveprotocol: fake",
    "route {",
    `  from: 0.0.0.0/0 to: 0.0.0.0/0 via: ${socks.host} port = ${socks.port}`,
    "  proxyprotocol: socks_v5",
    `  method: ${socks.username === undefined ? "none" : "username"}`,
    "  command: bind connect",
    "}",
    "",
  ].join("\n");
}

export interface SocksifyOptions {
  socks: SocksProxy;
  /** The process is killed after this long, in ms. */
  timeoutMs: number;
  registry?: ChildRegistry;
}

/**
 * Runs `command args` under Dante's `socksify` (dante-client, LD_PRELOAD): its connect()
 * becomes a SOCKS5 CONNECT, its bind()/listen()/accept() a SOCKS5 BIND. Credentials go in
 * SOCKS_USERNAME / SOCKS_PASSWORD, the configuration (`danteConfig`) in SOCKS_CONF; Dante
 * logs what it asks the proxy on stderr.
 */
export function socksify(
  command: string,
  args: readonly string[],
  opts: SocksifyOptions,
): Promise<SpawnResult> {
  const socksifyBin = requireCommand("socksify", "dante-client");
  return withTempDir("underpass-socksify-", async (dir) => {
    const conf = join(dir, "dante.conf");
    await writeFile(conf, danteConfig(opts.socks), { mode: 0o600 });
    return spawnBounded(socksifyBin, [command, ...args], {
      timeoutMs: opts.timeoutMs,
      env: toolEnv({
        SOCKS_CONF: conf,
        ...(opts.socks.username === undefined ? {} : { SOCKS_USERNAME: opts.socks.username }),
        ...(opts.socks.password === undefined ? {} : { SOCKS_PASSWORD: opts.socks.password }),
      }),
      registry: opts.registry,
    });
  });
}

/** ftplib under `socksify`: in active mode its listen()/accept() are meant to become a SOCKS5 BIND. */
export function ftplibSocksify(opts: FtplibOptions): Promise<SpawnResult> {
  return socksify(python3(), ftplibArgs(opts), opts);
}

/**
 * curl in active mode under `socksify`: `--ftp-port -` (listen where the control connection's
 * local address is, which Dante answers from the proxy's replies) with PORT, or EPRT with
 * `eprt`. The download goes to `output`; `-v` puts the FTP dialogue on stderr.
 */
export function curlActiveSocksify(
  opts: SocksifyOptions & { url: string; output: string; eprt?: boolean },
): Promise<SpawnResult> {
  const seconds = (Math.min(opts.timeoutMs, 60_000) / 1000).toFixed(3);
  const args = ["-q", "-sS", "-v", "--max-time", seconds, "--ftp-port", "-"];
  if (!opts.eprt) args.push("--disable-eprt");
  args.push("-o", opts.output, opts.url);
  return socksify(requireCommand("curl"), args, { ...opts, timeoutMs: opts.timeoutMs + 5000 });
}

// ---------------------------------------------------------------------------------------------
// FTPS: curl and lftp

/** `ftp://` (explicit FTPS: AUTH TLS on the control port) or `ftps://` (implicit: TLS from the first byte). */
export function ftpsUrl(mode: "explicit" | "implicit", host: string, port: number, path = "/"): string {
  return `${mode === "implicit" ? "ftps" : "ftp"}://${host}:${port}${path.startsWith("/") ? path : `/${path}`}`;
}

/**
 * curl with `--ssl-reqd` (TLS on control and data connections or nothing) and `-k` (the test
 * certificate is self-signed); the URL's scheme picks explicit (`ftp://`) or implicit (`ftps://`).
 */
export function curlFtps(opts: CurlFtpOptions): Promise<SpawnResult> {
  return curlFtp({ ...opts, extraArgs: ["--ssl-reqd", "-k", ...(opts.extraArgs ?? [])] });
}

/** lftp settings for FTPS against a self-signed server: TLS required on control and data. */
export const LFTP_FTPS_SETTINGS: Readonly<Record<string, string>> = {
  "ftp:ssl-allow": "yes",
  // lftp skips AUTH TLS for anonymous logins unless told otherwise, even with ssl-force.
  "ftp:ssl-allow-anonymous": "yes",
  "ftp:ssl-force": "yes",
  "ftp:ssl-protect-data": "yes",
  "ftp:ssl-protect-list": "yes",
  "ssl:verify-certificate": "no",
};

/** lftp (under proxychains4 when `socks` is given) with `LFTP_FTPS_SETTINGS`; `ftps://` URLs are implicit FTPS. */
export function lftpFtps(opts: LftpOptions): Promise<SpawnResult> {
  return lftp({ ...opts, settings: { ...LFTP_FTPS_SETTINGS, ...opts.settings } });
}

// ---------------------------------------------------------------------------------------------
// OpenSSH sftp and scp through SOCKS5 with username/password

export interface SshThroughSocksOptions {
  /** The server as the client names it (a virtual host the proxy resolves) and its port. */
  host: string;
  port: number;
  login: SshLogin;
  /** Reached with `-o ProxyCommand=` running test/fixtures/socks-connect.mjs. */
  socks: SocksProxy;
  /** The process is killed after this long, in ms. */
  timeoutMs: number;
  registry?: ChildRegistry;
}

/** ssh options shared by sftp and scp: no user config, the pinned host key, the key only, no prompts. */
function sshOptions(opts: SshThroughSocksOptions): string[] {
  const proxyCommand = `'${process.execPath}' '${join(FIXTURES, "socks-connect.mjs")}' %h %p`;
  return [
    "-F",
    "/dev/null",
    "-o",
    `ProxyCommand=${proxyCommand}`,
    "-o",
    `UserKnownHostsFile=${opts.login.knownHostsFile}`,
    "-o",
    "GlobalKnownHostsFile=/dev/null",
    "-o",
    `HostKeyAlias=${opts.login.hostKeyAlias}`,
    "-o",
    "StrictHostKeyChecking=yes",
    "-o",
    "BatchMode=yes",
    "-o",
    "IdentitiesOnly=yes",
    "-o",
    `ConnectTimeout=${Math.ceil(Math.min(20_000, opts.timeoutMs) / 1000)}`,
    "-i",
    opts.login.identityFile,
    "-P",
    String(opts.port),
  ];
}

function sshSpawn(cmd: string, args: string[], opts: SshThroughSocksOptions, input?: string) {
  return spawnBounded(requireCommand(cmd, "openssh-client"), args, {
    timeoutMs: opts.timeoutMs,
    env: toolEnv(socksEnv(opts.socks)),
    registry: opts.registry,
    ...(input === undefined ? {} : { input }),
  });
}

/** `sftp -b -` with these batch commands (`get a b`, `put a b`, `ls -l d`); a failing command fails the run. */
export function sftpBatch(
  opts: SshThroughSocksOptions & { commands: readonly string[] },
): Promise<SpawnResult> {
  const target = `${opts.login.user}@${opts.host}`;
  return sshSpawn("sftp", ["-b", "-", ...sshOptions(opts), target], opts, `${opts.commands.join("\n")}\n`);
}

/**
 * `scp` one file between `localPath` and the server's `remotePath`. OpenSSH 9 speaks the SFTP
 * protocol underneath; `legacy` (-O) uses the original SCP protocol.
 */
export function scpCopy(
  opts: SshThroughSocksOptions & {
    direction: "download" | "upload";
    remotePath: string;
    localPath: string;
    legacy?: boolean;
  },
): Promise<SpawnResult> {
  const remote = `${opts.login.user}@${opts.host}:${opts.remotePath}`;
  const [from, to] = opts.direction === "download" ? [remote, opts.localPath] : [opts.localPath, remote];
  return sshSpawn("scp", [...(opts.legacy ? ["-O"] : []), "-q", ...sshOptions(opts), from, to], opts);
}
