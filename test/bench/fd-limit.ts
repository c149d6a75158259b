/**
 * The scale figure holds 10 000 connections, more than a common soft open-files limit allows
 * the client. `npm run bench` re-executes itself under `bash -c "ulimit -n ..."` when the soft
 * limit is low, so no one has to remember to raise it.
 */
import { spawn, spawnSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { FD_LIMIT } from "./processes.js";

/** Set in the re-executed process, so it never re-executes again. */
const REEXEC_MARK = "UNDERPASS_BENCH_FD_RAISED";
/** Below this soft limit the bench re-executes itself. */
const WANTED = 65_536;

/** Soft and hard limits of open files of this process (Max open files in /proc/self/limits). */
export function fdLimits(): { soft: number; hard: number } {
  try {
    const m = /^Max open files\s+(\d+|unlimited)\s+(\d+|unlimited)/m.exec(
      readFileSync("/proc/self/limits", "utf8"),
    );
    const n = (s: string): number => (s === "unlimited" ? Number.POSITIVE_INFINITY : Number(s));
    if (m) return { soft: n(m[1]!), hard: n(m[2]!) };
  } catch {
    // not Linux: assume it is enough and let the scale figure count failures
  }
  return { soft: Number.POSITIVE_INFINITY, hard: Number.POSITIVE_INFINITY };
}

/** True when a child shell may raise its limit above ours (a higher hard limit, or the privilege). */
function canRaise(): boolean {
  const { soft, hard } = fdLimits();
  if (hard > soft) return true;
  return spawnSync("bash", ["-c", `ulimit -n ${FD_LIMIT}`], { stdio: "ignore" }).status === 0;
}

/**
 * When the limit is low, runs this same script again under a raised limit, waits for it and
 * resolves with its exit code; resolves null when this process should go on by itself.
 */
export function reexecWithRaisedFdLimit(): Promise<number | null> {
  if (fdLimits().soft >= WANTED || process.env[REEXEC_MARK] || !canRaise()) return Promise.resolve(null);
  const raise = `ulimit -n ${FD_LIMIT} 2>/dev/null || ulimit -n "$(ulimit -Hn)"; exec "$@"`;
  const child = spawn(
    "bash",
    ["-c", raise, "bash", process.execPath, ...process.execArgv, ...process.argv.slice(1)],
    { stdio: "inherit", env: { ...process.env, [REEXEC_MARK]: "1" } },
  );
  // Ctrl-C reaches the child too (same process group): it stops its peers and exits; wait for it.
  const ignore = (): void => {};
  process.on("SIGINT", ignore);
  process.on("SIGTERM", () => child.kill("SIGTERM"));
  return new Promise((resolve) => {
    child.once("error", () => resolve(null));
    child.once("exit", (code, signal) => resolve(code ?? (signal === "SIGINT" ? 130 : 1)));
  });
}
