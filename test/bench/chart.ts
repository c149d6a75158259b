/**
 * throughput-latency.svg: grouped bars, one group per figure and one bar per peer, with the
 * min–max of the repetitions as a whisker. Two panels, throughput (MiB/s) and latency (ms),
 * since their units differ. Plain SVG, written by hand: no dependency.
 */
import { writeFile } from "node:fs/promises";
import { join } from "node:path";
import {
  distanceFigure,
  type FigureBook,
  FTP_DOWNLOAD,
  LATENCY_P50,
  LATENCY_P99,
  STREAM_COUNTS,
  throughputFigure,
} from "./figures.js";
import { PEER_IDS, PEER_LABEL, type PeerId } from "./peers/peer.js";

const COLOR: Readonly<Record<PeerId, string>> = {
  direct: "#9e9e9e",
  microsocks: "#f28e2b",
  dante: "#e15759",
  ssh: "#59a14f",
  "underpass-ws": "#4e79a7",
  "underpass-wss": "#76b7b2",
  "underpass-cluster": "#af7aa1",
  "baseline-ws": "#bab0ac",
  "baseline-wss": "#d7d2cf",
};

interface Group {
  readonly id: string;
  readonly label: string;
}

const THROUGHPUT_GROUPS: readonly Group[] = [
  ...(["c2p", "p2c"] as const).flatMap((d) =>
    STREAM_COUNTS.map((n) => ({
      id: throughputFigure(d, n).id,
      label: `${d === "c2p" ? "cloud→premises" : "premises→cloud"} ×${n}`,
    })),
  ),
  { id: FTP_DOWNLOAD.id, label: "FTP PASV (curl)" },
];
const LATENCY_GROUPS: readonly Group[] = [
  { id: LATENCY_P50.id, label: "p50" },
  { id: LATENCY_P99.id, label: "p99" },
];

const W = 1000;
const PANEL_H = 300;
const TOP = 70;
const LEFT = 70;
const RIGHT = 20;
const GAP = 90;

function esc(s: string): string {
  return s.replaceAll("&", "&amp;").replaceAll("<", "&lt;").replaceAll(">", "&gt;");
}

/** A "nice" upper bound for an axis: 1, 2 or 5 times a power of ten, at or above `max`. */
function niceMax(max: number): number {
  if (!(max > 0)) return 1;
  const p = 10 ** Math.floor(Math.log10(max));
  for (const m of [1, 2, 5, 10]) if (m * p >= max) return m * p;
  return 10 * p;
}

function panel(
  book: FigureBook,
  groups: readonly Group[],
  peers: readonly PeerId[],
  title: string,
  unit: string,
  y0: number,
): string[] {
  const out: string[] = [];
  const plotW = W - LEFT - RIGHT;
  const present = groups.filter((g) => peers.some((p) => book.figures.get(g.id)?.peers[p]?.summary));
  let max = 0;
  for (const g of present) {
    for (const p of peers) max = Math.max(max, book.figures.get(g.id)?.peers[p]?.summary?.max ?? 0);
  }
  const top = niceMax(max);
  const y = (v: number): number => y0 + PANEL_H - (v / top) * PANEL_H;
  out.push(`<text x="${LEFT}" y="${y0 - 12}" font-size="15" font-weight="bold">${esc(title)}</text>`);
  for (let i = 0; i <= 5; i++) {
    const v = (top * i) / 5;
    out.push(
      `<line x1="${LEFT}" x2="${W - RIGHT}" y1="${y(v)}" y2="${y(v)}" stroke="#e0e0e0"/>`,
      `<text x="${LEFT - 6}" y="${y(v) + 4}" font-size="11" text-anchor="end">${+v.toPrecision(3)}</text>`,
    );
  }
  out.push(
    `<text x="16" y="${y0 + PANEL_H / 2}" font-size="12" transform="rotate(-90 16 ${y0 + PANEL_H / 2})" text-anchor="middle">${esc(unit)}</text>`,
  );
  if (present.length === 0) return out;
  const groupW = plotW / present.length;
  const barW = Math.min(36, (groupW * 0.8) / peers.length);
  present.forEach((g, gi) => {
    const gx = LEFT + gi * groupW + (groupW - barW * peers.length) / 2;
    peers.forEach((p, pi) => {
      const s = book.figures.get(g.id)?.peers[p]?.summary;
      if (!s) return;
      const x = gx + pi * barW;
      const cx = x + barW / 2;
      out.push(
        `<rect x="${x.toFixed(1)}" y="${y(s.median).toFixed(1)}" width="${(barW - 3).toFixed(1)}" height="${(y0 + PANEL_H - y(s.median)).toFixed(1)}" fill="${COLOR[p]}"><title>${esc(`${PEER_LABEL[p]}: ${s.median.toFixed(2)} ${unit}`)}</title></rect>`,
      );
      if (s.max > s.min) {
        out.push(
          `<line x1="${(cx - 1.5).toFixed(1)}" x2="${(cx - 1.5).toFixed(1)}" y1="${y(s.min).toFixed(1)}" y2="${y(s.max).toFixed(1)}" stroke="#333"/>`,
        );
      }
      const label = s.median >= 100 ? s.median.toFixed(0) : s.median.toPrecision(2);
      out.push(
        `<text x="${(cx - 1.5).toFixed(1)}" y="${(y(s.max) - 4).toFixed(1)}" font-size="10" text-anchor="middle">${label}</text>`,
      );
    });
    out.push(
      `<text x="${(LEFT + gi * groupW + groupW / 2).toFixed(1)}" y="${y0 + PANEL_H + 18}" font-size="12" text-anchor="middle">${esc(g.label)}</text>`,
    );
  });
  return out;
}

/** Writes an SVG of `h` pixels: title, legend (a label per peer) and the panels; returns its path. */
async function writeSvg(
  path: string,
  h: number,
  title: string,
  peers: readonly PeerId[],
  label: (p: PeerId) => string,
  panels: readonly string[],
): Promise<string> {
  // entries as wide as their labels (about 7 px a character at 12 px), in rows that fit the width
  const legend: string[] = [];
  let x = LEFT;
  let row = 0;
  for (const p of peers) {
    const text = label(p);
    const advance = 16 + text.length * 7 + 14;
    if (x > LEFT && x + advance > W - 10) {
      x = LEFT;
      row++;
    }
    const y = 38 + row * 17;
    legend.push(
      `<rect x="${x}" y="${y}" width="12" height="12" fill="${COLOR[p]}"/><text x="${x + 16}" y="${y + 10}" font-size="12">${esc(text)}</text>`,
    );
    x += advance;
  }
  const svg = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${h}" viewBox="0 0 ${W} ${h}" font-family="sans-serif">`,
    `<rect width="${W}" height="${h}" fill="white"/>`,
    `<text x="${LEFT}" y="22" font-size="16" font-weight="bold">${esc(title)}</text>`,
    ...legend,
    ...panels,
    "</svg>",
    "",
  ].join("\n");
  await writeFile(path, svg);
  return path;
}

/** distance.svg: one panel per RTT, a group per direction and stream count; null without data. */
export async function writeDistanceChart(
  dir: string,
  book: FigureBook,
  rtts: readonly number[],
  subtitle: string,
): Promise<string | null> {
  const distance = [...book.figures.values()].filter((f) => f.id.startsWith("distance."));
  const peers = PEER_IDS.filter((p) => distance.some((f) => f.peers[p]?.summary));
  if (peers.length === 0) return null;
  const groupsOf = (rtt: number): Group[] =>
    (["c2p", "p2c"] as const).flatMap((d) =>
      STREAM_COUNTS.map((n) => ({
        id: distanceFigure(rtt, d, n).id,
        label: `${d === "c2p" ? "cloud→premises" : "premises→cloud"} ×${n}`,
      })),
    );
  const panels = rtts.flatMap((rtt, i) =>
    panel(
      book,
      groupsOf(rtt),
      peers,
      `${rtt} ms RTT on the tunnel hop (MiB/s, higher is better; whiskers: min–max)`,
      "MiB/s",
      TOP + 30 + i * (PANEL_H + GAP),
    ),
  );
  return writeSvg(
    join(dir, "distance.svg"),
    TOP + rtts.length * (PANEL_H + GAP) + 10,
    `Underpass at a distance — ${subtitle}`,
    peers,
    (p) => (p === "direct" ? "one TCP stream through the link" : PEER_LABEL[p]),
    panels,
  );
}

/** Writes the chart into `dir`; returns its path. */
export async function writeChart(dir: string, book: FigureBook, subtitle: string): Promise<string> {
  const peers = PEER_IDS.filter((p) => [...book.figures.values()].some((f) => f.peers[p]?.summary));
  const panels = [
    ...panel(
      book,
      THROUGHPUT_GROUPS,
      peers,
      "Throughput (MiB/s, higher is better; whiskers: min–max)",
      "MiB/s",
      TOP + 30,
    ),
    ...panel(
      book,
      LATENCY_GROUPS,
      peers,
      "Connect + SOCKS5 + 1-byte echo + close (ms, lower is better)",
      "ms",
      TOP + 30 + PANEL_H + GAP,
    ),
  ];
  return writeSvg(
    join(dir, "throughput-latency.svg"),
    TOP + PANEL_H + GAP + PANEL_H + 50,
    `Underpass benchmark — ${subtitle}`,
    peers,
    (p) => PEER_LABEL[p],
    panels,
  );
}
