/** results.json and results.md of a run. */
import { mkdir, writeFile } from "node:fs/promises";
import { join } from "node:path";
import type { FigureBook, FigureRecord } from "./figures.js";
import type { MachineInfo } from "./machine.js";
import type { BenchOptions } from "./options.js";
import { PEER_IDS, PEER_LABEL, type PeerId } from "./peers/peer.js";
import { formatSummary } from "./stats.js";
import type { TargetCheck } from "./targets.js";

export interface PeerStatus {
  readonly measured: boolean;
  /** Why a peer was skipped or failed to start. */
  readonly reason?: string;
}

export interface RunReport {
  readonly machine: MachineInfo;
  readonly options: BenchOptions;
  readonly peers: Readonly<Partial<Record<PeerId, PeerStatus>>>;
  readonly book: FigureBook;
  readonly targets: readonly TargetCheck[];
  readonly durationSeconds: number;
}

function toJson(r: RunReport): unknown {
  const figures: Record<string, unknown> = {};
  for (const f of r.book.measured()) {
    const peers: Record<string, unknown> = {};
    for (const [peer, p] of Object.entries(f.peers)) {
      if (!p) continue;
      peers[peer] = {
        median: p.summary?.median ?? null,
        min: p.summary?.min ?? null,
        max: p.summary?.max ?? null,
        samples: p.samples,
        ...(p.errors.length ? { errors: p.errors } : {}),
      };
    }
    figures[f.id] = { title: f.title, unit: f.unit, higherIsBetter: f.higherIsBetter, peers };
  }
  const { figures: selected, ...options } = r.options;
  return {
    schema: "underpass-bench/1",
    machine: r.machine,
    options: { ...options, figures: [...selected] },
    durationSeconds: Math.round(r.durationSeconds),
    peers: r.peers,
    figures,
    targets: r.targets,
  };
}

/** Sections of results.md: a title and the figure ids (or an id prefix ending in "."). */
const SECTIONS: ReadonlyArray<readonly [string, readonly string[]]> = [
  ["Throughput (MiB/s, higher is better)", ["throughput."]],
  [
    "CPU time of the proxy's processes per GiB moved (lower is better; not the harness, not the target)",
    ["cpu."],
  ],
  ["Latency (ms, lower is better)", ["latency."]],
  ["FTP passive download, 256 MiB file (MiB/s)", ["ftp."]],
  ["Fairness: one reader throttled to 100 KiB/s beside 7 full-speed streams", ["fairness."]],
  ["Scale: idle streams held at once, then one echo each", ["scale."]],
  ["Memory at rest and after a load (MiB)", ["rest."]],
  [
    "Distance: a delay link on the tunnel hop only; direct is one TCP stream through the same link (MiB/s)",
    ["distance."],
  ],
];

function sectionFigures(book: FigureBook, prefixes: readonly string[]): FigureRecord[] {
  return book.measured().filter((f) => prefixes.some((p) => f.id.startsWith(p)));
}

function table(figs: readonly FigureRecord[]): string[] {
  const peers = PEER_IDS.filter((p) => figs.some((f) => f.peers[p] !== undefined));
  if (peers.length === 0) return [];
  const lines = [
    `| figure | unit | ${peers.map((p) => PEER_LABEL[p]).join(" | ")} |`,
    `|---|---|${peers.map(() => "---:").join("|")}|`,
  ];
  for (const f of figs) {
    const cells = peers.map((p) => {
      const pf = f.peers[p];
      if (!pf) return "";
      const text = formatSummary(pf.summary, f.digits);
      return pf.errors.length ? `${text} ⚠${pf.errors.length}` : text;
    });
    lines.push(`| ${f.title} | ${f.unit} | ${cells.join(" | ")} |`);
  }
  return lines;
}

function fmt(n: number | null, digits = 2): string {
  return n === null ? "—" : n.toFixed(digits);
}

function targetTable(targets: readonly TargetCheck[]): string[] {
  const lines = [
    "| target | peer | value | against | ratio | limit | status |",
    "|---|---|---:|---|---:|---:|---|",
  ];
  for (const t of targets) {
    const against = t.reference === null ? "absolute" : `${PEER_LABEL[t.reference]} ${fmt(t.referenceValue)}`;
    const mark = t.status === "met" ? "✅ met" : t.status === "missed" ? "❌ missed" : t.status;
    lines.push(
      `| ${t.target} | ${PEER_LABEL[t.peer]} | ${fmt(t.value)} | ${against} | ${fmt(t.ratio)} | ${t.comparison} ${t.limit} | ${mark} |`,
    );
  }
  return lines;
}

function markdown(r: RunReport): string {
  const m = r.machine;
  const o = r.options;
  const out = [
    "# Underpass benchmark",
    "",
    "All peers in one run, on loopback, through the same client. Each cell is the median " +
      `(min–max) over ${o.reps} repetition${o.reps === 1 ? "" : "s"}; ⚠N marks N failed repetitions ` +
      "(see results.json). Ratios in the targets table are ratios of medians within this run.",
    "",
    "| machine | |",
    "|---|---|",
    `| CPU | ${m.cpu} |`,
    `| cores | ${m.cores} |`,
    `| memory | ${m.memoryGiB} GiB |`,
    `| Node.js | ${m.node} |`,
    `| kernel | ${m.kernel} |`,
    `| date | ${m.date} |`,
    `| commit | ${m.commit} |`,
    `| load average at start | ${m.loadAverageAtStart.join(", ")} |`,
    `| peers | ${Object.values(m.tools).join("; ")} |`,
    `| run | ${(o.sizeBytes / 2 ** 20).toFixed(0)} MiB per throughput figure, ${o.latencyRounds} latency rounds, ` +
      `scale ${o.scaleCounts.join(" and ")}, FTP ${(o.ftpBytes / 2 ** 20).toFixed(0)} MiB; ${Math.round(r.durationSeconds)} s |`,
    "",
  ];
  for (const [title, prefixes] of SECTIONS) {
    const rows = table(sectionFigures(r.book, prefixes));
    if (rows.length === 0) continue;
    out.push(`## ${title}`, "", ...rows, "");
  }
  out.push("## Targets", "", ...targetTable(r.targets), "");
  const skipped = Object.entries(r.peers).filter(([, s]) => s && !s.measured);
  if (skipped.length) {
    out.push("## Peers not measured", "");
    for (const [peer, s] of skipped) out.push(`- ${PEER_LABEL[peer as PeerId]}: ${s?.reason ?? "skipped"}`);
    out.push("");
  }
  return out.join("\n");
}

/** Writes results.json and results.md into `dir`; returns their paths. */
export async function writeReport(dir: string, r: RunReport): Promise<{ json: string; md: string }> {
  await mkdir(dir, { recursive: true });
  const json = join(dir, "results.json");
  const md = join(dir, "results.md");
  await writeFile(json, `${JSON.stringify(toJson(r), null, 2)}\n`);
  await writeFile(md, markdown(r));
  return { json, md };
}
