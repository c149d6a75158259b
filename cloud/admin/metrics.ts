/**
 * The relay's Prometheus metrics (prom-client), on a registry of its own: several relays may
 * share a process, and none writes to prom-client's global registry. Counters and histograms
 * follow the relay's events (cloud/events.ts), one increment or observation per event; gauges
 * and bytes are read from the live tables when scraped. Labels have bounded values only (a
 * direction, a SOCKS reply code, an outcome, a location capped by location-labels.ts): nothing
 * per connection, client, username, host or error text. The names are the README's (Metrics).
 */

import { Counter, collectDefaultMetrics, Gauge, Histogram, Registry } from "prom-client";
import { GOAWAY_CODE } from "../../shared/tunnel/constants.js";
import { VERSION } from "../../shared/version.js";
import type { RelayEvents } from "../events.js";
import { LIMIT_NAMES } from "../limits/limit-names.js";
import type { LiveConnections } from "../socks/connections.js";
import type { AgentRegistry } from "../tunnel/registry.js";
import { add, type ByteCount, ByteTotals } from "./byte-totals.js";
import { LocationLabels, MAX_LOCATION_LABELS } from "./location-labels.js";

/** The registered agents' locations (the store): each gets its gauges, at 0 while none is connected. */
export interface AgentLocations {
  listAgents(): Promise<readonly { readonly location: string }[]>;
}

export interface MetricsSources {
  readonly agents: AgentRegistry;
  readonly connections: LiveConnections;
  readonly events: RelayEvents;
  readonly registered?: AgentLocations;
}

export interface MetricsOptions {
  /** prom-client's default process metrics (CPU, memory, event loop lag, GC) on this registry. */
  readonly processMetrics?: boolean;
  /** Distinct `location` label values before the rest count as "other" (default 1000). */
  readonly maxLocations?: number;
}

/** Seconds; from a loopback round trip (~0.2 ms) to a dial that takes the whole default timeout. */
const LATENCY_BUCKETS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];

/** Seconds; from a refused-at-once connection to an FTP session or a tunnel kept for a day. */
const DURATION_BUCKETS = [0.01, 0.1, 1, 10, 60, 300, 900, 3600, 4 * 3600, 24 * 3600];

export class RelayMetrics {
  readonly registry = new Registry();
  readonly #stops: Array<() => void> = [];
  readonly #locations: LocationLabels;
  readonly #registered: AgentLocations | undefined;

  constructor(sources: MetricsSources, options: MetricsOptions = {}) {
    const { agents, connections, events } = sources;
    const registers = [this.registry];
    const locations = new LocationLabels(options.maxLocations ?? MAX_LOCATION_LABELS);
    this.#locations = locations;
    this.#registered = sources.registered;

    // ---- which relay: an info metric, joined on the scrape's own target labels ------------
    // (Prometheus: "info" metrics rather than a label on every series, which would change every
    // series' identity when a relay's id changes and repeat the id in each one)
    new Gauge({
      name: "underpass_relay_info",
      help: "Always 1: the relay's id in the cluster and its version.",
      labelNames: ["relay_id", "version"] as const,
      registers,
      collect() {
        this.set({ relay_id: events.relayId, version: VERSION }, 1);
      },
    });

    // ---- tunnels and agents: gauges read from the registry when scraped --------------------
    new Gauge({
      name: "underpass_tunnels",
      help: "Live agent tunnels.",
      registers,
      collect() {
        this.set(agents.all().length);
      },
    });
    new Gauge({
      name: "underpass_location_tunnels",
      help: "Live agent tunnels, by location.",
      labelNames: ["location"] as const,
      registers,
      collect() {
        const tunnels = zeroByLocation(locations);
        for (const t of agents.all()) {
          const l = locations.of(t.location);
          tunnels.set(l, (tunnels.get(l) ?? 0) + 1);
        }
        setEach(this, tunnels);
      },
    });
    new Gauge({
      name: "underpass_agents_connected",
      help: "Agents with at least one live tunnel, by location; 0 for a location whose agents are all away.",
      labelNames: ["location"] as const,
      registers,
      collect() {
        const agentIds = new Map<string, Set<string>>();
        for (const t of agents.all()) {
          const l = locations.of(t.location);
          const ids = agentIds.get(l) ?? new Set<string>();
          agentIds.set(l, ids.add(t.agentId));
        }
        const counts = zeroByLocation(locations);
        for (const [l, ids] of agentIds) counts.set(l, ids.size);
        setEach(this, counts);
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
    const rtt = new Histogram({
      name: "underpass_tunnel_rtt_seconds",
      help: "Round-trip time of the relay's PINGs on its tunnels.",
      buckets: LATENCY_BUCKETS,
      registers,
    });
    /** Each live tunnel's latest round trip, in seconds, by tunnel id. */
    const latestRtt = new Map<string, number>();
    new Gauge({
      name: "underpass_tunnel_rtt_latest_seconds",
      help: "The latest PING round trip of the location's slowest live tunnel.",
      labelNames: ["location"] as const,
      registers,
      collect() {
        const slowest = new Map<string, number>();
        for (const t of agents.all()) {
          const seconds = latestRtt.get(t.id);
          if (seconds === undefined) continue;
          const l = locations.of(t.location);
          slowest.set(l, Math.max(slowest.get(l) ?? 0, seconds));
        }
        setEach(this, slowest);
      },
    });
    const dials = new Histogram({
      name: "underpass_agent_dial_seconds",
      help: "From an OPEN on a tunnel to its OPEN_RESULT: connect (the agent dials) or bind (it listens), ok or error.",
      labelNames: ["kind", "outcome"] as const,
      buckets: LATENCY_BUCKETS,
      registers,
    });

    // ---- SOCKS -------------------------------------------------------------------------------
    new Gauge({
      name: "underpass_connections",
      help: "Live SOCKS connections.",
      registers,
      collect() {
        this.set(connections.size);
      },
    });
    const total = new ByteTotals();
    const byLocation = new ByteTotals();
    /** The live connections' bytes so far, by location label and in all. */
    const liveBytes = (): { all: Map<string, ByteCount>; by: Map<string, ByteCount> } => {
      const all = new Map<string, ByteCount>();
      const by = new Map<string, ByteCount>();
      connections.eachLiveBytes((location, up, down) => {
        add(all, "", up, down);
        add(by, locations.of(location), up, down);
      });
      return { all, by };
    };
    new Counter({
      name: "underpass_bytes_total",
      help: "Bytes carried, by direction (up: client to premises).",
      labelNames: ["direction"] as const,
      registers,
      collect() {
        const t = total.totals(liveBytes().all).get("") ?? { up: 0, down: 0 };
        this.reset();
        this.inc({ direction: "up" }, t.up);
        this.inc({ direction: "down" }, t.down);
      },
    });
    new Counter({
      name: "underpass_location_bytes_total",
      help: "Bytes carried, by direction (up: client to premises) and location.",
      labelNames: ["direction", "location"] as const,
      registers,
      collect() {
        this.reset();
        for (const [location, t] of byLocation.totals(liveBytes().by)) {
          this.inc({ direction: "up", location }, t.up);
          this.inc({ direction: "down", location }, t.down);
        }
      },
    });
    const replies = new Counter({
      name: "underpass_socks_replies_total",
      help: "SOCKS5 replies sent, by reply code.",
      labelNames: ["reply"] as const,
      registers,
    });
    const requests = new Counter({
      name: "underpass_socks_requests_total",
      help: "SOCKS5 requests answered, by reply code (0 success) and the client's location.",
      labelNames: ["reply", "location"] as const,
      registers,
    });
    const handshakes = new Histogram({
      name: "underpass_socks_handshake_seconds",
      help: "From an accepted SOCKS connection to its complete request (greeting and authentication included).",
      buckets: LATENCY_BUCKETS,
      registers,
    });
    const opens = new Histogram({
      name: "underpass_socks_open_seconds",
      help: "From a complete SOCKS request to its success reply (the agent's dial included).",
      buckets: LATENCY_BUCKETS,
      registers,
    });
    const durations = new Histogram({
      name: "underpass_connection_duration_seconds",
      help: "How long a carried connection lasted, from its success reply to its close.",
      buckets: DURATION_BUCKETS,
      registers,
    });

    // ---- refused credentials and FTP's decisions ---------------------------------------------
    const authFailure = countedFromZero(
      this.registry,
      "underpass_auth_failures_total",
      "Refused credentials: socks (RFC 1929 username/password), admin (bearer token), agent (token at the hello).",
      "kind",
      ["socks", "admin", "agent"],
    );
    const rewrote = countedFromZero(
      this.registry,
      "underpass_ftp_passive_rewrites_total",
      "Passive replies of FTP-aware mappings: 227 rewritten to the relay's address, 229 whose port was let through.",
      "reply",
      ["227", "229"],
    );
    const dialledBack = countedFromZero(
      this.registry,
      "underpass_ftp_active_dials_total",
      "Active-mode data connections the relay dialled back to the client, by outcome.",
      "outcome",
      ["connected", "failed"],
    );
    const limitHits = countedFromZero(
      this.registry,
      "underpass_limit_hits_total",
      "Times a bound on what one peer can make the relay hold bit, by limit (README: Security).",
      "limit",
      LIMIT_NAMES,
    );
    const secondInstances = countedFromZero(
      this.registry,
      "underpass_agent_second_instances_total",
      "Tunnels from a second instance (agent process) of an agent already connected: admitted, or refused for a single-instance agent.",
      "outcome",
      ["admitted", "refused"],
    );
    const bounces = new Counter({
      name: "underpass_ftp_bounces_refused_total",
      help: "PORT/EPRT commands refused for naming an address other than the client's own (FTP bounce).",
      registers,
    });

    const answered = (reply: number, location: string): void => {
      replies.inc({ reply });
      requests.inc({ reply, location: locations.of(location) });
    };
    this.#stops.push(
      events.tunnelConnected.subscribe((m) => {
        accepted.inc();
        locations.of(m.location);
      }),
      events.tunnelRejected.subscribe((m) => {
        rejected.inc();
        if (m.goaway === GOAWAY_CODE.AUTH_FAILED) authFailure("agent");
      }),
      events.tunnelDisconnected.subscribe((m) => latestRtt.delete(m.tunnelId)),
      events.tunnelRoundTrip.subscribe((m) => {
        rtt.observe(m.rttMs / 1000);
        latestRtt.set(m.tunnelId, m.rttMs / 1000);
      }),
      events.tunnelOpenResult.subscribe((m) =>
        dials.observe({ kind: m.kind, outcome: m.code === null ? "ok" : "error" }, m.openMs / 1000),
      ),
      events.socksAuthFailed.subscribe(() => authFailure("socks")),
      events.adminAuthFailed.subscribe(() => authFailure("admin")),
      events.socksRequested.subscribe((m) => handshakes.observe(m.handshakeMs / 1000)),
      events.socksRefused.subscribe((m) => answered(m.reply, m.location)),
      events.socksOpened.subscribe((m) => {
        // an active-mode data connection is dialled by the relay: no SOCKS reply of its own
        if (m.grant === "ftp-active-data") return;
        answered(0, m.location);
        if (m.openMs !== null) opens.observe(m.openMs / 1000);
      }),
      events.socksClosed.subscribe((m) => {
        total.closed("", m.bytesUp, m.bytesDown);
        byLocation.closed(locations.of(m.location), m.bytesUp, m.bytesDown);
        durations.observe(m.durationMs / 1000);
      }),
      events.ftpPassiveRewrite.subscribe((m) => rewrote(m.announced === null ? "229" : "227")),
      events.ftpActiveDial.subscribe((m) => dialledBack(m.outcome)),
      events.ftpBounceRefused.subscribe(() => bounces.inc()),
      events.limitHit.subscribe((m) => limitHits(m.limit)),
      events.tunnelSecondInstance.subscribe((m) => secondInstances(m.refused ? "refused" : "admitted")),
    );
    if (options.processMetrics ?? true) collectDefaultMetrics({ register: this.registry });
  }

  /** The Prometheus text exposition format (version 0.0.4). */
  async render(): Promise<string> {
    await this.#admitRegistered();
    return this.registry.metrics();
  }

  get contentType(): string {
    return this.registry.contentType;
  }

  /** Stop following the relay's events. */
  close(): void {
    for (const stop of this.#stops.splice(0)) stop();
  }

  /** Every registered agent's location gets its gauges, 0 until one of its agents connects. */
  async #admitRegistered(): Promise<void> {
    if (!this.#registered) return;
    let registered: readonly { readonly location: string }[];
    try {
      registered = await this.#registered.listAgents();
    } catch {
      return; // the store is away: the live figures are still worth a scrape
    }
    for (const a of registered) this.#locations.of(a.location);
  }
}

/**
 * A counter of one label with a fixed set of values, each shown from 0 (so that `increase()`
 * sees the first event); answers what counts one for a value.
 */
function countedFromZero<V extends string>(
  registry: Registry,
  name: string,
  help: string,
  label: string,
  values: readonly V[],
): (value: V) => void {
  const counter = new Counter({ name, help, labelNames: [label], registers: [registry] });
  for (const value of values) counter.inc({ [label]: value }, 0);
  return (value) => counter.inc({ [label]: value });
}

/** Every location label given out so far, at 0. */
function zeroByLocation(locations: LocationLabels): Map<string, number> {
  return new Map([...locations.known()].map((l) => [l, 0]));
}

/** A location gauge shows exactly `values`. */
function setEach(gauge: Gauge<"location">, values: ReadonlyMap<string, number>): void {
  gauge.reset();
  for (const [location, value] of values) gauge.set({ location }, value);
}
