/**
 * OpenSSH's reverse dynamic forward, the tunnel an engineer would set up by hand: a private
 * sshd on loopback plays the cloud host, and `ssh -R PORT` from the "premises" makes sshd
 * serve SOCKS on 127.0.0.1:PORT while the ssh client dials the targets (OpenSSH >= 7.6).
 * The cipher is pinned to aes128-gcm@openssh.com, the fastest one with AES-NI.
 */
import { mkdirSync } from "node:fs";
import { readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { findCommand, spawnBounded } from "../../helpers/clients.js";
import { freePort, waitForPort } from "../../helpers/ports.js";
import { assertRunning, benchChildren, type Daemon, startDaemon, withDescendants } from "../processes.js";
import { exposeAsIs, type Peer, type PeerContext } from "./peer.js";

const CIPHER = "aes128-gcm@openssh.com";

async function keygen(bin: string, file: string): Promise<void> {
  const r = await spawnBounded(bin, ["-q", "-t", "ed25519", "-N", "", "-C", "underpass-bench", "-f", file], {
    timeoutMs: 10_000,
    registry: benchChildren,
  });
  if (r.code !== 0) throw new Error(`ssh-keygen failed: ${r.stderr}`);
}

export async function startOpenSsh(ctx: PeerContext): Promise<Peer> {
  const sshd = findCommand("sshd");
  const ssh = findCommand("ssh");
  const sshKeygen = findCommand("ssh-keygen");
  if (sshd === undefined || ssh === undefined || sshKeygen === undefined) {
    throw new Error("OpenSSH (sshd, ssh, ssh-keygen) is not installed");
  }
  if (process.getuid?.() !== 0) throw new Error("the private sshd needs root here");
  // sshd refuses to start without its privilege-separation directory
  mkdirSync("/run/sshd", { recursive: true, mode: 0o755 });

  const hostKey = join(ctx.dir, "host_ed25519");
  const clientKey = join(ctx.dir, "client_ed25519");
  await keygen(sshKeygen, hostKey);
  await keygen(sshKeygen, clientKey);
  const authorizedKeys = join(ctx.dir, "authorized_keys");
  await writeFile(authorizedKeys, await readFile(`${clientKey}.pub`), { mode: 0o600 });

  const sshdPort = await freePort();
  const socksPort = await freePort();
  const config = join(ctx.dir, "sshd_config");
  await writeFile(
    config,
    [
      `Port ${sshdPort}`,
      "ListenAddress 127.0.0.1",
      `HostKey ${hostKey}`,
      `AuthorizedKeysFile ${authorizedKeys}`,
      `PidFile ${join(ctx.dir, "sshd.pid")}`,
      "UsePAM no",
      "PermitRootLogin prohibit-password",
      "PasswordAuthentication no",
      "KbdInteractiveAuthentication no",
      // the temp dir's modes are the bench's business, not a user's home
      "StrictModes no",
      "AllowTcpForwarding yes",
      "GatewayPorts no",
      `Ciphers ${CIPHER}`,
      "LogLevel ERROR",
      "",
    ].join("\n"),
    { mode: 0o600 },
  );

  const daemons: Daemon[] = [];
  const stop = async (): Promise<void> => {
    for (const d of daemons.reverse()) await d.stop();
  };
  try {
    const server = startDaemon("sshd", sshd, ["-D", "-e", "-f", config], join(ctx.dir, "sshd.log"));
    daemons.push(server);
    await waitForPort(sshdPort, "127.0.0.1", 10_000);
    assertRunning(server);
    const client = startDaemon(
      "ssh -R",
      ssh,
      [
        "-F",
        "/dev/null",
        "-N",
        "-T",
        "-o",
        "BatchMode=yes",
        "-o",
        `Ciphers=${CIPHER}`,
        "-o",
        "StrictHostKeyChecking=no",
        "-o",
        "UserKnownHostsFile=/dev/null",
        "-o",
        "ExitOnForwardFailure=yes",
        "-o",
        "LogLevel=ERROR",
        "-i",
        clientKey,
        "-R",
        String(socksPort),
        "-p",
        String(sshdPort),
        "root@127.0.0.1",
      ],
      join(ctx.dir, "ssh.log"),
    );
    daemons.push(client);
    await waitForPort(socksPort, "127.0.0.1", 15_000).catch((err: unknown) => {
      assertRunning(client);
      throw err;
    });
    return {
      id: "ssh",
      proxy: { host: "127.0.0.1", port: socksPort },
      expose: exposeAsIs,
      // the SOCKS listener and the channels live in sshd's per-connection session processes
      pids: () => [...withDescendants(server.pid), client.pid],
      stop,
    };
  } catch (err) {
    await stop();
    throw err;
  }
}
