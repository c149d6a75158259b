/**
 * The relay's Prometheus metrics (prom-client), on a registry of its own: several relays may
 * share a process, and none writes to prom-client's global registry. Counters follow the
 * relay's events (cloud/events.ts); gauges are read from the live tables when scraped. Labels
 * have bounded values only (a direction, a SOCKS reply code): nothing per connection, client
 * or host. The names are the README's (Admin API, `GET /metrics`).
 */
import { Counter, collectDefaultMetrics, Gauge, Histogram, Registry } from "prom-client";
import type { RelayEvents } from "../events.js";
import type { LiveConnections } from "../socks/connections.js";
import type { AgentRegistry } from "../tunnel/registry.js";

export interface MetricsSources {
  readonly agents: AgentRegistry;
  readonly connections: LiveConnections;
  readonly events: RelayEvents;
}

export interface MetricsOptions {
  /** prom-client's default process metrics (CPU, memory, event loop lag, GC) on this registry. */
  readonly processMetrics?: boolean;
}

/** Seconds; from a loopback round trip (~0.2 ms) to a dial that takes the whole default timeout. */
const LATENCY_BUCKETS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];

export class RelayMetrics {
  readonly registry = new Registry();
  readonly #stops: Array<() => void> = [];

  constructor(sources: MetricsSources, options: MetricsOptions = {}) {
    const { agents, connections, events } = sources;
    const registers = [this.registry];

    new Gauge({
      name: "underpass_tunnels",
      help: "Live agent tunnels.",
      registers,
      collect() {
        this.set(agents.all().length);
      },
    });
    const accepted = new Counter({
      name: "underpass_tunnels_accepted_total",
      help: "Tunnels that passed the hello.",
      registers,
    });
    const rejected = new Counter({
      name: "underpass_tunnels_rejected_total",
      help: "Tunnels refused at the hello (version, token, protocol).",
      registers,
    });
    new Gauge({
      name: "underpass_streams",
      help: "Open streams over all tunnels.",
      registers,
      collect() {
        this.set(agents.all().reduce((n, t) => n + t.session.streamCount, 0));
      },
    });
    new Gauge({
      name: "underpass_connections",
      help: "Live SOCKS connections.",
      registers,
      collect() {
        this.set(connections.size);
      },
    });
    const bytes = new ByteTotals(connections);
    new Counter({
      name: "underpass_bytes_total",
      help: "Bytes carried, by direction (up: client to premises).",
      labelNames: ["direction"] as const,
      registers,
      collect() {
        const { up, down } = bytes.totals();
        this.reset();
        this.inc({ direction: "up" }, up);
        this.inc({ direction: "down" }, down);
      },
    });
    const replies = new Counter({
      name: "underpass_socks_replies_total",
      help: "SOCKS5 replies sent, by reply code.",
      labelNames: ["reply"] as const,
      registers,
    });
    const opens = new Histogram({
      name: "underpass_socks_open_seconds",
      help: "From a complete SOCKS request to its success reply (the agent's dial included).",
      buckets: LATENCY_BUCKETS,
      registers,
    });
    const rtt = new Histogram({
      name: "underpass_tunnel_rtt_seconds",
      help: "Round-trip time of the relay's PINGs on its tunnels.",
      buckets: LATENCY_BUCKETS,
      registers,
    });

    this.#stops.push(
      events.tunnelConnected.subscribe(() => accepted.inc()),
      events.tunnelRejected.subscribe(() => rejected.inc()),
      events.tunnelRoundTrip.subscribe((m) => rtt.observe(m.rttMs / 1000)),
      events.socksRefused.subscribe((m) => replies.inc({ reply: m.reply })),
      events.socksOpened.subscribe((m) => {
        // an active-mode data connection is dialled by the relay: no SOCKS reply of its own
        if (m.grant === "ftp-active-data") return;
        replies.inc({ reply: 0 });
        if (m.openMs !== null) opens.observe(m.openMs / 1000);
      }),
      events.socksClosed.subscribe((m) => bytes.closed(m.bytesUp, m.bytesDown)),
    );
    if (options.processMetrics ?? true) collectDefaultMetrics({ register: this.registry });
  }

  /** The Prometheus text exposition format (version 0.0.4). */
  render(): Promise<string> {
    return this.registry.metrics();
  }

  get contentType(): string {
    return this.registry.contentType;
  }

  /** Stop following the relay's events. */
  close(): void {
    for (const stop of this.#stops.splice(0)) stop();
  }
}

/**
 * Bytes carried: those of closed connections plus what the live ones carried so far. A
 * connection cut off by the admin API leaves the live list a moment before its close is
 * counted; the total never goes down meanwhile (Prometheus would take a drop for a reset).
 */
class ByteTotals {
  readonly #connections: LiveConnections;
  #closedUp = 0;
  #closedDown = 0;
  #up = 0;
  #down = 0;

  constructor(connections: LiveConnections) {
    this.#connections = connections;
  }

  closed(up: number, down: number): void {
    this.#closedUp += up;
    this.#closedDown += down;
  }

  totals(): { up: number; down: number } {
    const live = this.#connections.liveBytes();
    this.#up = Math.max(this.#up, this.#closedUp + live.up);
    this.#down = Math.max(this.#down, this.#closedDown + live.down);
    return { up: this.#up, down: this.#down };
  }
}
