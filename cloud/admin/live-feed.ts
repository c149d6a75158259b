/**
 * What `GET /v1/events` streams, made from the relay's events: agents up and down, connections
 * opened and closed (with bytes), denials and failed authentications, and every few seconds a
 * traffic sample (bytes per second and connections per location) — what a live console draws.
 * Nothing is built while nobody listens (`hub.hasSubscribers`).
 */

import type { RelayEvents } from "../events.js";
import type { LiveConnections } from "../socks/connections.js";
import type { EventHub } from "./event-hub.js";

/** Live event types; the console and scripts match on them. */
export const LIVE_EVENT = {
  /** An agent's tunnel passed the hello. */
  AGENT_UP: "agent.up",
  /** An agent's tunnel closed, with the reason. */
  AGENT_DOWN: "agent.down",
  CONNECTION_OPENED: "connection.opened",
  /** With bytes each way and duration. */
  CONNECTION_CLOSED: "connection.closed",
  /** No mapping covers what a client asked for. */
  DENIAL: "denial",
  /** RFC 1929 credentials that match no client. */
  AUTH_FAILED: "auth.failed",
  /** An admin change (published by the admin API). */
  CONFIG_CHANGED: "config.changed",
  /** Bytes per second each way and live connections, per location. */
  TRAFFIC: "traffic",
} as const;

export interface LiveFeedOptions {
  readonly events: RelayEvents;
  readonly hub: EventHub;
  readonly connections: LiveConnections;
  /** Traffic sample period, in ms (default 2 s). */
  readonly sampleMs?: number;
}

interface Totals {
  up: number;
  down: number;
}

/** Publishes the relay's events to the hub until the returned function is called. */
export function startLiveFeed(o: LiveFeedOptions): () => void {
  const { events, hub, connections } = o;
  const sampleMs = o.sampleMs ?? 2_000;
  /**
   * Bytes carried by the connections that closed, by location, ever: with what the live ones
   * carried so far, every byte the relay moved; a sample is how far that moved since the last
   * one. Nothing is kept per connection (a map of every live one cost ~100 B each, and a copy
   * of the whole list every period).
   */
  const closedTotal = new Map<string, Totals>();
  let lastTotal = new Map<string, Totals>();
  const publish = (type: string, data: unknown): void => {
    if (hub.hasSubscribers) hub.publish({ type, data });
  };
  const stops = [
    events.tunnelConnected.subscribe((m) =>
      publish(LIVE_EVENT.AGENT_UP, {
        agentId: m.agentId,
        agentName: m.agentName,
        location: m.location,
        remote: m.remote,
        tunnelId: m.tunnelId,
        version: m.agentVersion,
        hostName: m.hostName,
        instanceId: m.instanceId,
      }),
    ),
    events.tunnelDisconnected.subscribe((m) =>
      publish(LIVE_EVENT.AGENT_DOWN, {
        agentId: m.agentId,
        location: m.location,
        tunnelId: m.tunnelId,
        reason: m.reason,
        byPeer: m.byPeer,
      }),
    ),
    events.socksOpened.subscribe((m) =>
      publish(LIVE_EVENT.CONNECTION_OPENED, {
        connectionId: m.connectionId,
        grant: m.grant,
        clientId: m.clientId,
        clientName: m.clientName,
        remote: `${m.remoteAddress}:${m.remotePort}`,
        location: m.location,
        mappingId: m.mappingId,
        virtualHost: m.virtualHost,
        virtualPort: m.virtualPort,
        internalHost: m.internalHost,
        internalPort: m.internalPort,
        agentId: m.agentId,
      }),
    ),
    events.socksClosed.subscribe((m) => {
      // its bytes move from the live connections' sum to the closed ones': the next sample
      // counts only the part no sample has counted yet
      const t = closedTotal.get(m.location) ?? { up: 0, down: 0 };
      t.up += m.bytesUp;
      t.down += m.bytesDown;
      closedTotal.set(m.location, t);
      publish(LIVE_EVENT.CONNECTION_CLOSED, {
        connectionId: m.connectionId,
        location: m.location,
        mappingId: m.mappingId,
        bytesUp: m.bytesUp,
        bytesDown: m.bytesDown,
        durationMs: m.durationMs,
        error: m.error,
      });
    }),
    events.socksDenied.subscribe((m) =>
      publish(LIVE_EVENT.DENIAL, {
        command: m.command,
        clientId: m.clientId,
        clientName: m.clientName,
        remote: m.remoteAddress,
        location: m.location,
        host: m.host,
        port: m.port,
        nearest: m.nearest,
      }),
    ),
    events.socksAuthFailed.subscribe((m) =>
      publish(LIVE_EVENT.AUTH_FAILED, { username: m.username, remote: m.remoteAddress }),
    ),
  ];

  let last = Date.now();
  const timer = setInterval(() => {
    const now = Date.now();
    const seconds = Math.max(0.001, (now - last) / 1000);
    last = now;
    const total = new Map<string, Totals & { connections: number }>();
    for (const [location, closed] of closedTotal)
      total.set(location, { up: closed.up, down: closed.down, connections: 0 });
    connections.eachLiveBytes((location, up, down) => {
      const t = total.get(location) ?? { up: 0, down: 0, connections: 0 };
      t.up += up;
      t.down += down;
      t.connections++;
      total.set(location, t);
    });
    const perLocation = new Map<string, Totals & { connections: number }>();
    for (const [location, t] of total) {
      const before = lastTotal.get(location);
      const up = t.up - (before?.up ?? 0);
      const down = t.down - (before?.down ?? 0);
      if (t.connections > 0 || up > 0 || down > 0)
        perLocation.set(location, { up, down, connections: t.connections });
    }
    lastTotal = total;
    const locations = Object.fromEntries(
      [...perLocation].map(([location, t]) => [
        location,
        {
          upBps: Math.round(t.up / seconds),
          downBps: Math.round(t.down / seconds),
          connections: t.connections,
        },
      ]),
    );
    publish(LIVE_EVENT.TRAFFIC, {
      at: new Date(now).toISOString(),
      intervalMs: Math.round(seconds * 1000),
      locations,
    });
  }, sampleMs);
  timer.unref();

  return () => {
    clearInterval(timer);
    for (const stop of stops) stop();
  };
}
