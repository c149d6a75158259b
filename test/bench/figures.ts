/**
 * The figures a run measures and the record of their samples. Every figure is one number per
 * peer per repetition; the report shows it as median (min–max).
 */
import type { PeerId } from "./peers/peer.js";
import { type Summary, summarize } from "./stats.js";

export interface FigureInfo {
  readonly id: string;
  readonly title: string;
  readonly unit: string;
  /** Decimals shown in tables. */
  readonly digits: number;
  readonly higherIsBetter: boolean;
}

export interface PeerFigure {
  readonly samples: number[];
  readonly errors: string[];
  summary: Summary | null;
}

export interface FigureRecord extends FigureInfo {
  readonly peers: Partial<Record<PeerId, PeerFigure>>;
}

export type TransferDirection = "c2p" | "p2c";

/** Streams of the throughput figures. */
export const STREAM_COUNTS = [1, 8] as const;

export function throughputFigure(direction: TransferDirection, streams: number): FigureInfo {
  const way = direction === "c2p" ? "cloud→premises" : "premises→cloud";
  return {
    id: `throughput.${direction}.${streams}`,
    title: `throughput ${way}, ${streams} stream${streams === 1 ? "" : "s"}`,
    unit: "MiB/s",
    digits: 0,
    higherIsBetter: true,
  };
}

/** Round-trip times of the distance scenario, in ms (`--distance-rtts`). */
export const DISTANCE_RTTS = [25, 50, 100] as const;

/**
 * Throughput with a delay link of `rttMs` on the tunnel hop only (agent ↔ relay); for the
 * direct peer, one plain TCP stream through the same kind of link to the target: the ceiling.
 */
export function distanceFigure(rttMs: number, direction: TransferDirection, streams: number): FigureInfo {
  const t = throughputFigure(direction, streams);
  return {
    id: `distance.${rttMs}.${direction}.${streams}`,
    title: `${rttMs} ms RTT on the tunnel hop, ${t.title.replace("throughput ", "")}`,
    unit: "MiB/s",
    digits: 0,
    higherIsBetter: true,
  };
}

/** CPU time the proxy's processes spent on a throughput figure, per GiB moved. */
export function cpuFigure(direction: TransferDirection, streams: number): FigureInfo {
  const t = throughputFigure(direction, streams);
  return {
    id: `cpu.${direction}.${streams}`,
    title: `proxy CPU per GiB, ${t.title.replace("throughput ", "")}`,
    unit: "CPU s/GiB",
    digits: 2,
    higherIsBetter: false,
  };
}

export const LATENCY_P50: FigureInfo = {
  id: "latency.p50",
  title: "connect + SOCKS5 auth + 1-byte echo + close, p50",
  unit: "ms",
  digits: 3,
  higherIsBetter: false,
};
export const LATENCY_P99: FigureInfo = {
  ...LATENCY_P50,
  id: "latency.p99",
  title: LATENCY_P50.title.replace("p50", "p99"),
};

/**
 * The steps of a latency round, p50 of each over a repetition's rounds: each the time from the
 * step before (from the start of the round for the first). Where a peer spends its open; the
 * direct peer has only the TCP connect and the echo.
 */
export const LATENCY_STEPS = (
  [
    ["connected", "connect", "TCP connect to the proxy"],
    ["method", "greeting", "SOCKS5 greeting → method reply"],
    ["auth", "auth", "username/password → status"],
    ["reply", "request", "CONNECT → success reply (the proxy's dial included)"],
    ["echo", "echo", "1-byte echo through the proxy"],
  ] as const
).map(([mark, id, what]) => ({
  mark,
  name: id,
  figure: {
    id: `latency.step.${id}`,
    title: `latency step p50: ${what}`,
    unit: "ms",
    digits: 3,
    higherIsBetter: false,
  } satisfies FigureInfo,
}));

/** The connections of the burst, and how many are in flight at once. */
export const BURST = { connections: 1000, parallel: 50 } as const;

export const CONNECT_BURST: FigureInfo = {
  id: "latency.burst",
  title: `${BURST.connections} connections (connect + SOCKS5 + 1-byte echo + close), ${BURST.parallel} in parallel`,
  unit: "conn/s",
  digits: 0,
  higherIsBetter: true,
};

export const FTP_DOWNLOAD: FigureInfo = {
  id: "ftp.download",
  title: "FTP passive download with curl through SOCKS5",
  unit: "MiB/s",
  digits: 0,
  higherIsBetter: true,
};

export const FAIRNESS_AGGREGATE: FigureInfo = {
  id: "fairness.aggregate7",
  title: "fairness: 7 full-speed streams beside one 100 KiB/s reader, aggregate",
  unit: "MiB/s",
  digits: 0,
  higherIsBetter: true,
};
export const FAIRNESS_SLOW: FigureInfo = {
  id: "fairness.slow-reader",
  title: "fairness: the throttled reader's rate",
  unit: "KiB/s",
  digits: 0,
  higherIsBetter: true,
};
export const FAIRNESS_MAX_RSS: FigureInfo = {
  id: "fairness.max-rss",
  title: "fairness: max RSS of the proxy processes",
  unit: "MiB",
  digits: 1,
  higherIsBetter: false,
};

/** Memory of the relay and the agent at rest (started by the CLI, first tunnel up) and after a load. */
export const REST_FIGURES = {
  relay: {
    id: "rest.relay-rss",
    title: "relay RSS at rest (CLI, first tunnel up)",
    unit: "MiB",
    digits: 1,
    higherIsBetter: false,
  },
  agent: {
    id: "rest.agent-rss",
    title: "agent RSS at rest (CLI, first tunnel up)",
    unit: "MiB",
    digits: 1,
    higherIsBetter: false,
  },
  loadPeak: {
    id: "rest.load-peak",
    title: "relay + agent RSS above rest at the peak of a load (8 streams p2c)",
    unit: "MiB",
    digits: 1,
    higherIsBetter: false,
  },
  afterLoad: {
    id: "rest.after-load",
    title: "relay + agent RSS above rest once back within 32 MiB, or 30 s after the load",
    unit: "MiB",
    digits: 1,
    higherIsBetter: false,
  },
  recovery: {
    id: "rest.recovery-seconds",
    title: "time after the load until relay + agent RSS is within 32 MiB of rest (30 at most)",
    unit: "s",
    digits: 1,
    higherIsBetter: false,
  },
} as const satisfies Record<string, FigureInfo>;

/** The figures of one scale step (`streams` held at once). */
export function scaleFigures(streams: number): {
  openErrors: FigureInfo;
  echoErrors: FigureInfo;
  rssBefore: FigureInfo;
  rssHeld: FigureInfo;
  perThousand: FigureInfo;
  openRate: FigureInfo;
} {
  const at = (
    id: string,
    title: string,
    unit: string,
    digits: number,
    higherIsBetter = false,
  ): FigureInfo => ({
    id: `scale.${streams}.${id}`,
    title: `${streams} idle streams: ${title}`,
    unit,
    digits,
    higherIsBetter,
  });
  return {
    openErrors: at("open-errors", "streams that failed to open", "count", 0),
    echoErrors: at("echo-errors", "streams whose echo failed", "count", 0),
    rssBefore: at("rss-before", "RSS before", "MiB", 1),
    rssHeld: at("rss-held", "RSS while held", "MiB", 1),
    perThousand: at("rss-per-1000", "RSS growth per 1 000 streams", "MiB", 2),
    openRate: at("open-rate", "opening rate", "streams/s", 0, true),
  };
}

/** Samples and failures of every figure, by figure id then peer. */
export class FigureBook {
  readonly figures = new Map<string, FigureRecord>();

  #entry(info: FigureInfo, peer: PeerId): PeerFigure {
    let fig = this.figures.get(info.id);
    if (!fig) {
      fig = { ...info, peers: {} };
      this.figures.set(info.id, fig);
    }
    let p = fig.peers[peer];
    if (!p) {
      p = { samples: [], errors: [], summary: null };
      fig.peers[peer] = p;
    }
    return p;
  }

  /** The figures some peer has a sample or a failure of, in the book's order. */
  measured(): FigureRecord[] {
    return [...this.figures.values()].filter((f) => Object.keys(f.peers).length > 0);
  }

  /** Puts figures in the book, in this order, before their samples: the report's rows follow it. */
  declare(infos: readonly FigureInfo[]): void {
    for (const info of infos)
      if (!this.figures.has(info.id)) this.figures.set(info.id, { ...info, peers: {} });
  }

  record(info: FigureInfo, peer: PeerId, value: number): void {
    const p = this.#entry(info, peer);
    p.samples.push(value);
    p.summary = summarize(p.samples);
  }

  fail(info: FigureInfo, peer: PeerId, err: unknown): void {
    this.#entry(info, peer).errors.push(err instanceof Error ? err.message : String(err));
  }

  /** Median of a figure for a peer, or null when it has no sample. */
  median(id: string, peer: PeerId): number | null {
    return this.figures.get(id)?.peers[peer]?.summary?.median ?? null;
  }
}
