/**
 * A private haproxy (Debian's package) in front of several relays: one TCP frontend for the
 * SOCKS port and one for the tunnel port, `balance roundrobin` with no affinity, each server
 * health-checked on its admin listener's `/healthz`. Started in a temp dir with its own config,
 * on free loopback ports, never the system service; stopped in teardown.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { freePort, waitForPort } from "./ports.js";

export interface HaproxyBackend {
  readonly name: string;
  readonly socksPort: number;
  readonly tunnelPort: number;
  readonly adminPort: number;
}

export interface Haproxy {
  readonly socksPort: number;
  readonly tunnelPort: number;
  /** haproxy's own stats page (CSV at `/;csv`), for a test that wants to see server states. */
  readonly statsPort: number;
  /** Servers haproxy counts as up, by backend: read from the stats CSV. */
  upServers(backend: "socks" | "tunnel"): Promise<string[]>;
  stop(): Promise<void>;
}

export interface HaproxyOptions {
  readonly relays: readonly HaproxyBackend[];
  /** Health check period, in ms (default 500: a dead relay leaves rotation within ~1.5 s). */
  readonly checkIntervalMs?: number;
}

/** The configuration a test (and the README's example) runs. */
export function haproxyConfig(
  o: HaproxyOptions & { socksPort: number; tunnelPort: number; statsPort: number },
): string {
  const inter = o.checkIntervalMs ?? 500;
  const servers = (kind: "socks" | "tunnel"): string =>
    o.relays
      .map(
        (r) =>
          `    server ${r.name} 127.0.0.1:${kind === "socks" ? r.socksPort : r.tunnelPort} ` +
          `check port ${r.adminPort} inter ${inter} fall 2 rise 2`,
      )
      .join("\n");
  return `global
    maxconn 8000

defaults
    mode tcp
    timeout connect 5s
    timeout client 1h
    timeout server 1h
    timeout check 2s
    option redispatch
    retries 2

frontend socks
    bind 127.0.0.1:${o.socksPort}
    default_backend socks

backend socks
    balance roundrobin
    option httpchk GET /healthz
    http-check expect status 200
${servers("socks")}

frontend tunnel
    bind 127.0.0.1:${o.tunnelPort}
    default_backend tunnel

backend tunnel
    balance roundrobin
    option httpchk GET /healthz
    http-check expect status 200
${servers("tunnel")}

listen stats
    mode http
    bind 127.0.0.1:${o.statsPort}
    stats enable
    stats uri /
`;
}

export async function startHaproxy(o: HaproxyOptions): Promise<Haproxy> {
  const dir = await mkdtemp(join(tmpdir(), "underpass-haproxy-"));
  const [socksPort, tunnelPort, statsPort] = [await freePort(), await freePort(), await freePort()];
  const cfg = join(dir, "haproxy.cfg");
  await writeFile(cfg, haproxyConfig({ ...o, socksPort, tunnelPort, statsPort }));
  const child: ChildProcess = spawn("haproxy", ["-db", "-f", cfg], { stdio: ["ignore", "ignore", "pipe"] });
  let stderr = "";
  child.stderr?.on("data", (b: Buffer) => {
    stderr = (stderr + b.toString()).slice(-4000);
  });
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  try {
    await Promise.race([
      Promise.all([waitForPort(socksPort), waitForPort(tunnelPort), waitForPort(statsPort)]),
      exited.then(() => {
        throw new Error(`haproxy exited: ${stderr}`);
      }),
    ]);
  } catch (err) {
    child.kill("SIGKILL");
    await rm(dir, { recursive: true, force: true });
    throw err;
  }
  return {
    socksPort,
    tunnelPort,
    statsPort,
    async upServers(backend) {
      const csv = await (await fetch(`http://127.0.0.1:${statsPort}/;csv`)).text();
      return csv
        .split("\n")
        .map((l) => l.split(","))
        .filter(
          (f) => f[0] === backend && f[1] !== "BACKEND" && f[1] !== "FRONTEND" && f[17]?.startsWith("UP"),
        )
        .map((f) => f[1]!);
    },
    async stop() {
      if (child.exitCode === null) {
        child.kill("SIGTERM");
        await Promise.race([exited, new Promise((resolve) => setTimeout(resolve, 5_000))]);
        if (child.exitCode === null) child.kill("SIGKILL");
        await exited;
      }
      await rm(dir, { recursive: true, force: true });
    },
  };
}
