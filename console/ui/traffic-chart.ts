/**
 * The overview's traffic chart: bytes per second down (target → client) and up over the last
 * 15 minutes, drawn as SVG from the page's own samples. The y axis is scaled to the largest
 * value shown, rounded up to 1, 2 or 5 × 10^n bytes per second.
 */
import type { TrafficSample } from "../traffic-history.js";
import { svg } from "./dom.js";
import { rate } from "./format.js";

/** Height in CSS pixels; the width is the box's, so that text stays at its size (no scaling). */
const HEIGHT = 200;
/** Narrowest drawing, in CSS pixels. */
const MIN_WIDTH = 280;
const PAD = { left: 70, right: 12, top: 12, bottom: 24 } as const;

/** Steps of a round axis maximum, within one binary prefix (KiB, MiB, …). */
const STEPS = [1, 2, 5, 10, 20, 50, 100, 200, 500, 1024] as const;

/** A round axis maximum ≥ `v` bytes/s: 1, 2, 5, 10, 20, 50… KiB/s, MiB/s…; at least 1 KiB/s. */
export function niceMax(v: number): number {
  let unit = 1024;
  while (v > unit * 1024) unit *= 1024;
  for (const step of STEPS) if (step * unit >= v) return step * unit;
  return 1024 * unit;
}

function path(
  samples: readonly TrafficSample[],
  value: (s: TrafficSample) => number,
  x: (t: number) => number,
  y: (v: number) => number,
): string {
  return samples
    .map((s, i) => `${i === 0 ? "M" : "L"}${x(s.at).toFixed(1)},${y(value(s)).toFixed(1)}`)
    .join(" ");
}

export function trafficChart(
  samples: readonly TrafficSample[],
  windowMs: number,
  boxWidth: number,
  now = Date.now(),
): SVGSVGElement {
  const WIDTH = Math.max(MIN_WIDTH, Math.floor(boxWidth));
  const max = niceMax(Math.max(0, ...samples.map((s) => Math.max(s.upBps, s.downBps))));
  const plotW = WIDTH - PAD.left - PAD.right;
  const plotH = HEIGHT - PAD.top - PAD.bottom;
  const x = (t: number): number => PAD.left + plotW * Math.min(1, Math.max(0, 1 - (now - t) / windowMs));
  const y = (v: number): number => PAD.top + plotH * (1 - v / max);
  const last = samples[samples.length - 1];
  const label =
    last === undefined
      ? "Traffic over the last 15 minutes: no sample yet"
      : `Traffic over the last 15 minutes; now ${rate(last.downBps)} down, ${rate(last.upBps)} up; scale up to ${rate(max)}`;

  const grid = [0, 0.5, 1].map((f) => {
    const gy = y(max * f);
    return [
      svg("line", { class: "chart-grid", x1: PAD.left, x2: WIDTH - PAD.right, y1: gy, y2: gy }),
      svg("text", { class: "chart-label", x: PAD.left - 6, y: gy + 4, "text-anchor": "end" }, rate(max * f)),
    ];
  });
  const ticks = [15, 10, 5, 0].map((min) =>
    svg(
      "text",
      {
        class: "chart-label",
        x: x(now - min * 60_000),
        y: HEIGHT - 6,
        "text-anchor": min === 0 ? "end" : "middle",
      },
      min === 0 ? "now" : `−${min} min`,
    ),
  );
  const lines =
    samples.length === 0
      ? [
          svg(
            "text",
            {
              class: "chart-empty",
              x: PAD.left + plotW / 2,
              y: PAD.top + plotH / 2,
              "text-anchor": "middle",
            },
            "waiting for the first sample…",
          ),
        ]
      : [
          svg("path", {
            class: "chart-area-down",
            d: `${path(samples, (s) => s.downBps, x, y)} L${x(last!.at).toFixed(1)},${y(0)} L${x(samples[0]!.at).toFixed(1)},${y(0)} Z`,
          }),
          svg("path", { class: "chart-line-down", d: path(samples, (s) => s.downBps, x, y) }),
          svg("path", { class: "chart-line-up", d: path(samples, (s) => s.upBps, x, y) }),
        ];
  return svg(
    "svg",
    {
      class: "traffic-chart",
      viewBox: `0 0 ${WIDTH} ${HEIGHT}`,
      width: WIDTH,
      height: HEIGHT,
      role: "img",
      "aria-label": label,
      "data-testid": "traffic-chart",
      "data-samples": samples.length,
    },
    grid,
    ticks,
    lines,
  );
}
