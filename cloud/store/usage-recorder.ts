/**
 * When and from where each agent and client was last seen, kept in the store: noted from the
 * relay's events (a tunnel accepted or closed, a SOCKS client authenticated) and written in
 * batches, so a busy client costs one store write per period, not one per connection.
 */
import type { Logger } from "../../shared/logger.js";
import type { RelayEvents } from "../events.js";
import type { Store, UsageNote } from "./store.js";

export interface UsageRecorderOptions {
  readonly events: RelayEvents;
  readonly store: Store;
  readonly logger: Logger;
  /** How often notes are written, in ms (default 5 s). */
  readonly flushMs?: number;
}

export interface UsageRecorder {
  /** Writes what is pending now. */
  flush(): Promise<void>;
  /** Stops listening and writes what is pending. */
  close(): Promise<void>;
}

export function recordUsage(o: UsageRecorderOptions): UsageRecorder {
  let pending = new Map<string, UsageNote>();
  /** The address each live tunnel came from, for the note when it closes. */
  const tunnelAddress = new Map<string, string>();
  const note = (n: UsageNote): void => {
    pending.set(`${n.kind}:${n.id}`, n);
  };
  const at = (): string => new Date().toISOString();
  const stops = [
    o.events.tunnelConnected.subscribe((m) => {
      tunnelAddress.set(m.tunnelId, m.remote);
      note({ kind: "agent", id: m.agentId, at: at(), address: m.remote });
    }),
    o.events.tunnelDisconnected.subscribe((m) => {
      const address = tunnelAddress.get(m.tunnelId) ?? null;
      tunnelAddress.delete(m.tunnelId);
      note({ kind: "agent", id: m.agentId, at: at(), address });
    }),
    o.events.socksAuthenticated.subscribe((m) => {
      if (m.clientId !== null) note({ kind: "client", id: m.clientId, at: at(), address: m.remoteAddress });
    }),
  ];
  let writing: Promise<void> = Promise.resolve();
  const flush = (): Promise<void> => {
    if (pending.size === 0) return writing;
    const batch = [...pending.values()];
    pending = new Map();
    writing = writing
      .then(() => o.store.noteUsage(batch))
      .catch((err: unknown) =>
        o.logger.warn({ err }, "could not record when agents and clients were last seen"),
      );
    return writing;
  };
  const timer = setInterval(() => void flush(), o.flushMs ?? 5_000);
  timer.unref();
  return {
    flush,
    async close() {
      clearInterval(timer);
      for (const stop of stops) stop();
      await flush();
    },
  };
}
