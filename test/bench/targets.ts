/**
 * The targets Underpass is held to, as ratios of medians within one run (absolute numbers on
 * a shared machine move by ±20 %, ratios much less), and the check of each.
 */
import {
  CONNECT_BURST,
  distanceFigure,
  FAIRNESS_AGGREGATE,
  FAIRNESS_MAX_RSS,
  type FigureBook,
  FTP_DOWNLOAD,
  LATENCY_P50,
  LATENCY_P99,
  REST_FIGURES,
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
  if (figure.startsWith("rest.")) return "rest";
  if (figure === FAIRNESS_MAX_RSS.id) return FAIRNESS_AGGREGATE.id;
  if (figure === LATENCY_P99.id || figure === CONNECT_BURST.id) return LATENCY_P50.id;
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

/**
 * Relay + agent RSS under the fairness load at most their RSS at rest + 64 MiB: the fairness
 * figure's max RSS (the instances the run's figures use) against the rest figures' (fresh ones).
 */
function fairnessMemory(book: FigureBook, peer: PeerId): TargetCheck {
  const max = book.median(FAIRNESS_MAX_RSS.id, peer);
  const relay = book.median(REST_FIGURES.relay.id, peer);
  const agent = book.median(REST_FIGURES.agent.id, peer);
  const rest = relay === null || agent === null ? null : relay + agent;
  const ratio = max === null || rest === null ? null : max - rest;
  return {
    target: "fairness load: relay + agent RSS ≤ at rest + 64 MiB (MiB above rest)",
    figure: FAIRNESS_MAX_RSS.id,
    peer,
    reference: null,
    value: max,
    referenceValue: rest,
    ratio,
    comparison: "<=",
    limit: 64,
    status: ratio === null ? "not measured" : ratio <= 64 ? "met" : "missed",
  };
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
  for (const peer of ["underpass-ws", "underpass-wss"] as const) {
    out.push(check(book, "agent RSS at rest ≤ 50 MiB", REST_FIGURES.agent.id, peer, null, "<=", 50));
    out.push(check(book, "relay RSS at rest ≤ 70 MiB", REST_FIGURES.relay.id, peer, null, "<=", 70));
    out.push(
      check(
        book,
        "after a load, relay + agent RSS back within 32 MiB of rest within 30 s",
        REST_FIGURES.afterLoad.id,
        peer,
        null,
        "<=",
        32,
      ),
    );
    out.push(fairnessMemory(book, peer));
  }
  for (const f of THROUGHPUT)
    out.push(check(book, `${f.title}: ws ≥ 1.0× microsocks`, f.id, "underpass-ws", "microsocks", ">=", 1));
  for (const f of THROUGHPUT)
    out.push(check(book, `${f.title}: ws ≥ 0.85× direct`, f.id, "underpass-ws", "direct", ">=", 0.85));
  for (const f of THROUGHPUT)
    out.push(check(book, `${f.title}: ws vs Dante`, f.id, "underpass-ws", "dante", ">=", 1, true));
  for (const f of THROUGHPUT)
    out.push(check(book, `${f.title}: wss ≥ 1.0× OpenSSH`, f.id, "underpass-wss", "ssh", ">=", 1));
  for (const peer of ["underpass-ws", "underpass-wss"] as const) {
    const target = "1 000 connections, 50 in parallel: ≥ 1.0× microsocks' rate";
    out.push(check(book, target, CONNECT_BURST.id, peer, "microsocks", ">=", 1));
  }
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
          `${count} held streams: RSS growth ≤ 12 MiB per 1 000`,
          f.perThousand.id,
          peer,
          null,
          "<=",
          12,
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
      status:
        ratio === null ? "not measured" : peer === "microsocks" ? "info" : ratio >= 7 / 8 ? "met" : "missed",
    });
  }
  return out;
}

/** Bounds of the quick run's gate, each measured within the run (never an absolute time). */
export const QUICK_BOUNDS = {
  /** Underpass ws throughput / microsocks', at least. */
  throughputRatio: 0.5,
  /** Underpass ws latency p50 / microsocks', at most. */
  latencyRatio: 3,
  /** The agent's RSS at rest, in MiB, at most. */
  agentRestMib: 80,
} as const;

/**
 * The quick run's gate: Underpass ws at least half of microsocks on every throughput figure
 * measured, its latency p50 at most 3× microsocks', and its agent at most 80 MiB at rest.
 */
export function quickGate(book: FigureBook, figureIds: readonly string[]): { ok: boolean; lines: string[] } {
  const lines: string[] = [];
  let ok = true;
  const ratioOf = (id: string): number | null => {
    const ws = book.median(id, "underpass-ws");
    const ms = book.median(id, "microsocks");
    if (ms === null) {
      lines.push(
        `${id}: microsocks was not measured (missing? run scripts/install-bench-peers.sh): no ratio to check`,
      );
      return null;
    }
    if (ws === null) {
      lines.push(`${id}: Underpass ws was not measured`);
      return null;
    }
    return ws / ms;
  };
  for (const id of figureIds) {
    const ratio = ratioOf(id);
    const pass = ratio !== null && ratio >= QUICK_BOUNDS.throughputRatio;
    ok &&= pass;
    if (ratio !== null)
      lines.push(`${id}: Underpass ws / microsocks = ${ratio.toFixed(2)} (${pass ? "ok" : "BELOW 0.5"})`);
  }
  const latency = ratioOf(LATENCY_P50.id);
  const latencyOk = latency !== null && latency <= QUICK_BOUNDS.latencyRatio;
  ok &&= latencyOk;
  if (latency !== null) {
    const verdict = latencyOk ? "ok" : `ABOVE ${QUICK_BOUNDS.latencyRatio}`;
    lines.push(`${LATENCY_P50.id}: Underpass ws / microsocks = ${latency.toFixed(2)} (${verdict})`);
  }
  const agent = book.median(REST_FIGURES.agent.id, "underpass-ws");
  const agentOk = agent !== null && agent <= QUICK_BOUNDS.agentRestMib;
  ok &&= agentOk;
  lines.push(
    agent === null
      ? `${REST_FIGURES.agent.id}: the agent's RSS at rest was not measured`
      : `${REST_FIGURES.agent.id}: ${agent.toFixed(1)} MiB (${agentOk ? "ok" : `ABOVE ${QUICK_BOUNDS.agentRestMib}`})`,
  );
  return { ok, lines };
}
