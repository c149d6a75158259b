/**
 * Dante's `danted` (Debian `dante-server`), a second one-hop SOCKS5 server in C beside
 * microsocks: a private config in the peer's scratch dir, on loopback, in the foreground. No
 * SOCKS authentication: Dante's username method checks the system's password database, and the
 * bench does not add system users to the machine it runs on. Dante serves with a process per
 * role (negotiate, request, io children), so its pids are the main process and its children.
 */
import { readdirSync, readFileSync } from "node:fs";
import { writeFile } from "node:fs/promises";
import { join } from "node:path";
import { findCommand } from "../../helpers/clients.js";
import { freePort, waitForPort } from "../../helpers/ports.js";
import { assertRunning, startDaemon } from "../processes.js";
import { exposeAsIs, type Peer, type PeerContext } from "./peer.js";

/** The pids whose parent is `pid` (from /proc/PID/stat, field 4). */
function childrenOf(pid: number): number[] {
  const out: number[] = [];
  for (const name of readdirSync("/proc")) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const stat = readFileSync(`/proc/${name}/stat`, "utf8");
      const ppid = Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]);
      if (ppid === pid) out.push(Number(name));
    } catch {
      // gone meanwhile
    }
  }
  return out;
}

export async function startDante(ctx: PeerContext): Promise<Peer> {
  const bin = findCommand("danted");
  if (bin === undefined) throw new Error("danted is not installed");
  const port = await freePort();
  const conf = join(ctx.dir, "danted.conf");
  await writeFile(
    conf,
    [
      `logoutput: ${join(ctx.dir, "danted.log")}`,
      `internal: 127.0.0.1 port = ${port}`,
      "external: 127.0.0.1",
      "socksmethod: none",
      "clientmethod: none",
      "user.privileged: root",
      "user.unprivileged: nobody",
      "client pass { from: 127.0.0.0/8 to: 0.0.0.0/0 }",
      "socks pass { from: 127.0.0.0/8 to: 0.0.0.0/0 command: connect }",
      "",
    ].join("\n"),
  );
  // bash runs it under a raised open-files limit and execs it: the daemon's pid is danted's
  const daemon = startDaemon(
    "danted",
    bin,
    ["-f", conf, "-p", join(ctx.dir, "danted.pid")],
    join(ctx.dir, "danted.out"),
  );
  try {
    await waitForPort(port, "127.0.0.1", 10_000);
    assertRunning(daemon);
  } catch (err) {
    await daemon.stop();
    throw err;
  }
  return {
    id: "dante",
    proxy: { host: "127.0.0.1", port },
    expose: exposeAsIs,
    pids: () => [daemon.pid, ...childrenOf(daemon.pid)],
    stop: () => daemon.stop(),
  };
}
