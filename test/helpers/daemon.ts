/**
 * Daemons a test starts in the foreground on a free loopback port (proftpd, sshd): stdio goes
 * to a file, start-up waits for the daemon's banner on a real connection, a port that another
 * process took meanwhile is retried, and `stop()` ends the listener and every process it
 * forked — also sessions that left its process group (sshd's call setsid()).
 */
import { type ChildProcess, spawn } from "node:child_process";
import { closeSync, openSync, readdirSync, readFileSync } from "node:fs";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { Socket } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { connect as tlsConnect } from "node:tls";
import { type ChildRegistry, defaultRegistry, terminate } from "./clients.js";
import { freePort, waitFor } from "./ports.js";

/**
 * The first line a server sends on a fresh connection, within `timeoutMs`. With `tls` the
 * connection is TLS from the first byte (implicit FTPS) and the certificate is not checked.
 */
export function readBanner(port: number, host: string, timeoutMs: number, tls = false): Promise<string> {
  return new Promise((resolve, reject) => {
    const sock = tls
      ? tlsConnect({ port, host, rejectUnauthorized: false })
      : new Socket().connect(port, host);
    let buf = "";
    const done = (err: Error | undefined, line?: string) => {
      clearTimeout(timer);
      sock.removeAllListeners("data");
      if (err === undefined && line !== undefined) {
        sock.end("QUIT\r\n");
        sock.once("error", () => {});
        setTimeout(() => sock.destroy(), 1000).unref();
        resolve(line);
      } else {
        sock.destroy();
        reject(err);
      }
    };
    const timer = setTimeout(() => done(new Error(`no banner within ${timeoutMs} ms`)), timeoutMs);
    sock.once("error", (e) => done(e));
    sock.on("data", (d: Buffer) => {
      buf += d.toString("latin1");
      const nl = buf.indexOf("\n");
      if (nl >= 0) done(undefined, buf.slice(0, nl).trimEnd());
    });
  });
}

/** Calls `fn` with the pid of every live process; one that is gone meanwhile (`fn` throws) is skipped. */
export function forEachProcess(fn: (pid: number) => void): void {
  let entries: string[];
  try {
    entries = readdirSync("/proc");
  } catch {
    return;
  }
  for (const name of entries) {
    if (!/^\d+$/.test(name)) continue;
    try {
      fn(Number(name));
    } catch {
      // gone meanwhile
    }
  }
}

/** Parent pid of every live process, from /proc/<pid>/stat. */
function parentPids(): Map<number, number> {
  const parents = new Map<number, number>();
  forEachProcess((pid) => {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    // "pid (comm) state ppid ...": comm may hold spaces and parentheses, so split after the last ')'.
    parents.set(pid, Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]));
  });
  return parents;
}

/** `pid` and all its live descendants, parents before children. */
export function processTree(pid: number): number[] {
  const parents = parentPids();
  if (!parents.has(pid)) return [];
  const tree = [pid];
  for (let i = 0; i < tree.length; i++) {
    for (const [child, parent] of parents) if (parent === tree[i]) tree.push(child);
  }
  return tree;
}

/** SIGKILL to each pid; returns how many were still there. */
function killPids(pids: readonly number[]): number {
  let n = 0;
  for (const pid of pids) {
    try {
      process.kill(pid, "SIGKILL");
      n++;
    } catch {
      // already gone
    }
  }
  return n;
}

/** Listeners not yet stopped; their trees are killed when the process exits. */
const live = new Set<ChildProcess>();
process.once("exit", () => {
  for (const child of live) if (child.pid !== undefined) killPids(processTree(child.pid).reverse());
});

export interface DaemonSpec {
  /** For messages, e.g. "proftpd". */
  readonly name: string;
  /** Absolute path of the executable. */
  readonly command: string;
  /** The address it listens on. */
  readonly host: string;
  /** Writes the daemon's configuration for `port` and returns its arguments. */
  prepare(port: number): Promise<readonly string[]>;
  /** The first line the daemon sends on a connection, e.g. `/^220 /` or `/^SSH-2\.0-/`. */
  readonly banner: RegExp;
  /** Output that means the port was taken meanwhile: another port is tried. */
  readonly bindFailure: RegExp;
  /** Receives the daemon's stdout and stderr. */
  readonly stdioFile: string;
  /** The daemon's own logs, for failure messages (the stdio file is added to them). */
  readLogs?(): Promise<string>;
  /** How long to wait for the banner, in ms (default 15 s). */
  readonly startTimeoutMs?: number;
  /** Runs once the daemon is stopped (after a failed start too), e.g. to remove its temp dir. */
  cleanup?(): Promise<void>;
  readonly registry?: ChildRegistry;
}

export interface Daemon {
  readonly port: number;
  readonly child: ChildProcess;
  /** The listener and every process it forked that is still alive (empty after stop()). */
  processes(): number[];
  /** stdio and the daemon's own logs, for failure messages. */
  readLog(): Promise<string>;
  /** Kills the sessions and the listener (SIGTERM, SIGKILL after 3 s), then runs `cleanup`; idempotent. */
  stop(): Promise<void>;
}

/** Tries of a fresh port when another process took the one freePort() returned. */
const START_ATTEMPTS = 3;

/** Starts the daemon and resolves once its banner arrived; rejects with its output if it does not. */
export async function startDaemon(spec: DaemonSpec): Promise<Daemon> {
  const registry = spec.registry ?? defaultRegistry;
  const readLog = async () => {
    const stdio = await readFile(spec.stdioFile, "utf8").catch(() => "");
    const own = spec.readLogs ? await spec.readLogs() : "";
    return `--- ${spec.name} stdio\n${stdio.trimEnd()}${own ? `\n${own}` : ""}`;
  };
  let lastFailure = "";
  for (let attempt = 1; attempt <= START_ATTEMPTS; attempt++) {
    const port = await freePort(spec.host);
    const args = await spec.prepare(port);
    await writeFile(spec.stdioFile, "");
    const fd = openSync(spec.stdioFile, "a");
    let child: ChildProcess;
    try {
      child = spawn(spec.command, [...args], { detached: true, stdio: ["ignore", fd, fd] });
    } finally {
      closeSync(fd);
    }
    registry.track(child);
    live.add(child);
    let closing: Promise<void> | undefined;
    const stop = () =>
      (closing ??= (async () => {
        const pid = child.pid;
        // Sessions first, while the listener is still their parent and they can be found.
        if (pid !== undefined) killPids(processTree(pid).slice(1).reverse());
        await terminate(child, 3000);
        if (pid !== undefined) {
          await waitFor(() => killPids(processTree(pid).reverse()) === 0, {
            timeoutMs: 3000,
            intervalMs: 20,
            what: `the processes of ${spec.name} to end`,
          }).catch(() => {});
        }
        live.delete(child);
        registry.forget(child);
      })());
    const stopAndClean = async () => {
      await stop();
      await spec.cleanup?.();
    };

    let exitInfo: string | undefined;
    child.once("exit", (code, signal) => {
      exitInfo = signal === null ? `exit code ${code}` : `signal ${signal}`;
    });
    const spawnError = new Promise<never>((_, reject) => child.once("error", reject));
    spawnError.catch(() => {});
    try {
      const outcome = await Promise.race([
        spawnError,
        waitFor(
          // A truthy { exited } ends the polling at once when the daemon dies.
          async () =>
            exitInfo !== undefined
              ? { exited: exitInfo }
              : { banner: await readBanner(port, spec.host, 1000) },
          {
            timeoutMs: spec.startTimeoutMs ?? 15_000,
            intervalMs: 20,
            what: `${spec.name}'s banner on ${spec.host}:${port}`,
          },
        ),
      ]);
      if ("exited" in outcome)
        throw new Error(`${spec.name} exited before it accepted connections (${outcome.exited})`);
      if (!spec.banner.test(outcome.banner)) throw new Error(`unexpected banner "${outcome.banner}"`);
    } catch (err) {
      await stop();
      const log = await readLog();
      lastFailure = `${err instanceof Error ? err.message : String(err)}\n${log}`;
      if (spec.bindFailure.test(log) && attempt < START_ATTEMPTS) continue;
      break;
    }
    return {
      port,
      child,
      processes: () => (child.pid === undefined ? [] : processTree(child.pid)),
      readLog,
      stop: stopAndClean,
    };
  }
  await spec.cleanup?.();
  throw new Error(`${spec.name} did not start (${spec.command}): ${lastFailure}`);
}

/** What a server helper hands on of its daemon: its logs, its processes and `close()` (= `stop()`). */
export function daemonControls(
  d: Daemon,
): Pick<Daemon, "readLog" | "processes"> & { close(): Promise<void> } {
  return { readLog: d.readLog, processes: d.processes, close: d.stop };
}

/**
 * Runs `start` with a fresh temp dir (`<tmpdir>/<prefix>XXXXXX`) and removes the dir if it
 * throws; on success the dir belongs to what `start` returned (a daemon's `cleanup`).
 */
export async function inTempDir<T>(prefix: string, start: (dir: string) => Promise<T>): Promise<T> {
  const dir = await mkdtemp(join(tmpdir(), prefix));
  try {
    return await start(dir);
  } catch (err) {
    await rm(dir, { recursive: true, force: true });
    throw err;
  }
}
