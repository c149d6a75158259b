/**
 * The layout's rules, read from the source: `shared/` imports no other room, `agent/` and
 * `cloud/` never import each other, `console/` talks only to the public API (it imports nothing
 * of the server), and every relative import names a file that exists.
 */
import assert from "node:assert/strict";
import { existsSync, readdirSync, readFileSync, statSync } from "node:fs";
import { dirname, join, relative, resolve } from "node:path";
import { describe, it } from "node:test";
import { fileURLToPath } from "node:url";

/** The repository root: the nearest folder above this file that holds package.json. */
function repositoryRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  while (!existsSync(join(dir, "package.json"))) {
    const up = dirname(dir);
    if (up === dir) throw new Error("no package.json above the test");
    dir = up;
  }
  return dir;
}

const ROOT = repositoryRoot();
const ROOMS = ["shared", "agent", "cloud", "cli", "console"] as const;
type Room = (typeof ROOMS)[number];

/** Which rooms each room may import from (besides itself and packages). */
const MAY_IMPORT: Readonly<Record<Room, readonly Room[]>> = {
  shared: [],
  agent: ["shared"],
  cloud: ["shared"],
  cli: ["shared", "agent", "cloud"],
  console: [],
};

function sourceFiles(dir: string): string[] {
  if (!existsSync(dir)) return [];
  const out: string[] = [];
  for (const name of readdirSync(dir)) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) {
      if (name !== "node_modules" && name !== "dist") out.push(...sourceFiles(p));
    } else if (/\.tsx?$/.test(name) && !name.endsWith(".d.ts")) out.push(p);
  }
  return out;
}

/** Every module specifier of `import … from`, `export … from`, `import("…")` and side-effect imports. */
function importSpecifiers(source: string): string[] {
  const text = source.replace(/\/\*[\s\S]*?\*\//g, "").replace(/^\s*\/\/.*$/gm, "");
  const out: string[] = [];
  const re = /(?:\bfrom\s*|\bimport\s*\(\s*|^\s*import\s+)["']([^"']+)["']/gm;
  for (let m = re.exec(text); m !== null; m = re.exec(text)) out.push(m[1]!);
  return out;
}

function roomOf(path: string): Room | null {
  const first = relative(ROOT, path).split(/[\\/]/)[0];
  return (ROOMS as readonly string[]).includes(first ?? "") ? (first as Room) : null;
}

interface Edge {
  readonly from: string;
  readonly to: string;
  readonly specifier: string;
}

function relativeImports(): Edge[] {
  const edges: Edge[] = [];
  for (const room of ROOMS) {
    for (const file of sourceFiles(join(ROOT, room))) {
      for (const specifier of importSpecifiers(readFileSync(file, "utf8"))) {
        if (!specifier.startsWith(".")) continue;
        edges.push({ from: file, to: resolve(dirname(file), specifier), specifier });
      }
    }
  }
  return edges;
}

/** The edges that break a rule, as sentences. */
function violations(edges: readonly Edge[]): string[] {
  const broken: string[] = [];
  for (const e of edges) {
    const from = roomOf(e.from)!;
    const to = roomOf(e.to);
    if (to === null) {
      broken.push(`${relative(ROOT, e.from)} imports ${e.specifier}, outside every room`);
    } else if (to !== from && !MAY_IMPORT[from].includes(to)) {
      broken.push(`${relative(ROOT, e.from)} (${from}/) imports ${e.specifier} (${to}/)`);
    }
  }
  return broken;
}

describe("import rules", () => {
  it("reads the specifiers of every import form", () => {
    const found = importSpecifiers(
      [
        'import { a } from "./a.js";',
        'import type { B } from "../b.js";',
        'export { c } from "./c.js";',
        'import "./side-effect.js";',
        'const d = await import("./d.js");',
        '// import { e } from "./commented.js";',
        '/* import { f } from "./block.js"; */',
      ].join("\n"),
    );
    assert.deepEqual(found, ["./a.js", "../b.js", "./c.js", "./side-effect.js", "./d.js"]);
  });

  it("finds the rooms' sources", () => {
    const edges = relativeImports();
    assert.ok(edges.length > 100, `expected many relative imports, found ${edges.length}`);
    for (const room of ["shared", "agent", "cloud", "cli"] as const) {
      assert.ok(sourceFiles(join(ROOT, room)).length > 0, `${room}/ has sources`);
    }
  });

  it("tells a broken rule", () => {
    const edge = (from: string, specifier: string): Edge => {
      const file = join(ROOT, from);
      return { from: file, to: resolve(dirname(file), specifier), specifier };
    };
    assert.equal(violations([edge("shared/errors.ts", "../cloud/socks/reply.js")]).length, 1);
    assert.equal(violations([edge("agent/policy.ts", "../cloud/relay.js")]).length, 1);
    assert.equal(violations([edge("cloud/relay.ts", "../agent/agent.js")]).length, 1);
    assert.equal(violations([edge("console/app.ts", "../cloud/relay.js")]).length, 1);
    assert.equal(violations([edge("cloud/relay.ts", "../test/helpers/stack.js")]).length, 1);
    assert.deepEqual(violations([edge("cli/main.ts", "../cloud/relay.js")]), []);
    assert.deepEqual(violations([edge("cloud/relay.ts", "../shared/errors.js")]), []);
  });

  it("lets each room import only the rooms below it", () => {
    assert.deepEqual(violations(relativeImports()), []);
  });

  it("names only files that exist", () => {
    const missing = relativeImports()
      .filter((e) => !existsSync(e.to.replace(/\.js$/, ".ts")) && !existsSync(e.to.replace(/\.js$/, ".tsx")))
      .filter((e) => !existsSync(e.to))
      .map((e) => `${relative(ROOT, e.from)}: ${e.specifier}`);
    assert.deepEqual(missing, []);
  });
});
