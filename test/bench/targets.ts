/**
 * The targets Underpass is held to, as ratios of medians within one run (absolute numbers on
 * a shared machine move by ±20 %, ratios much less), and the check of each.
 */
import {
  distanceFigure,
  FAIRNESS_AGGREGATE,
  type FigureBook,
  FTP_DOWNLOAD,
  LATENCY_P50,
  LATENCY_P99,
  STREAM_COUNTS,
  scaleFigures,
  throughputFigure,
} from "./figures.js";
import type { PeerId } from "./peers/peer.js";

export type TargetStatus = "met" | "missed" | "not measured" | "info";

export interface TargetCheck {
  readonly target: string;
  readonly figure: string;
  readonly peer: PeerId;
  /** The peer compared against; null when the limit is absolute. */
  readonly reference: PeerId | null;
  readonly value: number | null;
  readonly referenceValue: number | null;
  /** value / referenceValue, or value itself for an absolute limit. */
  readonly ratio: number | null;
  readonly comparison: ">=" | "<=";
  readonly limit: number;
  readonly status: TargetStatus;
}

function check(
  book: FigureBook,
  target: string,
  figure: string,
  peer: PeerId,
  reference: PeerId | null,
  comparison: ">=" | "<=",
  limit: number,
  info = false,
  referenceFigure = figure,
): TargetCheck {
  const value = book.median(figure, peer);
  const referenceValue = reference === null ? null : book.median(referenceFigure, reference);
  let ratio: number | null = null;
  if (value !== null) {
    if (reference === null) ratio = value;
    else if (referenceValue !== null && referenceValue !== 0) ratio = value / referenceValue;
  }
  const ok = ratio !== null && (comparison === ">=" ? ratio >= limit : ratio <= limit);
  const status: TargetStatus = ratio === null ? "not measured" : info ? "info" : ok ? "met" : "missed";
  return { target, figure, peer, reference, value, referenceValue, ratio, comparison, limit, status };
}

const THROUGHPUT = (["c2p", "p2c"] as const).flatMap((d) => STREAM_COUNTS.map((n) => throughputFigure(d, n)));

/** The figure key of `--only` a target's figure belongs to. */
function figureKey(figure: string): string {
  if (figure.startsWith("scale.")) return "scale";
  if (figure.startsWith("distance.")) return "distance";
  if (figure === LATENCY_P99.id) return LATENCY_P50.id;
  return figure;
}

/** The targets of what this run set out to measure (its peers and figures). */
export function checkTargets(
  book: FigureBook,
  run: {
    readonly peers: readonly PeerId[];
    readonly figures: ReadonlySet<string>;
    readonly scaleCounts: readonly number[];
    readonly distanceRtts: readonly number[];
  },
): TargetCheck[] {
  const wanted = (t: TargetCheck): boolean =>
    run.peers.includes(t.peer) &&
    (t.reference === null || run.peers.includes(t.reference)) &&
    run.figures.has(figureKey(t.figure));
  return allTargets(book, run.scaleCounts, run.distanceRtts).filter(wanted);
}

/** The RTT, in ms, at which the distance targets hold; other RTTs are shown for information. */
export const DISTANCE_TARGET_RTT = 50;

/**
 * Distance: one Underpass stream ≥ 0.8× and 8 streams ≥ 0.9× one plain TCP stream through the
 * same delay link (the direct peer), at DISTANCE_TARGET_RTT; the other RTTs for information.
 */
function distanceTargets(book: FigureBook, rtts: readonly number[]): TargetCheck[] {
  const out: TargetCheck[] = [];
  for (const rtt of rtts) {
    for (const d of ["c2p", "p2c"] as const) {
      const ceiling = distanceFigure(rtt, d, 1).id;
      for (const n of STREAM_COUNTS) {
        const f = distanceFigure(rtt, d, n);
        const limit = n === 1 ? 0.8 : 0.9;
        for (const peer of ["underpass-ws", "underpass-wss"] as const) {
          const target = `${f.title}: ≥ ${limit}× one TCP stream through the link`;
          const info = rtt !== DISTANCE_TARGET_RTT;
          out.push(check(book, target, f.id, peer, "direct", ">=", limit, info, ceiling));
        }
      }
    }
  }
  return out;
}

function allTargets(
  book: FigureBook,
  scaleCounts: readonly number[],
  distanceRtts: readonly number[],
): TargetCheck[] {
  const out: TargetCheck[] = [...distanceTargets(book, distanceRtts)];
  for (const f of THROUGHPUT)
    out.push(check(book, `${f.title}: ws ≥ 1.0× microsocks`, f.id, "underpass-ws", "microsocks", ">=", 1));
  for (const f of THROUGHPUT)
    out.push(check(book, `${f.title}: wss ≥ 1.0× OpenSSH`, f.id, "underpass-wss", "ssh", ">=", 1));
  for (const peer of ["underpass-ws", "underpass-wss"] as const) {
    out.push(check(book, "latency p50 ≤ 1.5× microsocks", LATENCY_P50.id, peer, "microsocks", "<=", 1.5));
    out.push(
      check(
        book,
        "latency p99 below 40 ms (no Nagle/delayed-ACK stall)",
        LATENCY_P99.id,
        peer,
        null,
        "<=",
        40,
      ),
    );
  }
  for (const count of scaleCounts) {
    const f = scaleFigures(count);
    for (const peer of ["underpass-ws", "underpass-wss"] as const) {
      out.push(
        check(
          book,
          `${count} held streams: RSS growth ≤ 15 MiB per 1 000`,
          f.perThousand.id,
          peer,
          null,
          "<=",
          15,
        ),
      );
      out.push(
        check(book, `${count} held streams: no stream fails to open`, f.openErrors.id, peer, null, "<=", 0),
      );
      out.push(check(book, `${count} held streams: no echo fails`, f.echoErrors.id, peer, null, "<=", 0));
    }
  }
  for (const peer of ["underpass-ws", "underpass-wss"] as const) {
    out.push(
      check(book, "FTP passive download ≥ 1.0× microsocks", FTP_DOWNLOAD.id, peer, "microsocks", ">=", 1),
    );
  }
  for (const peer of ["microsocks", "underpass-ws", "underpass-wss"] as const) {
    const aggregate = book.median(FAIRNESS_AGGREGATE.id, peer);
    const eight = book.median(throughputFigure("p2c", 8).id, peer);
    const ratio = aggregate !== null && eight ? aggregate / eight : null;
    out.push({
      target: "fairness: 7 streams beside a 100 KiB/s reader vs the 8-stream figure",
      figure: FAIRNESS_AGGREGATE.id,
      peer,
      reference: peer,
      value: aggregate,
      referenceValue: eight,
      ratio,
      comparison: ">=",
      limit: 7 / 8,
      status: ratio === null ? "not measured" : "info",
    });
  }
  return out;
}

/** The quick run's gate: Underpass ws at least half of microsocks on every figure measured. */
export function quickGate(book: FigureBook, figureIds: readonly string[]): { ok: boolean; lines: string[] } {
  const lines: string[] = [];
  let ok = true;
  for (const id of figureIds) {
    const ws = book.median(id, "underpass-ws");
    const ms = book.median(id, "microsocks");
    if (ms === null) {
      ok = false;
      lines.push(
        `${id}: microsocks was not measured (missing? run scripts/install-bench-peers.sh): no ratio to check`,
      );
      continue;
    }
    if (ws === null) {
      ok = false;
      lines.push(`${id}: Underpass ws was not measured`);
      continue;
    }
    const ratio = ws / ms;
    const pass = ratio >= 0.5;
    ok &&= pass;
    lines.push(`${id}: Underpass ws / microsocks = ${ratio.toFixed(2)} (${pass ? "ok" : "BELOW 0.5"})`);
  }
  return { ok, lines };
}
