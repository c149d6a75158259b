/**
 * Ports and bounded polling for tests that run real servers. Nothing here sleeps for a fixed
 * time: every wait polls a condition and gives up at a deadline with a message that says what
 * it was waiting for.
 */
import { readFileSync } from "node:fs";
import { createServer, Socket } from "node:net";
import { setTimeout as delay } from "node:timers/promises";

/** An inclusive TCP port range, the shape `shared/net/port-range.ts` uses. */
export interface PortSpan {
  readonly start: number;
  readonly end: number;
}

/** Where `freePortRange` picks its base (inclusive), as the harness contract says. */
const RANGE_FLOOR = 20000;
const RANGE_CEILING = 60000;
/** Bases tried before `freePortRange` gives up. */
const RANGE_ATTEMPTS = 50;

/** Resolves once `port` could be bound on `host` (and was released again), false otherwise. */
function canBind(port: number, host: string): Promise<boolean> {
  return new Promise((resolve) => {
    const srv = createServer();
    srv.unref();
    srv.once("error", () => resolve(false));
    // exclusive: a real bind of our own, never a handle shared by a cluster primary.
    srv.listen({ port, host, exclusive: true }, () => srv.close(() => resolve(true)));
  });
}

/** A port the kernel says is free on `host` right now (listen on 0, read it, close). */
export function freePort(host = "127.0.0.1"): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.unref();
    srv.once("error", reject);
    srv.listen({ port: 0, host, exclusive: true }, () => {
      const addr = srv.address();
      if (addr === null || typeof addr === "string") {
        srv.close();
        reject(new Error(`freePort: no TCP address for ${host}`));
        return;
      }
      srv.close(() => resolve(addr.port));
    });
  });
}

/**
 * The kernel's ephemeral (outgoing) port range. Listening ranges placed outside it do not race
 * with the local ports of the tests' own outgoing connections.
 */
function ephemeralRange(): PortSpan | undefined {
  try {
    const [lo, hi] = readFileSync("/proc/sys/net/ipv4/ip_local_port_range", "utf8").trim().split(/\s+/);
    const start = Number(lo);
    const end = Number(hi);
    return Number.isInteger(start) && Number.isInteger(end) ? { start, end } : undefined;
  } catch {
    return undefined;
  }
}

/**
 * `count` consecutive ports that all bind on `host` right now, e.g. a passive range for vsftpd.
 * The base is random in 20000-60000 (below the kernel's ephemeral range when that leaves room);
 * a base where any port is taken is dropped and another one is tried.
 */
export async function freePortRange(count: number, host = "127.0.0.1"): Promise<PortSpan> {
  if (!Number.isInteger(count) || count < 1 || count > 1000) {
    throw new RangeError(`freePortRange: count ${count} is not in 1-1000`);
  }
  let ceiling = RANGE_CEILING;
  const eph = ephemeralRange();
  if (eph !== undefined && eph.start - RANGE_FLOOR >= 1000 + count)
    ceiling = Math.min(ceiling, eph.start - 1);
  const span = ceiling - RANGE_FLOOR + 1 - count;
  for (let attempt = 0; attempt < RANGE_ATTEMPTS; attempt++) {
    const start = RANGE_FLOOR + Math.floor(Math.random() * span);
    let ok = true;
    for (let p = start; p < start + count && ok; p++) ok = await canBind(p, host);
    if (ok) return { start, end: start + count - 1 };
  }
  throw new Error(
    `freePortRange: no ${count} consecutive free ports on ${host} after ${RANGE_ATTEMPTS} bases`,
  );
}

export interface WaitForOptions {
  /** Give up after this long, in ms. */
  timeoutMs?: number;
  /** Pause between two polls, in ms. */
  intervalMs?: number;
  /** What is awaited, for the error message ("vsftpd on 127.0.0.1:2121"); a function is called at timeout. */
  what?: string | (() => string);
}

/**
 * Polls `predicate` until it returns a truthy value (which is returned) or the deadline passes.
 * A predicate that throws counts as "not yet"; the last error is quoted when the wait fails.
 */
export async function waitFor<T>(
  predicate: () => T | Promise<T>,
  { timeoutMs = 10_000, intervalMs = 50, what = "a condition" }: WaitForOptions = {},
): Promise<NonNullable<T>> {
  const deadline = Date.now() + timeoutMs;
  let lastError: unknown;
  for (;;) {
    try {
      const value = await predicate();
      if (value) return value as NonNullable<T>;
    } catch (err) {
      lastError = err;
    }
    const left = deadline - Date.now();
    if (left <= 0) {
      const why = lastError === undefined ? "" : ` (last error: ${errorText(lastError)})`;
      throw new Error(
        `timed out after ${timeoutMs} ms waiting for ${typeof what === "function" ? what() : what}${why}`,
      );
    }
    await delay(Math.min(intervalMs, left));
  }
}

/** One TCP connect attempt, bounded by `timeoutMs`; resolves on connect, rejects otherwise. */
export function tryConnect(port: number, host: string, timeoutMs: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const sock = new Socket();
    const timer = setTimeout(() => {
      sock.destroy();
      reject(new Error(`connect to ${host}:${port} timed out after ${timeoutMs} ms`));
    }, timeoutMs);
    sock.once("connect", () => {
      clearTimeout(timer);
      sock.destroy();
      resolve();
    });
    sock.once("error", (err) => {
      clearTimeout(timer);
      sock.destroy();
      reject(err);
    });
    sock.connect(port, host);
  });
}

/**
 * Resolves once `host:port` accepts a TCP connection. Polls with a backoff from 10 ms to
 * 200 ms; rejects after `timeoutMs` with the last connect error.
 */
export async function waitForPort(port: number, host = "127.0.0.1", timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let pause = 10;
  let lastError: unknown;
  for (;;) {
    const left = deadline - Date.now();
    if (left <= 0) break;
    try {
      await tryConnect(port, host, Math.min(1000, left));
      return;
    } catch (err) {
      lastError = err;
    }
    const after = deadline - Date.now();
    if (after <= 0) break;
    await delay(Math.min(pause, after));
    pause = Math.min(pause * 2, 200);
  }
  throw new Error(
    `timed out after ${timeoutMs} ms waiting for ${host}:${port} to accept` +
      (lastError === undefined ? "" : ` (last error: ${errorText(lastError)})`),
  );
}

function errorText(err: unknown): string {
  if (err instanceof Error) {
    const code = (err as NodeJS.ErrnoException).code;
    return code === undefined ? err.message : `${code}: ${err.message}`;
  }
  return String(err);
}
