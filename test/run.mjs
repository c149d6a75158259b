// Runs every compiled test file with node's own test runner. Usage: node test/run.mjs [filter...]
// A filter keeps the files whose path contains it (e.g. `unit`, `e2e/ftp`).
import { spawnSync } from "node:child_process";
import { readdirSync, statSync } from "node:fs";
import { join } from "node:path";

function walk(dir) {
  const out = [];
  for (const name of readdirSync(dir)) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) {
      if (name !== "bench") out.push(...walk(p));
    } else if (name.endsWith(".test.js")) out.push(p);
  }
  return out;
}

const filters = process.argv.slice(2);
const files = walk("dist/test")
  .filter((f) => filters.length === 0 || filters.some((x) => f.includes(x)))
  .sort();
if (files.length === 0) {
  console.error("no test files matched", filters);
  process.exit(1);
}
const concurrency = process.env.UNDERPASS_TEST_CONCURRENCY ?? "2";
const r = spawnSync(
  process.execPath,
  [
    "--enable-source-maps",
    "--test",
    "--test-timeout=180000",
    `--test-concurrency=${concurrency}`,
    "--test-reporter=spec",
    ...files,
  ],
  { stdio: "inherit" },
);
process.exit(r.status ?? 1);
