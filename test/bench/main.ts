/**
 * `npm run bench [-- options]`: Underpass side by side with what a user would pick instead
 * (no proxy, microsocks, an OpenSSH reverse dynamic forward), all in one run on loopback.
 * Writes results.json, results.md and throughput-latency.svg and prints the targets with their
 * ratios. Every process it starts is stopped at the end, on error and on Ctrl-C.
 */
import { join } from "node:path";
import { writeChart, writeDistanceChart } from "./chart.js";
import { fdLimits, reexecWithRaisedFdLimit } from "./fd-limit.js";
import { throughputFigure } from "./figures.js";
import { machineInfo } from "./machine.js";
import { type BenchOptions, parseOptions, REPO_ROOT, SCRATCH_DIR, USAGE } from "./options.js";
import { PEER_LABEL } from "./peers/peer.js";
import { benchChildren } from "./processes.js";
import { writeReport } from "./report.js";
import { runBench } from "./run.js";
import { checkTargets, quickGate } from "./targets.js";

/** Set by Ctrl-C: the scenarios still running fail one after another; their noise is not shown. */
let stopping = false;

function log(message: string): void {
  if (stopping) return;
  const t = new Date().toISOString().slice(11, 19);
  process.stdout.write(`[bench ${t}] ${message}\n`);
}

/** Ctrl-C or SIGTERM: stop every child, then exit. A second signal exits at once. */
function stopOnSignals(): void {
  const handler = (signal: NodeJS.Signals): void => {
    if (stopping) process.exit(130);
    log(`${signal}: stopping every process the bench started`);
    stopping = true;
    void benchChildren.killAll(2_000).finally(() => process.exit(130));
  };
  process.on("SIGINT", handler);
  process.on("SIGTERM", handler);
}

async function bench(options: BenchOptions): Promise<number> {
  const started = performance.now();
  const machine = machineInfo(REPO_ROOT);
  const files = fdLimits().soft;
  log(`${machine.cpu}, ${machine.cores} cores, Node ${machine.node}, open files ${files}`);
  const most = Math.max(0, ...options.scaleCounts);
  if (options.figures.has("scale") && files < 2 * most + 100) {
    log(
      `open-files limit ${files} cannot be raised here (hard limit; no privilege): a proxy that holds ` +
        `${most} streams in one process needs ${2 * most} descriptors, so expect failures counted at ${most}`,
    );
  }
  const runDir = join(SCRATCH_DIR, `run-${machine.date.replaceAll(/[:.]/g, "-")}`);
  log(`logs and scratch files: ${runDir}`);
  const outcome = await runBench(options, runDir, log);
  const targets = options.quick ? [] : checkTargets(outcome.book, options);
  const durationSeconds = (performance.now() - started) / 1000;
  const report = { machine, options, peers: outcome.peers, book: outcome.book, targets, durationSeconds };
  const written = await writeReport(options.outDir, report);
  const chart = await writeChart(
    options.outDir,
    outcome.book,
    `${machine.cpu}, ${machine.cores} cores, ${machine.date.slice(0, 10)}`,
  );
  const distance = await writeDistanceChart(
    options.outDir,
    outcome.book,
    options.distanceRtts,
    `${machine.cpu}, ${machine.cores} cores, ${machine.date.slice(0, 10)}`,
  );
  log(`wrote ${written.json}, ${written.md}, ${chart}${distance === null ? "" : ` and ${distance}`}`);

  process.stdout.write("\nTargets (ratios of medians within this run):\n");
  for (const t of targets) {
    const against = t.reference === null ? "" : ` vs ${PEER_LABEL[t.reference]}`;
    const ratio = t.ratio === null ? "—" : t.ratio.toFixed(2);
    process.stdout.write(
      `  [${t.status}] ${PEER_LABEL[t.peer]}${against}: ${t.target}: ${ratio} (${t.comparison} ${t.limit})\n`,
    );
  }
  if (options.quick) {
    const ids = [throughputFigure("c2p", 1).id, throughputFigure("p2c", 1).id].filter((id) =>
      options.figures.has(id),
    );
    const gate = quickGate(outcome.book, ids);
    for (const line of gate.lines) process.stdout.write(`  ${line}\n`);
    if (!gate.ok) {
      process.stdout.write(
        "quick bench FAILED: Underpass ws is below half of microsocks' throughput, above 3x its latency " +
          "p50, its agent above 80 MiB at rest, or a figure could not be taken\n",
      );
      return 1;
    }
    process.stdout.write("quick bench passed\n");
  }
  return 0;
}

async function main(): Promise<number> {
  const parsed = parseOptions(process.argv.slice(2));
  if (parsed === "help") {
    process.stdout.write(USAGE);
    return 0;
  }
  const reexec = await reexecWithRaisedFdLimit();
  if (reexec !== null) return reexec;
  stopOnSignals();
  try {
    return await bench(parsed);
  } finally {
    await benchChildren.killAll(2_000);
  }
}

main().then(
  (code) => process.exit(code),
  (err: unknown) => {
    process.stderr.write(`bench: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
    void benchChildren.killAll(2_000).finally(() => process.exit(2));
  },
);
