/**
 * Keeps README.md honest: the commands at the top, and the tables of error codes, tunnel frames
 * and codes, limits, SOCKS replies and environment variables, checked against the code itself.
 */
import assert from "node:assert/strict";
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { describe, it } from "node:test";
import { fileURLToPath } from "node:url";
import { HTTP_STATUS_FOR_ERROR } from "../../cloud/admin/http-status.js";
import { LIVE_EVENT } from "../../cloud/admin/live-feed.js";
import { RelayMetrics } from "../../cloud/admin/metrics.js";
import { relayEvents } from "../../cloud/events.js";
import { FTP_CHECK_CODE } from "../../cloud/ftp/check-codes.js";
import { LiveConnections } from "../../cloud/socks/connections.js";
import { SOCKS5_REPLY, SOCKS5_REPLY_FOR_ERROR } from "../../cloud/socks/reply.js";
import { AgentRegistry } from "../../cloud/tunnel/registry.js";
import { ERROR_CLASSES, type ErrorCode } from "../../shared/errors.js";
import {
  DEFAULT_LIMITS,
  FRAME_TYPE,
  GOAWAY_CODE,
  OPEN_CODE,
  RESET_CODE,
} from "../../shared/tunnel/constants.js";

/** The nearest folder above this file that holds package.json (the compiled test runs from dist/test/unit). */
function repoRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (;;) {
    if (existsSync(join(dir, "package.json"))) return dir;
    const parent = dirname(dir);
    if (parent === dir) throw new Error(`no package.json above ${fileURLToPath(import.meta.url)}`);
    dir = parent;
  }
}

const ROOT = repoRoot();
const README = readFileSync(join(ROOT, "README.md"), "utf8");

// ---- a small Markdown reader: headings and tables outside code fences --------------------------

interface Line {
  readonly text: string;
  readonly inFence: boolean;
}

interface Section {
  readonly level: number;
  readonly title: string;
  /** The lines under the heading, up to the next heading of the same or a higher level. */
  readonly lines: readonly Line[];
}

function readLines(md: string): Line[] {
  let inFence = false;
  return md.split("\n").map((text) => {
    if (text.startsWith("```")) {
      inFence = !inFence;
      return { text, inFence: true };
    }
    return { text, inFence };
  });
}

const LINES = readLines(README);

function sections(): Section[] {
  const headings: { index: number; level: number; title: string }[] = [];
  LINES.forEach((line, index) => {
    const m = line.inFence ? null : /^(#{1,6}) (.+)$/.exec(line.text);
    if (m) headings.push({ index, level: m[1]!.length, title: m[2]!.trim() });
  });
  return headings.map((h, i) => {
    const next = headings.slice(i + 1).find((n) => n.level <= h.level);
    return { level: h.level, title: h.title, lines: LINES.slice(h.index + 1, next?.index ?? LINES.length) };
  });
}

/** The one section whose title starts with `prefix`. */
function section(prefix: string): Section {
  const found = sections().filter((s) => s.title.startsWith(prefix));
  assert.equal(found.length, 1, `README needs exactly one section titled "${prefix}…"`);
  return found[0]!;
}

type Row = readonly string[];

/** Tables of a section, each a list of rows of trimmed cells; the header is row 0, separators dropped. */
function tables(s: Section): Row[][] {
  const out: Row[][] = [];
  let current: Row[] | null = null;
  for (const line of s.lines) {
    const text = line.text.trim();
    if (line.inFence || !text.startsWith("|")) {
      current = null;
      continue;
    }
    if (/^\|[-:| ]+\|$/.test(text)) continue;
    const row = text
      .slice(1, text.endsWith("|") ? -1 : undefined)
      .split("|")
      .map((c) => c.trim());
    if (current === null) out.push((current = []));
    current.push(row);
  }
  return out;
}

/** The table of a section whose header starts with `firstHeader`. */
function table(s: Section, firstHeader: string): Row[] {
  const found = tables(s).filter((t) => t[0]?.[0] === firstHeader);
  assert.equal(
    found.length,
    1,
    `section "${s.title}" needs one table whose first column is "${firstHeader}"`,
  );
  return found[0]!.slice(1);
}

/** The one row whose first cell is `first`. */
function rowOf(rows: readonly Row[], first: string, where: string): Row {
  const found = rows.filter((r) => r[0] === first);
  assert.equal(found.length, 1, `${where}: expected one row for ${first}, found ${found.length}`);
  return found[0]!;
}

const code = (s: string | number): string => `\`${s}\``;
const hex = (n: number): string => code(`0x${n.toString(16).padStart(2, "0")}`);

/** Every UNDERPASS_* name in a source file. */
function envNames(relativePath: string): string[] {
  const text = readFileSync(join(ROOT, relativePath), "utf8");
  return [...new Set(text.match(/UNDERPASS_[A-Z_]+/g) ?? [])].sort();
}

function sourceFiles(dir: string): string[] {
  return readdirSync(join(ROOT, dir), { withFileTypes: true }).flatMap((e) => {
    const path = join(dir, e.name);
    if (e.isDirectory()) return sourceFiles(path);
    return /\.(ts|mjs)$/.test(e.name) ? [path] : [];
  });
}

// ---- the checks ---------------------------------------------------------------------------------

describe("README.md", () => {
  it("opens with the title and, as its first code block, the demo and test-suite commands", () => {
    assert.equal(LINES[0]?.text, "# Underpass");
    const start = LINES.findIndex((l) => l.text.startsWith("```"));
    const end = LINES.findIndex((l, i) => i > start && l.text.startsWith("```"));
    assert.ok(start > 0 && end > start, "README needs a code block");
    const firstHeading = LINES.findIndex((l) => !l.inFence && l.text.startsWith("## "));
    assert.ok(start < firstHeading, "the commands come before the first section");
    const commands = LINES.slice(start + 1, end).map((l) => l.text.trim());
    assert.ok(
      commands[0]?.startsWith("npm install && npx underpass demo"),
      "first command: npm install && npx underpass demo",
    );
    assert.ok(commands[1]?.startsWith("bash .ci/run"), "second command: bash .ci/run");
    assert.equal(commands.length, 2, "the first code block holds exactly the two commands");
  });

  it("lists every error code with its class, HTTP status and SOCKS reply", () => {
    const rows = table(section("Errors"), "code");
    for (const cls of ERROR_CLASSES) {
      const { spec } = cls;
      const row = rowOf(rows, code(spec.code), "error table");
      assert.equal(row[1], code(cls.name), `${spec.code}: class`);
      assert.equal(
        row[2],
        String(HTTP_STATUS_FOR_ERROR[spec.code as ErrorCode]),
        `${spec.code}: HTTP status`,
      );
      assert.equal(row[3], hex(SOCKS5_REPLY_FOR_ERROR[spec.code as ErrorCode]), `${spec.code}: SOCKS reply`);
      assert.ok((row[4] ?? "").length > 0, `${spec.code}: meaning`);
    }
    assert.equal(rows.length, ERROR_CLASSES.length, "the error table has one row per class, no stale rows");
  });

  it("lists every FTP check code, and no other", () => {
    const rows = table(section("The FTP check"), "code");
    assert.deepEqual(rows.map((r) => r[0]).sort(), Object.keys(FTP_CHECK_CODE).map(code).sort());
    for (const r of rows) assert.ok((r[1] ?? "").length > 0, `${r[0]}: meaning`);
  });

  it("lists every live event type", () => {
    const listed = table(section("Live events"), "type")
      .flatMap((r) => (r[0] ?? "").split(","))
      .map((c) => c.trim());
    assert.deepEqual(listed.sort(), Object.values(LIVE_EVENT).map(code).sort());
  });

  it("names only error codes that exist", () => {
    const known = new Set<string>(ERROR_CLASSES.map((c) => c.spec.code));
    for (const name of new Set(README.match(/UP_ERR_[A-Z_]+/g) ?? [])) {
      assert.ok(known.has(name), `README names ${name}, which shared/errors.ts does not define`);
    }
  });

  it("describes every tunnel frame type with its number", () => {
    const rows = table(section("Frame types"), "type");
    for (const [name, value] of Object.entries(FRAME_TYPE)) {
      const row = rowOf(rows, hex(value), "frame table");
      assert.equal(row[1], code(name), `frame ${hex(value)} is ${name}`);
      assert.ok((row[4] ?? "").length > 0, `${name}: payload`);
    }
    assert.equal(rows.length, Object.keys(FRAME_TYPE).length, "one row per frame type, no stale rows");
  });

  it("lists the GOAWAY, RESET and OPEN_RESULT codes", () => {
    const codes = section("Codes");
    const sets = [
      ["GOAWAY", GOAWAY_CODE],
      ["RESET", RESET_CODE],
      ["OPEN_RESULT", OPEN_CODE],
    ] as const;
    for (const [header, values] of sets) {
      const rows = table(codes, header);
      for (const [name, value] of Object.entries(values)) {
        const row = rowOf(rows, hex(value), `${header} table`);
        assert.equal(row[1], code(name), `${header} ${hex(value)} is ${name}`);
      }
      assert.equal(rows.length, Object.keys(values).length, `${header}: one row per code, no stale rows`);
    }
  });

  it("gives the default tunnel limits", () => {
    const rows = table(section("Flow control, limits and timers"), "limit (`DEFAULT_LIMITS`)");
    for (const [name, value] of Object.entries(DEFAULT_LIMITS)) {
      const row = rowOf(rows, code(name), "limits table");
      assert.match(row[1] ?? "", new RegExp(`^${value}\\b`), `${name} is ${value}`);
    }
  });

  it("explains every SOCKS5 reply code", () => {
    const rows = table(section("SOCKS5"), "reply");
    for (const value of Object.values(SOCKS5_REPLY)) {
      const row = rowOf(rows, hex(value), "SOCKS reply table");
      assert.ok((row[2] ?? "").length > 0, `reply ${hex(value)}: when it is sent`);
    }
  });

  for (const [side, file] of [
    ["cloud", "cloud/config.ts"],
    ["agent", "agent/config.ts"],
  ] as const) {
    it(`documents every variable ${file} reads in the \`underpass ${side}\` table`, () => {
      const names = envNames(file);
      assert.ok(names.length >= 5, `${file} should name its UNDERPASS_* variables`);
      const rows = table(section(`\`underpass ${side}\``), "variable");
      for (const name of names) {
        const row = rowOf(rows, code(name), `underpass ${side} table`);
        assert.ok((row[1] ?? "").length > 0 && (row[2] ?? "").length > 0, `${name}: default and meaning`);
      }
    });
  }

  it("names only environment variables the code reads", () => {
    const files = [...["agent", "cloud", "shared", "cli"].flatMap(sourceFiles), "test/run.mjs", ".ci/run"];
    const known = new Set(files.flatMap(envNames));
    for (const name of new Set(README.match(/UNDERPASS_[A-Z_]+/g) ?? [])) {
      assert.ok(known.has(name), `README names ${name}, which no source file reads`);
    }
  });

  it("lists every metric the relay registers, with its type and labels, and no other", () => {
    const metrics = new RelayMetrics(
      { agents: new AgentRegistry(), connections: new LiveConnections(), events: relayEvents() },
      { processMetrics: false },
    );
    try {
      const rows = table(section("Metrics"), "metric").filter((r) => r[0]?.startsWith("`underpass_"));
      const registered = metrics.registry.getMetricsAsArray();
      for (const m of registered) {
        const row = rowOf(rows, code(m.name), "Metrics table");
        assert.equal(row[1], m.type, `${m.name}: type`);
        // label names are the quoted words outside parentheses; inside are their values
        const labels = [...(row[2] ?? "").replace(/\([^)]*\)/g, "").matchAll(/`([a-z_]+)`/g)].map(
          (x) => x[1],
        );
        const actual = (m as { labelNames?: readonly string[] }).labelNames ?? [];
        assert.deepEqual(labels.sort(), [...actual].sort(), `${m.name}: labels`);
      }
      assert.equal(rows.length, registered.length, "no row for a metric that does not exist");
    } finally {
      metrics.close();
    }
  });

  it("ends with the FTP modes and Performance sections", () => {
    const top = sections().filter((s) => s.level === 2);
    assert.deepEqual(
      top.slice(-2).map((s) => s.title),
      ["FTP modes", "Performance"],
    );
  });
});
