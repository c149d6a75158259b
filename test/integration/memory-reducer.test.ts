/**
 * The memory reducer in a real process: a child that loads it as `underpass cloud` and `agent`
 * do, makes buffers outlive young GCs as a busy tunnel's queued writes do (promoted, freed only
 * by a full GC), drops them and goes quiet. The reducer must collect them, with no allocation
 * to start a GC, and say so in its log; without the reducer V8 keeps them (the control child).
 *
 * The child gets V8's `gc` the way the reducer does (no --expose-gc on its command line, which
 * would hide a reducer that cannot get it) and promotes its buffers with two young GCs of its
 * own rather than by making garbage until V8 runs them: how many young GCs the garbage made,
 * and so which buffers were promoted, depended on the machine's load. The burst stays below V8's 64 MiB external-memory soft limit,
 * past which V8 starts a full GC by itself (the control child then lost its buffers).
 */
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { once } from "node:events";
import { dirname, join } from "node:path";
import { describe, it } from "node:test";
import { fileURLToPath } from "node:url";

const HEAP_TUNING = join(dirname(fileURLToPath(import.meta.url)), "..", "..", "cli", "heap-tuning.js");
const MIB = 1024 * 1024;

/** The child: `reduce` starts the reducer; prints its array buffer bytes as JSON lines until told to stop. */
const CHILD = `
const { startMemoryReducer, tuneHeapForTunnelTraffic } = await import(process.argv[1]);
const { setFlagsFromString } = await import("node:v8");
const { runInNewContext } = await import("node:vm");
const say = (msg, o) => process.stdout.write(JSON.stringify({ msg, ...o }) + "\\n");
const log = { debug: (o, msg) => say(msg, o), warn: (msg) => say("warn: " + msg) };
tuneHeapForTunnelTraffic();
if (process.argv[2] === "reduce") startMemoryReducer(log);
setFlagsFromString("--expose-gc");
const gc = runInNewContext("gc");
// 40 MiB in 64 KiB buffers, promoted to the old generation by two young GCs
let held = [];
for (let i = 0; i < 640; i++) held.push(Buffer.alloc(64 * 1024, i));
gc({ type: "minor" });
gc({ type: "minor" });
held = null;
say("dropped", { arrayBuffers: process.memoryUsage().arrayBuffers });
const t = setInterval(() => say("sample", { arrayBuffers: process.memoryUsage().arrayBuffers }), 250);
process.stdin.on("data", () => { clearInterval(t); process.exit(0); });
`;

interface Line {
  readonly msg: string;
  readonly arrayBuffers?: number;
  readonly arrayBuffersBefore?: number;
  readonly arrayBuffersAfter?: number;
}

/** Runs the child until `until` holds for a line (or `timeoutMs` passes); returns its lines. */
async function runChild(mode: "reduce" | "control", until: (l: Line) => boolean, timeoutMs: number) {
  const child = spawn(process.execPath, ["--input-type=module", "-e", CHILD, HEAP_TUNING, mode], {
    stdio: ["pipe", "pipe", "inherit"],
  });
  const exited = once(child, "exit");
  child.stdin.on("error", () => {}); // a child that is gone already: its exit says so
  const lines: Line[] = [];
  let buffered = "";
  try {
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(resolve, timeoutMs);
      child.stdout.on("data", (chunk: Buffer) => {
        buffered += chunk.toString("utf8");
        let nl = buffered.indexOf("\n");
        while (nl >= 0) {
          const l = JSON.parse(buffered.slice(0, nl)) as Line;
          buffered = buffered.slice(nl + 1);
          lines.push(l);
          if (until(l)) {
            clearTimeout(timer);
            resolve();
          }
          nl = buffered.indexOf("\n");
        }
      });
      child.once("exit", (code) => {
        clearTimeout(timer);
        reject(new Error(`child exited early (${code})`));
      });
    });
  } finally {
    if (child.exitCode === null && child.signalCode === null) child.stdin.end("stop\n");
    await exited;
  }
  return lines;
}

describe("memory reducer in a process", () => {
  it("collects the buffers a burst left once the process is quiet, and logs it", async () => {
    const lines = await runChild("reduce", (l) => l.arrayBuffersAfter !== undefined, 20_000);
    const dropped = lines.find((l) => l.msg === "dropped");
    assert.ok(
      dropped?.arrayBuffers !== undefined && dropped.arrayBuffers > 32 * MIB,
      "the burst left its buffers",
    );
    assert.deepEqual(
      lines.filter((l) => l.msg.startsWith("warn: ")),
      [],
      "the reducer got V8's collector",
    );
    const collected = lines.find((l) => l.arrayBuffersAfter !== undefined);
    assert.ok(collected, "the reducer collected within 20 s");
    assert.ok(
      collected.arrayBuffersBefore! - collected.arrayBuffersAfter! > 32 * MIB,
      JSON.stringify(collected),
    );
  });

  it("without the reducer the same buffers stay (the control)", async () => {
    // 4 s: the reducer collects after 2-3 quiet samples a second apart
    const lines = await runChild("control", () => false, 4_000);
    const samples = lines.filter((l) => l.msg === "sample");
    assert.ok(samples.length >= 4, `samples: ${samples.length}`);
    assert.ok(samples.at(-1)!.arrayBuffers! > 32 * MIB, JSON.stringify(samples.at(-1)));
  });
});
