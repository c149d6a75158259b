/**
 * A reader of the Prometheus text exposition format (version 0.0.4), strict enough to fail a
 * test on a malformed scrape: every sample belongs to a family announced by `# TYPE` before
 * it, label values are unescaped, a series appears once. Histograms are read as their
 * `_bucket`, `_sum` and `_count` samples.
 */
import assert from "node:assert/strict";
import { ADMIN_TOKEN, type Stack } from "./stack.js";

export type MetricType = "counter" | "gauge" | "histogram" | "summary" | "untyped";

export interface Sample {
  /** The sample's own name (`x_bucket`, `x_count` for a histogram `x`). */
  readonly name: string;
  readonly labels: Readonly<Record<string, string>>;
  readonly value: number;
}

export interface Family {
  readonly name: string;
  readonly help: string;
  readonly type: MetricType;
  readonly samples: Sample[];
}

/** Sample-name suffixes a family of each type may carry. */
const SUFFIXES: Readonly<Record<MetricType, readonly string[]>> = {
  counter: [""],
  gauge: [""],
  untyped: [""],
  histogram: ["_bucket", "_sum", "_count"],
  summary: ["", "_sum", "_count"],
};

const NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;

export class Exposition {
  readonly families = new Map<string, Family>();

  /** The one sample `name` whose labels are exactly `labels`; undefined when there is none. */
  value(name: string, labels: Readonly<Record<string, string>> = {}): number | undefined {
    const wanted = seriesKey(name, labels);
    return this.samples(name).find((s) => seriesKey(s.name, s.labels) === wanted)?.value;
  }

  /** Every sample named `name` (a histogram's `_count`, a counter's own name). */
  samples(name: string): Sample[] {
    return [...this.families.values()].flatMap((f) => f.samples.filter((s) => s.name === name));
  }

  /** The sum of the samples named `name` whose labels include `where`. */
  sum(name: string, where: Readonly<Record<string, string>> = {}): number {
    return this.samples(name)
      .filter((s) => Object.entries(where).every(([k, v]) => s.labels[k] === v))
      .reduce((n, s) => n + s.value, 0);
  }

  /** The distinct values of `label` among the samples named `name`. */
  labelValues(name: string, label: string): string[] {
    return [...new Set(this.samples(name).flatMap((s) => s.labels[label] ?? []))].sort();
  }

  /** How many series the scrape holds in all. */
  get seriesCount(): number {
    return [...this.families.values()].reduce((n, f) => n + f.samples.length, 0);
  }
}

export function parseExposition(text: string): Exposition {
  const out = new Exposition();
  const help = new Map<string, string>();
  const seen = new Set<string>();
  for (const [i, line] of text.split("\n").entries()) {
    const where = `line ${i + 1}: ${line}`;
    if (line.trim() === "") continue;
    const meta = /^# (HELP|TYPE) (\S+)(?: (.*))?$/.exec(line);
    if (meta) {
      const [, kind, name = "", rest = ""] = meta;
      assert.match(name, NAME, where);
      if (kind === "HELP") help.set(name, unescapeText(rest, false));
      else {
        assert.ok(rest in SUFFIXES, `${where}: unknown type`);
        assert.ok(!out.families.has(name), `${where}: a second TYPE for ${name}`);
        out.families.set(name, { name, help: help.get(name) ?? "", type: rest as MetricType, samples: [] });
      }
      continue;
    }
    if (line.startsWith("#")) continue; // a comment
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)(?: -?\d+)?$/.exec(line);
    assert.ok(m, `${where}: not a sample`);
    const [, name = "", labelText = "", valueText = ""] = m;
    const family = familyOf(out, name);
    assert.ok(family, `${where}: no TYPE announced ${name} before it`);
    const value = parseValue(valueText);
    assert.ok(!Number.isNaN(value) || valueText.toLowerCase() === "nan", `${where}: bad value`);
    const labels = parseLabels(labelText, where);
    const key = seriesKey(name, labels);
    assert.ok(!seen.has(key), `${where}: the series appears twice`);
    seen.add(key);
    family.samples.push({ name, labels, value });
  }
  return out;
}

function familyOf(out: Exposition, sampleName: string): Family | undefined {
  for (const family of out.families.values()) {
    for (const suffix of SUFFIXES[family.type]) {
      if (sampleName === family.name + suffix) return family;
    }
  }
  return undefined;
}

/** A float as Prometheus reads it (Go's ParseFloat): NaN and Inf in any case, prom-client writes "Nan". */
function parseValue(text: string): number {
  const lower = text.toLowerCase();
  if (lower === "nan") return Number.NaN;
  if (lower === "+inf" || lower === "inf") return Number.POSITIVE_INFINITY;
  if (lower === "-inf") return Number.NEGATIVE_INFINITY;
  return /^[-+]?(\d+\.?\d*|\.\d+)(e[-+]?\d+)?$/i.test(text) ? Number(text) : Number.NaN;
}

/** `a="x",b="y\"z"` into {a: "x", b: 'y"z'}. */
function parseLabels(text: string, where: string): Record<string, string> {
  const labels: Record<string, string> = {};
  const re = /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"(,|$)/y;
  let at = 0;
  while (at < text.length) {
    re.lastIndex = at;
    const m = re.exec(text);
    assert.ok(m, `${where}: bad labels at "${text.slice(at)}"`);
    const [, name = "", value = ""] = m;
    assert.ok(!(name in labels), `${where}: label ${name} twice`);
    labels[name] = unescapeText(value, true);
    at = re.lastIndex;
  }
  return labels;
}

/** The format's escapes: `\\` and `\n` everywhere, `\"` in label values. */
function unescapeText(text: string, quoted: boolean): string {
  return text.replace(/\\(.)/g, (all, c: string) => {
    if (c === "n") return "\n";
    if (c === "\\" || (quoted && c === '"')) return c;
    return all;
  });
}

function seriesKey(name: string, labels: Readonly<Record<string, string>>): string {
  const sorted = Object.entries(labels).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  return `${name}${JSON.stringify(sorted)}`;
}

/** `GET /metrics` of the stack's admin API with the admin token: the text, once answered 200. */
export async function scrapeText(stack: Stack): Promise<string> {
  const res = await stack.relay.admin.inject({
    method: "GET",
    url: "/metrics",
    headers: { authorization: `Bearer ${ADMIN_TOKEN}` },
  });
  assert.equal(res.statusCode, 200, res.body);
  assert.match(String(res.headers["content-type"]), /^text\/plain; version=0\.0\.4/);
  return res.body;
}

/** The same, read. */
export async function scrape(stack: Stack): Promise<Exposition> {
  return parseExposition(await scrapeText(stack));
}
