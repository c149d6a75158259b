/** The two peers that are one process or none: no proxy at all, and microsocks. */
import { randomBytes } from "node:crypto";
import { join } from "node:path";
import { findCommand } from "../../helpers/clients.js";
import { freePort, waitForPort } from "../../helpers/ports.js";
import { assertRunning, startDaemon } from "../processes.js";
import { exposeAsIs, type Peer, type PeerContext } from "./peer.js";

export function directPeer(): Peer {
  return { id: "direct", proxy: null, expose: exposeAsIs, pids: () => [], stop: async () => {} };
}

/** `microsocks -i 127.0.0.1 -p PORT -u user -P pass`. */
export async function startMicrosocks(ctx: PeerContext): Promise<Peer> {
  const bin = findCommand("microsocks");
  if (bin === undefined) throw new Error("microsocks is not installed");
  const port = await freePort();
  const username = "bench";
  const password = randomBytes(9).toString("base64url");
  const daemon = startDaemon(
    "microsocks",
    bin,
    ["-i", "127.0.0.1", "-p", String(port), "-u", username, "-P", password],
    join(ctx.dir, "microsocks.log"),
  );
  try {
    await waitForPort(port, "127.0.0.1", 10_000);
    assertRunning(daemon);
  } catch (err) {
    await daemon.stop();
    throw err;
  }
  return {
    id: "microsocks",
    proxy: { host: "127.0.0.1", port, username, password },
    expose: exposeAsIs,
    pids: () => [daemon.pid],
    stop: () => daemon.stop(),
  };
}
