/**
 * A private OpenSSH sshd per test, for SFTP and scp: root runs it in the foreground
 * (`sshd -D -e -f <conf>`) on a free loopback port with everything in a temp dir of its own —
 * sshd_config, a freshly generated host key, AuthorizedKeysFile, PidFile — and no PAM.
 * The client side gets a user key, which logs in as root, and a known_hosts file that pins the
 * host key under an alias, so a client that reached another server fails.
 */
import { mkdir, readFile, rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { type ChildRegistry, formatResult, requireCommand, spawnBounded } from "./clients.js";
import { daemonControls, inTempDir, startDaemon } from "./daemon.js";

export interface SshdOptions {
  /** ListenAddress; default 127.0.0.1. */
  listenAddress?: string;
  /** How long to wait for the SSH banner, in ms (default 15 s). */
  startTimeoutMs?: number;
  registry?: ChildRegistry;
}

/** What an ssh client needs to log in to the server and check its host key. */
export interface SshLogin {
  /** The user the key logs in as. */
  readonly user: string;
  /** The private key (ed25519, no passphrase). */
  readonly identityFile: string;
  /** A known_hosts file with the server's host key under `hostKeyAlias`. */
  readonly knownHostsFile: string;
  /** The name the host key is pinned under (ssh's HostKeyAlias), whatever host name is dialled. */
  readonly hostKeyAlias: string;
}

export interface SshdServer extends SshLogin {
  readonly host: string;
  readonly port: number;
  /** An empty directory for the test's files (root's). */
  readonly filesDir: string;
  /** sshd's log (LogLevel VERBOSE, on stderr), for failure messages. */
  readLog(): Promise<string>;
  /** Pids of the listener and its sessions still alive (empty after close()). */
  processes(): number[];
  /** Kills sshd and every session and removes its temp dir. */
  close(): Promise<void>;
}

/** The alias the host key is pinned under in `knownHostsFile`. */
const HOST_KEY_ALIAS = "underpass-test-sshd";

async function sshKeygen(keyFile: string, comment: string, registry?: ChildRegistry): Promise<void> {
  const r = await spawnBounded(
    requireCommand("ssh-keygen", "openssh-client"),
    ["-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", keyFile],
    { timeoutMs: 30_000, registry },
  );
  if (r.code !== 0) throw new Error(`ssh-keygen failed\n${formatResult(r)}`);
}

/** Starts sshd and resolves once it has sent its SSH-2.0 banner. */
export async function startSshd(opts: SshdOptions = {}): Promise<SshdServer> {
  const sshd = requireCommand("sshd", "openssh-server");
  if (process.getuid?.() !== 0) throw new Error("sshd needs root here");
  const host = opts.listenAddress ?? "127.0.0.1";
  // sshd refuses to start without its privilege separation directory.
  await mkdir("/run/sshd", { recursive: true, mode: 0o755 });

  return inTempDir("underpass-sshd-", async (dir) => {
    const hostKey = join(dir, "ssh_host_ed25519_key");
    const identityFile = join(dir, "id_ed25519");
    const authorizedKeys = join(dir, "authorized_keys");
    const knownHostsFile = join(dir, "known_hosts");
    const filesDir = join(dir, "files");
    const confFile = join(dir, "sshd_config");
    await mkdir(filesDir, { mode: 0o755 });
    await Promise.all([
      sshKeygen(hostKey, "underpass test host", opts.registry),
      sshKeygen(identityFile, "underpass test user", opts.registry),
    ]);
    await writeFile(authorizedKeys, await readFile(`${identityFile}.pub`), { mode: 0o600 });
    await writeFile(knownHostsFile, `${HOST_KEY_ALIAS} ${await readFile(`${hostKey}.pub`, "utf8")}`, {
      mode: 0o600,
    });

    const daemon = await startDaemon({
      name: "sshd",
      command: sshd,
      host,
      banner: /^SSH-2\.0-/,
      bindFailure: /Address already in use|Cannot bind any address/i,
      stdioFile: join(dir, "sshd.log"),
      startTimeoutMs: opts.startTimeoutMs,
      registry: opts.registry,
      cleanup: () => rm(dir, { recursive: true, force: true }),
      async prepare(port) {
        const config = [
          "# written by test/helpers/sshd.ts",
          `ListenAddress ${host}:${port}`,
          `HostKey ${hostKey}`,
          `PidFile ${join(dir, "sshd.pid")}`,
          `AuthorizedKeysFile ${authorizedKeys}`,
          "UsePAM no",
          "PermitRootLogin prohibit-password",
          "PubkeyAuthentication yes",
          "PasswordAuthentication no",
          "KbdInteractiveAuthentication no",
          // The temp dir sits below the world-writable /tmp, which StrictModes rejects.
          "StrictModes no",
          "UseDNS no",
          "PrintMotd no",
          "MaxStartups 100",
          "Subsystem sftp internal-sftp",
          "LogLevel VERBOSE",
          "",
        ].join("\n");
        await writeFile(confFile, config, { mode: 0o600 });
        return ["-D", "-e", "-f", confFile];
      },
    });
    return {
      host,
      port: daemon.port,
      filesDir,
      user: "root",
      identityFile,
      knownHostsFile,
      hostKeyAlias: HOST_KEY_ALIAS,
      ...daemonControls(daemon),
    };
  });
}
