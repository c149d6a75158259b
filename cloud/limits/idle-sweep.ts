/**
 * Carried connections that move no byte for the idle timeout are reset (RESET `TIMEOUT`): a
 * peer that stops talking, or was never going to, does not hold a descriptor on each side and a
 * stream for ever. The control connection of an `"ftp"` mapping has a timeout of its own, off
 * by default: it is silent for as long as a transfer on its data connection runs.
 *
 * One relay-wide timer looks at every connection's byte counts a few times per timeout; no timer
 * per connection (a relay holds tens of thousands).
 */
import type { LiveConnection, LiveConnections } from "../socks/connections.js";
import type { LimitHits } from "./limit-hits.js";
import { LIMIT } from "./limit-names.js";

export interface IdleSweepOptions {
  readonly connections: LiveConnections;
  /** For every carried connection but FTP control connections, in ms; 0 never. */
  readonly idleTimeoutMs: number;
  /** For the control connections of `"ftp"` mappings, in ms; 0 never. */
  readonly ftpIdleTimeoutMs: number;
  readonly hits: LimitHits;
}

interface Seen {
  /** Bytes both ways when last seen moving. */
  readonly bytes: number;
  /** Date.now() ms when they last moved. */
  readonly since: number;
}

/** Sweeps per timeout: a connection is reset between 1 and 1.25 timeouts after its last byte. */
const SWEEPS_PER_TIMEOUT = 4;

/** Start sweeping; returns what stops it. Nothing runs when both timeouts are off. */
export function sweepIdle(o: IdleSweepOptions): () => void {
  const timeouts = [o.idleTimeoutMs, o.ftpIdleTimeoutMs].filter((ms) => ms > 0);
  if (timeouts.length === 0) return () => {};
  const periodMs = Math.min(30_000, Math.max(100, Math.min(...timeouts) / SWEEPS_PER_TIMEOUT));
  const seen = new WeakMap<LiveConnection, Seen>();
  const timer = setInterval(() => {
    const now = Date.now();
    o.connections.each((c) => {
      const timeout = c.ftpControl ? o.ftpIdleTimeoutMs : o.idleTimeoutMs;
      if (timeout <= 0) return;
      const bytes = c.stream.bytesIn + c.stream.bytesOut;
      const last = seen.get(c);
      if (!last || last.bytes !== bytes) {
        seen.set(c, { bytes, since: now });
        return;
      }
      if (now - last.since < timeout) return;
      o.hits.hit(
        LIMIT.IDLE_TIMEOUT,
        c.id,
        timeout,
        `connection ${c.id} carried nothing for ${timeout} ms; reset`,
      );
      o.connections.expire(c, `idle for ${timeout} ms`);
    });
  }, periodMs);
  timer.unref();
  return () => clearInterval(timer);
}
