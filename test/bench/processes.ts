/**
 * The long-running processes of a bench run (proxies, relay, agent, target): each starts in its
 * own process group under a raised open-files limit, writes its output to a log file, and is
 * tracked so that the end of the run, an error or Ctrl-C stops it.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { closeSync, openSync, readFileSync } from "node:fs";
import { ChildRegistry, terminate } from "../helpers/clients.js";

/** Every process the bench starts; `stopAll()` ends whatever is still running. */
export const benchChildren = new ChildRegistry();

/** Open files a bench process may hold: 10 000 streams take two descriptors each on a proxy. */
export const FD_LIMIT = 200_000;

/** `bash -c` prefix that raises the open-files limit (to the hard limit when FD_LIMIT is refused). */
const RAISE_FD_LIMIT = `ulimit -n ${FD_LIMIT} 2>/dev/null || ulimit -n "$(ulimit -Hn)"; exec "$@"`;

export interface Daemon {
  readonly name: string;
  readonly pid: number;
  readonly logFile: string;
  readonly child: ChildProcess;
  /** Set once the process exited, e.g. "exit code 1". */
  exited(): string | null;
  /** The last lines of its log, for error messages. */
  tail(lines?: number): string;
  /** SIGTERM, then SIGKILL after `graceMs`. */
  stop(graceMs?: number): Promise<void>;
}

export interface DaemonOptions {
  readonly env?: NodeJS.ProcessEnv;
  /** stdin stays an open pipe (a child that exits when it closes); /dev/null otherwise. */
  readonly stdinPipe?: boolean;
}

/** Starts `cmd args` as `name`; its stdout and stderr go to `logFile`. */
export function startDaemon(
  name: string,
  cmd: string,
  args: readonly string[],
  logFile: string,
  options: DaemonOptions = {},
): Daemon {
  const fd = openSync(logFile, "a");
  let child: ChildProcess;
  try {
    child = spawn("bash", ["-c", RAISE_FD_LIMIT, "bash", cmd, ...args], {
      env: options.env ?? process.env,
      detached: true,
      stdio: [options.stdinPipe ? "pipe" : "ignore", fd, fd],
    });
  } finally {
    closeSync(fd);
  }
  benchChildren.track(child);
  let exitInfo: string | null = null;
  child.once("exit", (code, signal) => {
    exitInfo = signal === null ? `exit code ${code}` : `signal ${signal}`;
  });
  child.once("error", (err) => {
    exitInfo = `cannot start: ${err.message}`;
  });
  child.stdin?.on("error", () => {});
  const tail = (lines = 20): string => {
    try {
      return readFileSync(logFile, "utf8").trimEnd().split("\n").slice(-lines).join("\n");
    } catch {
      return "";
    }
  };
  return {
    name,
    pid: child.pid ?? -1,
    logFile,
    child,
    exited: () => exitInfo,
    tail,
    async stop(graceMs = 5_000) {
      await terminate(child, graceMs);
      benchChildren.forget(child);
    },
  };
}

/** Throws with the daemon's log when it has exited. */
export function assertRunning(d: Daemon): void {
  const how = d.exited();
  if (how !== null)
    throw new Error(`${d.name} exited (${how}); its log ${d.logFile} ends with:\n${d.tail()}`);
}

/** Resident set size of a process, in bytes (VmRSS of /proc/PID/status); 0 when it is gone. */
export function rssBytes(pid: number): number {
  try {
    const m = /^VmRSS:\s+(\d+)\s+kB$/m.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
    return m ? Number(m[1]) * 1024 : 0;
  } catch {
    return 0;
  }
}

/** Summed RSS of `pids`, in bytes. */
export function totalRss(pids: readonly number[]): number {
  let n = 0;
  for (const pid of pids) n += rssBytes(pid);
  return n;
}

/** Samples the summed RSS of `pids()` every `intervalMs` until stopped; reports the maximum. */
export function watchRss(pids: () => readonly number[], intervalMs = 100): { stop(): number } {
  let max = totalRss(pids());
  const timer = setInterval(() => {
    max = Math.max(max, totalRss(pids()));
  }, intervalMs);
  return {
    stop() {
      clearInterval(timer);
      return Math.max(max, totalRss(pids()));
    },
  };
}

/** Fields of /proc/PID/stat after the command name: [0] state, [1] ppid, ... [11] utime, [12] stime. */
function statFields(pid: number): string[] | null {
  try {
    const text = readFileSync(`/proc/${pid}/stat`, "utf8");
    return text.slice(text.lastIndexOf(")") + 2).split(" ");
  } catch {
    return null;
  }
}

/** Clock ticks per second of /proc/PID/stat times (USER_HZ, 100 on Linux). */
const USER_HZ = 100;

/** CPU time (user + system) used so far by `pids`, in seconds. */
export function cpuSeconds(pids: readonly number[]): number {
  let ticks = 0;
  for (const pid of pids) {
    const f = statFields(pid);
    if (f) ticks += Number(f[11]) + Number(f[12]);
  }
  return ticks / USER_HZ;
}
