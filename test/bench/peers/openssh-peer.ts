/**
 * OpenSSH's reverse dynamic forward, the tunnel an engineer would set up by hand: a private
 * sshd on loopback (test/helpers/sshd.ts) plays the cloud host, and `ssh -R PORT` from the
 * "premises" makes sshd serve SOCKS on 127.0.0.1:PORT while the ssh client dials the targets
 * (OpenSSH >= 7.6). The cipher is pinned to aes128-gcm@openssh.com, the fastest one with
 * AES-NI. OpenSSH's SOCKS has no authentication.
 */
import { join } from "node:path";
import { findCommand } from "../../helpers/clients.js";
import { freePort, waitForPort } from "../../helpers/ports.js";
import { startSshd } from "../../helpers/sshd.js";
import { assertRunning, benchChildren, startDaemon } from "../processes.js";
import { exposeAsIs, type Peer, type PeerContext } from "./peer.js";

const CIPHER = "aes128-gcm@openssh.com";

export async function startOpenSsh(ctx: PeerContext): Promise<Peer> {
  const ssh = findCommand("ssh");
  if (ssh === undefined) throw new Error("the OpenSSH client (ssh) is not installed");
  const server = await startSshd({ registry: benchChildren });
  try {
    const socksPort = await freePort();
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
        // the host key is pinned under the helper's alias, so checking stays strict
        "-o",
        `UserKnownHostsFile=${server.knownHostsFile}`,
        "-o",
        `HostKeyAlias=${server.hostKeyAlias}`,
        "-o",
        "ExitOnForwardFailure=yes",
        "-o",
        "LogLevel=ERROR",
        "-i",
        server.identityFile,
        "-R",
        String(socksPort),
        "-p",
        String(server.port),
        `${server.user}@${server.host}`,
      ],
      join(ctx.dir, "ssh.log"),
    );
    const stop = async (): Promise<void> => {
      await client.stop();
      await server.close();
    };
    try {
      await waitForPort(socksPort, "127.0.0.1", 15_000).catch((err: unknown) => {
        assertRunning(client);
        throw err;
      });
    } catch (err) {
      await client.stop();
      throw err;
    }
    return {
      id: "ssh",
      proxy: { host: "127.0.0.1", port: socksPort },
      expose: exposeAsIs,
      // the SOCKS listener and the channels live in sshd's per-connection session processes
      pids: () => [...server.processes(), client.pid],
      stop,
    };
  } catch (err) {
    await server.close();
    throw err;
  }
}
