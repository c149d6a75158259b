/**
 * One bench run: check the tools, start the target and the peers, run the scenarios, stop
 * everything (also when a scenario throws) and hand back what was measured.
 */
import { existsSync } from "node:fs";
import { mkdir } from "node:fs/promises";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { findCommand } from "../helpers/clients.js";
import { freePortRange, waitForPort } from "../helpers/ports.js";
import type { RunContext, TargetRoute } from "./context.js";
import { FigureBook, FTP_DOWNLOAD } from "./figures.js";
import type { BenchOptions } from "./options.js";
import { startDante } from "./peers/dante-peer.js";
import { startOpenSsh } from "./peers/openssh-peer.js";
import type { Peer, PeerContext, PeerId } from "./peers/peer.js";
import { directPeer, startMicrosocks } from "./peers/simple-peers.js";
import { startUnderpassCluster } from "./peers/underpass-cluster-peer.js";
import { startUnderpass } from "./peers/underpass-peer.js";
import { assertRunning, type Daemon, startDaemon } from "./processes.js";
import type { PeerStatus } from "./report.js";
import { runDistance } from "./scenarios/distance.js";
import { runFairness } from "./scenarios/fairness.js";
import { runFtp } from "./scenarios/ftp.js";
import { runLatency } from "./scenarios/latency.js";
import { runRest } from "./scenarios/rest.js";
import { runScale } from "./scenarios/scale.js";
import { runThroughput } from "./scenarios/throughput.js";
import { TARGET_PORT, TARGET_PORT_COUNT } from "./target-protocol.js";

const INSTALL_HINT = "run scripts/install-bench-peers.sh";
const CLI = fileURLToPath(new URL("../../cli/main.js", import.meta.url));
const TARGET_SERVER = fileURLToPath(new URL("./target-server.js", import.meta.url));

/** Commands each peer needs. */
const NEEDS: Readonly<Record<PeerId, readonly string[]>> = {
  direct: [],
  microsocks: ["microsocks"],
  dante: ["danted"],
  ssh: ["sshd", "ssh", "ssh-keygen"],
  "underpass-ws": [],
  "underpass-wss": ["openssl"],
  "underpass-cluster": ["haproxy"],
  "baseline-ws": [],
  "baseline-wss": ["openssl"],
};
const FTP_NEEDS = ["vsftpd", "curl"];

/** The CLI an Underpass peer runs; null for the other peers. */
function cliOf(peer: PeerId, options: BenchOptions): string | null {
  if (peer.startsWith("underpass")) return CLI;
  if (peer.startsWith("baseline")) return options.baselineCli ?? `${CLI} (no --baseline given)`;
  return null;
}

function missing(commands: readonly string[]): string[] {
  return commands.filter((c) => findCommand(c) === undefined);
}

/** Which of the wanted peers can run; a description of each one that cannot. */
export function preflight(options: BenchOptions): {
  runnable: PeerId[];
  skipped: Map<PeerId, string>;
  ftpMissing: string[];
} {
  const runnable: PeerId[] = [];
  const skipped = new Map<PeerId, string>();
  for (const peer of options.peers) {
    const gone = missing(NEEDS[peer]);
    const cli = cliOf(peer, options);
    if (cli !== null && !existsSync(cli)) gone.push(`${cli} (build it: npx tsc -p tsconfig.json)`);
    if (gone.length > 0) skipped.set(peer, `${gone.join(", ")} not installed: ${INSTALL_HINT}`);
    else runnable.push(peer);
  }
  const ftpMissing = options.figures.has(FTP_DOWNLOAD.id) ? missing(FTP_NEEDS) : [];
  return { runnable, skipped, ftpMissing };
}

async function startPeer(id: PeerId, ctx: PeerContext): Promise<Peer> {
  switch (id) {
    case "direct":
      return directPeer();
    case "microsocks":
      return startMicrosocks(ctx);
    case "dante":
      return startDante(ctx);
    case "ssh":
      return startOpenSsh(ctx);
    case "underpass-ws":
      return startUnderpass(ctx, false);
    case "underpass-wss":
      return startUnderpass(ctx, true);
    case "underpass-cluster":
      return startUnderpassCluster(ctx);
    case "baseline-ws":
      return startUnderpass(ctx, false, true);
    case "baseline-wss":
      return startUnderpass(ctx, true, true);
    default: {
      const never: never = id;
      throw new Error(`unknown peer ${String(never)}`);
    }
  }
}

async function startTarget(dir: string): Promise<{ daemon: Daemon; base: number }> {
  const span = await freePortRange(TARGET_PORT_COUNT);
  const daemon = startDaemon(
    "bench target",
    process.execPath,
    [TARGET_SERVER, String(span.start)],
    join(dir, "target.log"),
    {
      stdinPipe: true,
    },
  );
  try {
    for (let p = span.start; p <= span.end; p++) await waitForPort(p, "127.0.0.1", 10_000);
    assertRunning(daemon);
  } catch (err) {
    await daemon.stop();
    throw err;
  }
  return { daemon, base: span.start };
}

export interface RunOutcome {
  readonly book: FigureBook;
  readonly peers: Partial<Record<PeerId, PeerStatus>>;
}

export async function runBench(
  options: BenchOptions,
  runDir: string,
  log: (message: string) => void,
): Promise<RunOutcome> {
  const { runnable, skipped, ftpMissing } = preflight(options);
  const statuses: Partial<Record<PeerId, PeerStatus>> = {};
  for (const [peer, reason] of skipped) {
    statuses[peer] = { measured: false, reason };
    log(`skipping ${peer}: ${reason}`);
  }
  const figures = new Set(options.figures);
  if (ftpMissing.length > 0) {
    log(`skipping the FTP figure: ${ftpMissing.join(", ")} not installed: ${INSTALL_HINT}`);
    figures.delete(FTP_DOWNLOAD.id);
  }
  if (options.requireAll && (skipped.size > 0 || ftpMissing.length > 0)) {
    throw new Error(`--require-all: missing tools (${INSTALL_HINT})`);
  }

  await mkdir(runDir, { recursive: true });
  const book = new FigureBook();
  const peers: Peer[] = [];
  const target = await startTarget(runDir);
  try {
    const routes = new Map<PeerId, TargetRoute>();
    let launches = 0;
    const launch = async (
      id: PeerId,
      dir: string,
      tunnelRttMs: number | null = null,
      relayEnv: Readonly<Record<string, string>> = {},
    ): Promise<{ peer: Peer; route: TargetRoute }> => {
      await mkdir(dir, { recursive: true });
      const peer = await startPeer(id, {
        dir,
        profile: options.profile,
        cli: cliOf(id, options) ?? CLI,
        nodeFlags: options.nodeFlags,
        tunnelRttMs,
        relayEnv,
      });
      try {
        const first = await peer.expose({
          name: "target",
          host: "127.0.0.1",
          ports: { start: target.base, end: target.base + TARGET_PORT_COUNT - 1 },
        });
        const at = (offset: number) => ({ host: first.host, port: first.port + offset });
        return {
          peer,
          route: { sink: at(TARGET_PORT.SINK), source: at(TARGET_PORT.SOURCE), echo: at(TARGET_PORT.ECHO) },
        };
      } catch (err) {
        await peer.stop();
        throw err;
      }
    };
    for (const id of runnable) {
      try {
        const { peer, route } = await launch(id, join(runDir, id));
        peers.push(peer);
        routes.set(id, route);
        statuses[id] = { measured: true };
        const where = peer.proxy
          ? ` (socks5 on ${peer.proxy.host}:${peer.proxy.port}, pids ${peer.pids().join(" ")})`
          : "";
        log(`started ${id}${where}`);
      } catch (err) {
        const reason = `failed to start: ${err instanceof Error ? err.message : String(err)}`;
        statuses[id] = { measured: false, reason };
        log(`${id} ${reason}`);
        if (options.requireAll) throw err;
      }
    }
    const ctx: RunContext = {
      options: { ...options, figures },
      book,
      peers,
      routes,
      scratch: runDir,
      launch: (id, tunnelRttMs, relayEnv) =>
        launch(id, join(runDir, `${id}-${++launches}`), tunnelRttMs ?? null, relayEnv),
      log,
    };
    await runThroughput(ctx);
    await runLatency(ctx);
    await runFairness(ctx);
    await runFtp(ctx);
    await runScale(ctx);
    await runRest(ctx);
    await runDistance(ctx, target.base);
    assertRunning(target.daemon);
  } finally {
    for (const p of peers.reverse()) await p.stop().catch(() => {});
    await target.daemon.stop();
  }
  return { book, peers: statuses };
}
