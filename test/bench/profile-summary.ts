/**
 * `node dist/test/bench/profile-summary.js <file.cpuprofile>... [--top N]`: the functions with
 * the most self time in V8 CPU profiles (as written by `node --cpu-prof`), and the same by
 * module, with idle time left out of the percentages.
 */
import { readFileSync } from "node:fs";
import { basename } from "node:path";

interface ProfileNode {
  readonly id: number;
  readonly callFrame: { readonly functionName: string; readonly url: string; readonly lineNumber: number };
  readonly hitCount?: number;
}

interface CpuProfile {
  readonly nodes: readonly ProfileNode[];
  readonly startTime: number;
  readonly endTime: number;
}

/** Where a function lives: a package, a project folder or Node's internals. */
function moduleOf(url: string, name: string): string {
  if (url === "") return name.startsWith("(") ? name : "(native)";
  const pkg = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(url);
  if (pkg) return pkg[1]!;
  const own = /\/dist\/([^/]+\/[^/]+)$/.exec(url);
  if (own) return own[1]!;
  if (url.startsWith("node:")) return url.split("/").slice(0, 2).join("/");
  return basename(url);
}

function summarize(file: string, top: number): void {
  const profile = JSON.parse(readFileSync(file, "utf8")) as CpuProfile;
  const byFunction = new Map<string, number>();
  const byModule = new Map<string, number>();
  let total = 0;
  for (const n of profile.nodes) {
    const hits = n.hitCount ?? 0;
    const { functionName, url, lineNumber } = n.callFrame;
    if (hits === 0 || functionName === "(idle)") continue;
    total += hits;
    const key = `${functionName || "(anonymous)"}  ${url ? `${moduleOf(url, functionName)}:${lineNumber + 1}` : ""}`;
    byFunction.set(key, (byFunction.get(key) ?? 0) + hits);
    const mod = moduleOf(url, functionName);
    byModule.set(mod, (byModule.get(mod) ?? 0) + hits);
  }
  const seconds = (profile.endTime - profile.startTime) / 1e6;
  process.stdout.write(`\n${file}\n  ${seconds.toFixed(1)} s profiled, ${total} busy samples\n`);
  const print = (title: string, map: Map<string, number>): void => {
    process.stdout.write(`  ${title}\n`);
    const rows = [...map.entries()].sort((a, b) => b[1] - a[1]).slice(0, top);
    for (const [key, hits] of rows) {
      process.stdout.write(`    ${((hits / total) * 100).toFixed(1).padStart(5)} %  ${key}\n`);
    }
  };
  print("by module (self time, % of busy)", byModule);
  print("by function (self time, % of busy)", byFunction);
}

const args = process.argv.slice(2);
const topAt = args.indexOf("--top");
const top = topAt >= 0 ? Number(args.splice(topAt, 2)[1]) : 25;
if (args.length === 0) {
  process.stderr.write("usage: profile-summary.js <file.cpuprofile>... [--top N]\n");
  process.exit(2);
}
for (const file of args) summarize(file, top);
