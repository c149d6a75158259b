/** Command-line options of `npm run bench -- [options]`. */
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import {
  DISTANCE_RTTS,
  FAIRNESS_AGGREGATE,
  FTP_DOWNLOAD,
  LATENCY_P50,
  STREAM_COUNTS,
  throughputFigure,
} from "./figures.js";
import { PEER_IDS, type PeerId } from "./peers/peer.js";
import { GIB, MIB } from "./stats.js";

/** The repository's root, from dist/test/bench/. */
export const REPO_ROOT = fileURLToPath(new URL("../../../", import.meta.url));
export const RESULTS_DIR = join(REPO_ROOT, "test", "bench", "results");
/** Scratch space, gitignored. */
export const SCRATCH_DIR = join(RESULTS_DIR, "tmp");

const THROUGHPUT_IDS = (["c2p", "p2c"] as const).flatMap((d) =>
  STREAM_COUNTS.map((n) => throughputFigure(d, n).id),
);
/** Keys of what a run may measure; `--only` takes these or their group names. */
export const FIGURE_KEYS = [
  ...THROUGHPUT_IDS,
  LATENCY_P50.id,
  FAIRNESS_AGGREGATE.id,
  "scale",
  FTP_DOWNLOAD.id,
  "distance",
  "rest",
];
const GROUPS: Readonly<Record<string, readonly string[]>> = {
  throughput: THROUGHPUT_IDS,
  latency: [LATENCY_P50.id],
  fairness: [FAIRNESS_AGGREGATE.id],
  scale: ["scale"],
  ftp: [FTP_DOWNLOAD.id],
  distance: ["distance"],
  rest: ["rest"],
};

export interface BenchOptions {
  readonly quick: boolean;
  /** Bytes per throughput figure (spread over its streams). */
  readonly sizeBytes: number;
  readonly reps: number;
  readonly peers: readonly PeerId[];
  readonly figures: ReadonlySet<string>;
  readonly latencyRounds: number;
  readonly scaleCounts: readonly number[];
  readonly ftpBytes: number;
  /** Round-trip times of the distance scenario, in ms. */
  readonly distanceRtts: readonly number[];
  /** Bytes per distance figure (spread over its streams). */
  readonly distanceBytes: number;
  /** Fail when a peer's tools are missing, instead of skipping the peer. */
  readonly requireAll: boolean;
  /** Start the relay and the agent with --cpu-prof. */
  readonly profile: boolean;
  readonly outDir: string;
  /** dist/cli/main.js of another Underpass build, measured as the baseline-* peers. */
  readonly baselineCli: string | null;
  /** Extra Node flags for the relay and the agent (experiments only: a user runs none). */
  readonly nodeFlags: readonly string[];
}

export const USAGE = `usage: npm run bench -- [options]

  --quick             smoke run well under a minute: 64 MiB, 1 repetition, direct, microsocks and
                      Underpass ws, 1 stream each way; exits 1 when Underpass ws is below half of
                      microsocks' throughput (results in test/bench/results/tmp/quick)
  --size N            bytes per throughput figure, e.g. 256M, 1G (default 1G)
  --reps N            repetitions of every figure (default 3)
  --peers a,b         among ${PEER_IDS.join(", ")}
  --only a,b          figures: throughput, latency, fairness, scale, ftp, distance, rest, or ids
                      ${THROUGHPUT_IDS[0]}
  --rounds N          latency rounds per repetition (default 500)
  --scale N,M         idle streams held at once (default 1000,10000)
  --ftp-size N        FTP file size (default 256M)
  --distance-rtts a,b round-trip times in ms of the distance scenario, a delay link on the tunnel
                      hop only (default ${DISTANCE_RTTS.join(",")})
  --distance-size N   bytes per distance figure (default: --size)
  --require-all       fail when a peer cannot run, instead of skipping it
  --profile           run the relay and the agent under node --cpu-prof
                      (profiles in test/bench/results/tmp/<run>/<peer>/profiles)
  --baseline DIR      also measure the Underpass build in DIR (a checkout built with tsc) as
                      baseline-ws and baseline-wss, to compare two builds in one run
  --node-flags "..."  extra Node flags for the relay and the agent, e.g. "--trace-gc" (experiments:
                      the recorded results use none, as a user would)
  --out DIR           where results.json, results.md and the chart go (default test/bench/results)
`;

export function parseSize(text: string): number {
  const m = /^(\d+(?:\.\d+)?)\s*([kmg]?)i?b?$/i.exec(text.trim());
  if (!m) throw new Error(`"${text}" is not a size (e.g. 64M, 1G)`);
  const scale = { "": 1, k: 1024, m: MIB, g: GIB }[m[2]!.toLowerCase() as "" | "k" | "m" | "g"];
  return Math.round(Number(m[1]) * scale);
}

function positiveInt(text: string, what: string): number {
  const n = Number(text);
  if (!Number.isInteger(n) || n < 1) throw new Error(`${what} must be a positive integer, not "${text}"`);
  return n;
}

function list(text: string): string[] {
  return text
    .split(",")
    .map((s) => s.trim())
    .filter(Boolean);
}

export function parseOptions(argv: readonly string[]): BenchOptions | "help" {
  const quick = argv.includes("--quick");
  let sizeBytes = quick ? 64 * MIB : GIB;
  let reps = quick ? 1 : 3;
  let peers: PeerId[] = quick
    ? ["direct", "microsocks", "underpass-ws"]
    : PEER_IDS.filter((p) => !p.startsWith("baseline"));
  let figures = new Set(
    quick
      ? [throughputFigure("c2p", 1).id, throughputFigure("p2c", 1).id, LATENCY_P50.id, "rest"]
      : FIGURE_KEYS,
  );
  let latencyRounds = quick ? 200 : 500;
  let scaleCounts = [1000, 10000];
  let ftpBytes = 256 * MIB;
  let distanceRtts: number[] = [...DISTANCE_RTTS];
  let distanceBytes: number | null = null;
  let requireAll = false;
  let profile = false;
  let outDir = quick ? join(SCRATCH_DIR, "quick") : RESULTS_DIR;
  let baselineCli: string | null = null;
  let nodeFlags: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    const value = (): string => {
      const v = argv[++i];
      if (v === undefined) throw new Error(`${arg} needs a value`);
      return v;
    };
    switch (arg) {
      case "--quick":
        break;
      case "--size":
        sizeBytes = parseSize(value());
        break;
      case "--reps":
        reps = positiveInt(value(), "--reps");
        break;
      case "--peers":
        peers = list(value()).map((p) => {
          if (!(PEER_IDS as readonly string[]).includes(p)) throw new Error(`unknown peer "${p}"`);
          return p as PeerId;
        });
        break;
      case "--only":
        figures = new Set(
          list(value()).flatMap((f) => {
            const ids = GROUPS[f] ?? (FIGURE_KEYS.includes(f) ? [f] : null);
            if (ids === null)
              throw new Error(`unknown figure "${f}"; choose among ${FIGURE_KEYS.join(", ")}`);
            return ids;
          }),
        );
        break;
      case "--rounds":
        latencyRounds = positiveInt(value(), "--rounds");
        break;
      case "--scale":
        scaleCounts = list(value()).map((n) => positiveInt(n, "--scale"));
        break;
      case "--ftp-size":
        ftpBytes = parseSize(value());
        break;
      case "--distance-rtts":
        distanceRtts = list(value()).map((n) => positiveInt(n, "--distance-rtts"));
        break;
      case "--distance-size":
        distanceBytes = parseSize(value());
        break;
      case "--require-all":
        requireAll = true;
        break;
      case "--profile":
        profile = true;
        break;
      case "--out":
        outDir = value();
        break;
      case "--node-flags":
        nodeFlags = value().split(/\s+/).filter(Boolean);
        break;
      case "--baseline":
        baselineCli = join(value(), "dist", "cli", "main.js");
        break;
      case "-h":
      case "--help":
        return "help";
      default:
        throw new Error(`unknown option "${arg}"\n\n${USAGE}`);
    }
  }
  if (baselineCli !== null) {
    for (const p of ["baseline-ws", "baseline-wss"] as const) {
      const twin = p === "baseline-ws" ? "underpass-ws" : "underpass-wss";
      if (peers.includes(twin) && !peers.includes(p)) peers.push(p);
    }
  }
  return {
    quick,
    sizeBytes,
    reps,
    peers,
    figures,
    latencyRounds,
    scaleCounts,
    ftpBytes,
    distanceRtts,
    distanceBytes: distanceBytes ?? sizeBytes,
    requireAll,
    profile,
    outDir,
    baselineCli,
    nodeFlags,
  };
}
