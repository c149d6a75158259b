/**
 * FTP servers other than vsftpd for the end-to-end tests, and the plain Underpass mappings
 * that put any of them behind the relay.
 *
 * proftpd runs per test as root in the foreground (`proftpd -n -c <conf>`), with a config of
 * its own in a temp dir: anonymous FTP on a free loopback port, a fixed passive range, an
 * announced PASV address of the test's choosing (`MasqueradeAddress`, e.g. an unroutable one as
 * behind NAT) and an `upload/` directory that takes anonymous uploads. Every Debian FTP server
 * package conflicts with every other (`Conflicts: ftp-server`), so `.ci/run` unpacks
 * proftpd-core next to the installed vsftpd instead of installing it.
 */
import { existsSync } from "node:fs";
import { chmod, chown, mkdir, readFile, rm, writeFile } from "node:fs/promises";
import { isIP } from "node:net";
import { join } from "node:path";
import { type ChildRegistry, findCommand } from "./clients.js";
import { daemonControls, inTempDir, startDaemon } from "./daemon.js";
import type { PortSpan } from "./ports.js";
import type { Stack } from "./stack.js";

/** An address for 227 replies that nothing answers on, as with a server behind NAT. */
export const UNROUTABLE_PASV_ADDRESS = "10.255.255.1";

/** Where `.ci/run` unpacks proftpd-core. */
export const PROFTPD_UNPACKED = "/opt/underpass-ci/proftpd-core/usr/sbin/proftpd";

/** What the tests need of any FTP server, vsftpd's helper included. */
export interface FtpServerAddress {
  /** The listen address. */
  readonly host: string;
  /** The control port. */
  readonly port: number;
  /** The passive data ports it announces. */
  readonly pasvPorts: PortSpan;
}

export interface ProftpdOptions {
  /** PassivePorts. */
  pasvPorts: PortSpan;
  /** MasqueradeAddress: the IPv4 address announced in 227 replies; the listen address unless given. */
  pasvAddress?: string;
  /** Create `upload/` (owned by `ftp`) and allow anonymous STOR into it; default true. */
  allowUpload?: boolean;
  /** DefaultAddress; default 127.0.0.1. */
  listenAddress?: string;
  /** How long to wait for the 220 banner, in ms (default 15 s). */
  startTimeoutMs?: number;
  registry?: ChildRegistry;
}

export interface ProftpdServer extends FtpServerAddress {
  /** The anonymous root: what `ftp://host:port/` shows. */
  readonly root: string;
  /** `root/upload`, where anonymous uploads land (created only with `allowUpload`). */
  readonly uploadDir: string;
  /** The address announced in 227 replies. */
  readonly pasvAddress: string;
  /** Every command and its reply code, one line each (an ExtendedLog). */
  readonly commandLog: string;
  /** `ftp://host:port/<path>`. */
  url(path?: string): string;
  /** proftpd's stdio, command log and transfer log, for failure messages. */
  readLog(): Promise<string>;
  /** Pids of the listener and its sessions still alive (empty after close()). */
  processes(): number[];
  /** Kills proftpd and its sessions and removes its temp dir. */
  close(): Promise<void>;
}

/** The proftpd binary: on PATH (installed package) or where `.ci/run` unpacked it. */
export function proftpdCommand(): string {
  const found = findCommand("proftpd") ?? (existsSync(PROFTPD_UNPACKED) ? PROFTPD_UNPACKED : undefined);
  if (found === undefined) {
    throw new Error(
      `proftpd is not installed: run .ci/run --system-only (it unpacks it to ${PROFTPD_UNPACKED})`,
    );
  }
  return found;
}

/** Starts proftpd and resolves once it has sent its 220 banner. */
export async function startProftpd(opts: ProftpdOptions): Promise<ProftpdServer> {
  const command = proftpdCommand();
  if (process.getuid?.() !== 0) throw new Error("proftpd needs root here (anonymous sessions chroot)");
  const host = opts.listenAddress ?? "127.0.0.1";
  const pasvAddress = opts.pasvAddress ?? host;
  if (isIP(pasvAddress) !== 4) throw new Error(`pasvAddress must be an IPv4 address, not "${pasvAddress}"`);
  const { start, end } = opts.pasvPorts;
  const allowUpload = opts.allowUpload ?? true;

  return inTempDir("underpass-proftpd-", async (dir) => {
    const root = join(dir, "root");
    const uploadDir = join(root, "upload");
    const commandLog = join(dir, "commands.log");
    const transferLog = join(dir, "xferlog");
    const confFile = join(dir, "proftpd.conf");
    await mkdir(root, { mode: 0o755 });
    await chmod(dir, 0o755); // the `ftp` user must reach its chroot below it
    if (allowUpload) {
      await mkdir(uploadDir, { mode: 0o755 });
      await chown(uploadDir, ...(await ftpIds()));
    }
    const daemon = await startDaemon({
      name: "proftpd",
      command,
      host,
      banner: /^220 /,
      bindFailure: /Address already in use|unable to bind/i,
      stdioFile: join(dir, "stdio.log"),
      startTimeoutMs: opts.startTimeoutMs,
      registry: opts.registry,
      cleanup: () => rm(dir, { recursive: true, force: true }),
      async prepare(port) {
        const config = proftpdConfig({ dir, host, port, root, pasvAddress, start, end, allowUpload });
        await writeFile(confFile, config, { mode: 0o600 });
        return ["-n", "-c", confFile];
      },
      async readLogs() {
        const commands = await readFile(commandLog, "utf8").catch(() => "");
        const transfers = await readFile(transferLog, "utf8").catch(() => "");
        return `--- commands\n${commands.trimEnd()}\n--- transfers\n${transfers.trimEnd()}`;
      },
    });
    return {
      host,
      port: daemon.port,
      pasvPorts: { start, end },
      root,
      uploadDir,
      pasvAddress,
      commandLog,
      url: (path = "/") => `ftp://${host}:${daemon.port}${path.startsWith("/") ? path : `/${path}`}`,
      ...daemonControls(daemon),
    };
  });
}

/** uid and gid of the `ftp` user anonymous sessions run as. */
async function ftpIds(): Promise<[number, number]> {
  const passwd = await readFile("/etc/passwd", "utf8");
  const f = passwd
    .split("\n")
    .find((line) => line.startsWith("ftp:"))
    ?.split(":");
  if (f?.[2] === undefined || f[3] === undefined) {
    throw new Error("there is no `ftp` user for anonymous sessions: run .ci/run --system-only");
  }
  return [Number(f[2]), Number(f[3])];
}

function proftpdConfig(c: {
  dir: string;
  host: string;
  port: number;
  root: string;
  pasvAddress: string;
  start: number;
  end: number;
  allowUpload: boolean;
}): string {
  return `# written by test/helpers/ftp-servers.ts
ServerName "underpass test"
ServerType standalone
Port ${c.port}
DefaultAddress ${c.host}
SocketBindTight on
UseIPv6 off
# the listener drops to nobody once bound; anonymous sessions run as ftp
User nobody
Group nogroup
Umask 022
MaxInstances 50
PidFile ${c.dir}/proftpd.pid
ScoreboardFile ${c.dir}/proftpd.scoreboard
DelayEngine off
WtmpLog off
UseReverseDNS off
RequireValidShell off
AuthOrder mod_auth_unix.c
PassivePorts ${c.start} ${c.end}
MasqueradeAddress ${c.pasvAddress}
AllowOverwrite on
TimeoutIdle 120
SystemLog ${c.dir}/system.log
TransferLog ${c.dir}/xferlog
LogFormat commands "%h %u \\"%r\\" %s %b"
ExtendedLog ${c.dir}/commands.log ALL commands
<Anonymous ${c.root}>
  User ftp
  Group nogroup
  UserAlias anonymous ftp
  RequireValidShell off
  <Limit WRITE>
    DenyAll
  </Limit>${
    c.allowUpload
      ? `
  <Directory upload>
    <Limit STOR>
      AllowAll
    </Limit>
  </Directory>`
      : ""
  }
</Anonymous>
`;
}

/**
 * The plain mappings that put an FTP server behind the relay: `virtualHost:controlPort` to its
 * control port, and its passive range port for port (the data ports a client dials are the ones
 * the server announces, so virtual and internal ports are the same).
 */
export async function addPlainFtpMappings(
  stack: Stack,
  server: FtpServerAddress,
  virtualHost: string,
  controlPort: number = server.port,
): Promise<void> {
  await stack.addMapping({
    virtualHost,
    virtualPort: controlPort,
    internalHost: server.host,
    internalPort: server.port,
    description: "FTP control",
  });
  await addPassiveRangeMapping(stack, server, virtualHost);
}

/** A plain mapping of an FTP server's passive range on `virtualHost`, port for port. */
export async function addPassiveRangeMapping(
  stack: Stack,
  server: FtpServerAddress,
  virtualHost: string,
): Promise<{ id: string }> {
  const range = `${server.pasvPorts.start}-${server.pasvPorts.end}`;
  return stack.addMapping({
    virtualHost,
    virtualPort: range,
    internalHost: server.host,
    internalPort: range,
    description: "FTP passive data",
  });
}

/**
 * The one FTP-aware mapping (`protocol: "ftp"`) that puts an FTP server behind the relay: its
 * control port only. The relay reads the control channel and opens each data port the server
 * announces, for the announcing client, once; no passive range is mapped.
 */
export function addFtpAwareMapping(
  stack: Pick<Stack, "addMapping">,
  server: Pick<FtpServerAddress, "host" | "port">,
  virtualHost: string,
  controlPort: number = server.port,
): Promise<{ id: string }> {
  return stack.addMapping({
    virtualHost,
    virtualPort: controlPort,
    internalHost: server.host,
    internalPort: server.port,
    protocol: "ftp",
    description: "FTP control, FTP-aware",
  });
}
