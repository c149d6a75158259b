/**
 * The relay, assembled: the tunnel endpoint for agents, the SOCKS5 endpoint for cloud
 * clients and the admin API, over one store. `startRelay` is what `underpass cloud` runs
 * and what tests start on port 0.
 */
import { readFileSync } from "node:fs";
import { createServer as createHttpServer, type Server as HttpServer, type IncomingMessage } from "node:http";
import { createServer as createHttpsServer, type Server as HttpsServer } from "node:https";
import type { AddressInfo, Server, Socket } from "node:net";
import { hostname } from "node:os";
import { join } from "node:path";
import type { FastifyInstance } from "fastify";
import { UnderpassError } from "../shared/errors.js";
import type { Logger } from "../shared/logger.js";
import {
  DEFAULT_LIMITS,
  OPEN_KIND,
  RESET_CODE,
  type SessionTimers,
  type TunnelLimits,
} from "../shared/tunnel/constants.js";
import { VERSION } from "../shared/version.js";
import { buildAdminApi } from "./admin/app.js";
import type { ReachabilityChecker } from "./admin/deps.js";
import { EventHub } from "./admin/event-hub.js";
import { startLiveFeed } from "./admin/live-feed.js";
import { RelayMetrics } from "./admin/metrics.js";
import { generateSecret, hashSecret } from "./admin/secrets.js";
import type { AuditLog } from "./audit/audit-log.js";
import { FileAuditLog } from "./audit/file-audit-log.js";
import { writeAuditLog } from "./audit/from-events.js";
import { PostgresAuditLog } from "./audit/postgres-audit-log.js";
import { applyRemoteChanges } from "./cluster/change-effects.js";
import { ClusterView } from "./cluster/cluster-view.js";
import {
  DatabaseMembership,
  LocalMembership,
  type Membership,
  type MembershipTimers,
  type RelaySelf,
} from "./cluster/membership.js";
import { RelayLease } from "./cluster/relay-lease.js";
import { advertisedUrl, defaultRelayId } from "./cluster/relay-self.js";
import { SharedBindControls } from "./cluster/shared-bind-controls.js";
import { SharedFtpExpectations } from "./cluster/shared-ftp-expectations.js";
import { type RelayEvents, relayEvents } from "./events.js";
import { FtpCheckRunner } from "./ftp/check-runner.js";
import { FtpDataExpectations, type FtpExpectations } from "./ftp/expectations.js";
import { BindListeners } from "./limits/bind-listeners.js";
import { type RelayBounds, relayBounds } from "./limits/bounds.js";
import { BufferBudget } from "./limits/buffer-budget.js";
import { FailureBackoff } from "./limits/failure-backoff.js";
import { sweepIdle } from "./limits/idle-sweep.js";
import { LimitHits } from "./limits/limit-hits.js";
import { LIMIT, type LimitName } from "./limits/limit-names.js";
import { PreauthGuard } from "./limits/preauth-guard.js";
import { socksGuards } from "./limits/socks-guards.js";
import { createMetricsServer } from "./metrics-server.js";
import { NO_OTHER_RELAYS, type RemoteBindControls } from "./socks/bind-controls.js";
import { CheckCredentials } from "./socks/check-credentials.js";
import { LiveConnections } from "./socks/connections.js";
import { openOnPremises, pickTunnel } from "./socks/open.js";
import { createSocksServer } from "./socks/server.js";
import { FileStore } from "./store/file-store.js";
import type { MappingRecord, Store, StoreDatabase } from "./store/store.js";
import { recordUsage, type UsageRecorder } from "./store/usage-recorder.js";
import {
  DEFAULT_TLS_RELOAD,
  reloadCertificates,
  type TlsListener,
  type TlsReloadSettings,
} from "./tls-reload.js";
import { BindPeers } from "./tunnel/bind-peers.js";
import { TUNNEL_PATH, TunnelGateway } from "./tunnel/gateway.js";
import type { CheckResult } from "./tunnel/reachability.js";
import { AgentRegistry } from "./tunnel/registry.js";

export interface ListenAddress {
  readonly host: string;
  readonly port: number;
}

export interface RelayConfig {
  readonly tunnelListen: ListenAddress;
  readonly socksListen: ListenAddress;
  readonly adminListen: ListenAddress;
  /** `GET /metrics` without the admin token, for a Prometheus scraper; none when absent. */
  readonly metricsListen?: ListenAddress | undefined;
  readonly dataDir: string;
  /** Fixed admin token (UNDERPASS_ADMIN_TOKEN); when absent one is generated on first start. */
  readonly adminToken?: string | undefined;
  /** PEM files; when set the tunnel is served over TLS (wss). */
  readonly tls?: { readonly certFile: string; readonly keyFile: string } | undefined;
  /** PEM files; when set the admin API and the console are served over HTTPS. */
  readonly adminTls?: { readonly certFile: string; readonly keyFile: string } | undefined;
  readonly socksNoAuth?: boolean;
  /** Location of SOCKS clients when authentication is off. */
  readonly anonymousLocation?: string;
  readonly socksHandshakeTimeoutMs?: number;
  readonly dialTimeoutMs?: number;
  /** How long an on-premise BIND listener waits for its peer, in ms (default 60 s). */
  readonly bindTimeoutMs?: number;
  /** IPv4 address announced in rewritten 227 replies of FTP-aware mappings. */
  readonly ftpPasvAddress?: string;
  readonly helloTimeoutMs?: number;
  readonly limits?: TunnelLimits;
  readonly timers?: SessionTimers;
  readonly logger: Logger;
  /** Audit events (grants, denials); defaults to the main logger with `audit: true`. */
  readonly audit?: Logger;
  /** Another store (a shared database); defaults to the file store in `dataDir`. */
  readonly store?: Store;
  /**
   * `UNDERPASS_DATABASE_URL`: the store and the audit trail live in this PostgreSQL database,
   * shared with the other relays of a cluster (unless `store` is given).
   */
  readonly databaseUrl?: string | undefined;
  /**
   * Where FTP-aware control connections keep the data ports they announced and the BIND
   * listeners their clients got; by default in memory, or shared through the database with one.
   */
  readonly ftpExpectations?: FtpExpectations;
  /** Bounds on what peers can make the relay hold (cloud/limits/bounds.ts); defaults for the rest. */
  readonly bounds?: Partial<RelayBounds>;
  /** How renewed certificates are picked up (SIGHUP always; the file watch and its debounce). */
  readonly tlsReload?: TlsReloadSettings;
  /** UNDERPASS_RELAY_ID; by default the same per host and tunnel port, random for port 0. */
  readonly relayId?: string | undefined;
  /** UNDERPASS_RELAY_PUBLIC_URL: the tunnel URL agents should use; by default from the tunnel's address. */
  readonly publicUrl?: string | undefined;
  /** UNDERPASS_RELAY_ADMIN_URL: where peers reach this admin API; by default from its address. */
  readonly adminUrl?: string | undefined;
  /** Heartbeat, live and prune bounds of the membership (cluster/membership.ts). */
  readonly membership?: Partial<MembershipTimers>;
}

export interface Relay {
  readonly tunnelAddress: AddressInfo;
  readonly socksAddress: AddressInfo;
  readonly adminAddress: AddressInfo;
  /** Where `GET /metrics` is served without the admin token; null when it is not. */
  readonly metricsAddress: AddressInfo | null;
  /** Set only on the start that generated the admin token: show it once. */
  readonly generatedAdminToken: string | null;
  readonly store: Store;
  readonly registry: AgentRegistry;
  readonly connections: LiveConnections;
  /** This relay's id in the cluster, in its events, audit events and metrics. */
  readonly relayId: string;
  /** The relays of the cluster (only this one over the file store). */
  readonly membership: Membership;
  /** What happens in this relay, as it happens (cloud/events.ts). */
  readonly events: RelayEvents;
  /** Last-seen times of agents and clients, written in batches (`flush()` writes now). */
  readonly usage: UsageRecorder;
  readonly admin: FastifyInstance;
  close(): Promise<void>;
}

export async function startRelay(config: RelayConfig): Promise<Relay> {
  const log = config.logger;
  const audit = config.audit ?? log.child({ audit: true });
  const store = await configuredStore(config);
  await store.open();
  const database = store.database ?? null;

  let generatedAdminToken: string | null = null;
  let adminTokenHash: string;
  const storedAdminTokenHash = config.adminToken ? null : await store.adminTokenHash();
  if (config.adminToken) {
    adminTokenHash = hashSecret(config.adminToken);
  } else if (storedAdminTokenHash) {
    adminTokenHash = storedAdminTokenHash;
  } else {
    generatedAdminToken = generateSecret("upadm");
    adminTokenHash = hashSecret(generatedAdminToken);
    // a database store holds connections open: let them go when the relay cannot start
    await store.setAdminTokenHash(adminTokenHash).catch(async (err: unknown) => {
      await store.close();
      throw err;
    });
  }

  const relayId = config.relayId ?? defaultRelayId(hostname(), config.tunnelListen.port);
  const startedAt = new Date().toISOString();
  const events = relayEvents(relayId);
  // FTP's control, data and BIND connections may each land on another relay of a cluster
  const shared =
    database !== null
      ? await clusterFtp(store, database, events, log).catch(async (err: unknown) => {
          await store.close();
          throw err;
        })
      : null;
  const registry = new AgentRegistry(events.relayId);
  const connections = new LiveConnections();
  const metrics = new RelayMetrics({ agents: registry, connections, events, registered: store });
  const dialTimeoutMs = config.dialTimeoutMs ?? 10_000;
  const bindPeers = new BindPeers();
  const checkCredentials = new CheckCredentials();
  const bounds = relayBounds(config.bounds);
  const hits = new LimitHits(events, log.child({ component: "limits" }), bounds.summaryPeriodMs);
  const tunnelGuard = new PreauthGuard({
    perSource: bounds.tunnelPreauthPerSource,
    total: bounds.tunnelPreauthTotal,
    deadlineMs: bounds.tunnelPreauthTimeoutMs,
    names: {
      perSource: LIMIT.TUNNEL_PREAUTH_PER_SOURCE,
      total: LIMIT.TUNNEL_PREAUTH_TOTAL,
      deadline: LIMIT.TUNNEL_PREAUTH_DEADLINE,
    },
    hits,
    what: "tunnel",
  });
  /** The admin and metrics ports: connections per source before their first request, with a deadline. */
  const httpGuard = (what: string, perSource: LimitName, deadline: LimitName): PreauthGuard =>
    new PreauthGuard({
      perSource: bounds.adminPreauthPerSource,
      total: Number.MAX_SAFE_INTEGER,
      deadlineMs: bounds.adminPreauthTimeoutMs,
      names: { perSource, total: perSource, deadline },
      hits,
      what,
    });

  // one budget for what the relay holds for clients: its tunnels' receive windows take from it
  const budget = new BufferBudget({
    totalBytes: bounds.bufferBudgetBytes,
    perClientBytes: bounds.clientBufferBytes,
    windowBytes: (config.limits ?? DEFAULT_LIMITS).initialWindow,
    hits,
  });
  const gateway = new TunnelGateway({
    store,
    registry,
    events,
    logger: log.child({ component: "gateway" }),
    limits: config.limits,
    timers: config.timers,
    helloTimeoutMs: config.helloTimeoutMs,
    onBindPeer: (stream, address, port) => bindPeers.deliver(stream, address, port),
    preauth: tunnelGuard,
    helloBackoff: new FailureBackoff({
      freeFailures: bounds.authFreeFailures,
      maxDelayMs: bounds.authBackoffMaxMs,
    }),
    hits,
    bounds,
    windowBudget: budget.process,
    relayId,
    // nothing until the relay has joined: an agent told of no relays would drop those it learned
    relays: () => joined?.advertised(),
  });
  const tunnelServer: HttpServer = config.tls
    ? createHttpsServer({ cert: readFileSync(config.tls.certFile), key: readFileSync(config.tls.keyFile) })
    : createHttpServer();
  // Node waits for a request's headers for a minute and checks only every 30 s: the guard's
  // own deadline closes a silent connection in time, these close a slow one
  tunnelServer.headersTimeout = bounds.tunnelPreauthTimeoutMs;
  tunnelServer.requestTimeout = bounds.tunnelPreauthTimeoutMs;
  tunnelServer.on("connection", (socket: Socket) => tunnelGuard.admit(socket));
  tunnelServer.on("request", (req, res) => {
    const path = (req.url ?? "").split("?")[0];
    if (path === "/healthz") {
      res.writeHead(200, { "content-type": "application/json" }).end(JSON.stringify({ status: "ok" }));
    } else {
      res
        .writeHead(426, { "content-type": "text/plain" })
        .end("the tunnel endpoint is /tunnel (WebSocket)\n");
    }
  });
  tunnelServer.on("upgrade", (req, socket, head) => gateway.handleUpgrade(req, socket, head));

  // a cluster keeps one trail, in its database
  const auditLog: AuditLog =
    database !== null
      ? new PostgresAuditLog({ pool: database.pool, logger: log, relayId })
      : new FileAuditLog({ dir: join(config.dataDir, "audit"), relayId });
  const stopAudit = writeAuditLog(events, audit, auditLog, { summaryPeriodMs: bounds.summaryPeriodMs });
  // what another relay changed is acted on here too (tunnels closed, connections reset)
  const stopChangeEffects =
    store.onChange?.(applyRemoteChanges({ tunnels: registry, connections, logger: log })) ?? (() => {});
  const socksServer = createSocksServer({
    store,
    registry,
    connections,
    events,
    logger: log.child({ component: "socks" }),
    requireAuth: !config.socksNoAuth,
    checkCredentials,
    anonymousLocation: config.anonymousLocation ?? "default",
    handshakeTimeoutMs: config.socksHandshakeTimeoutMs ?? 10_000,
    dialTimeoutMs,
    bindTimeoutMs: config.bindTimeoutMs ?? 60_000,
    bindPeers,
    ftpExpectations: config.ftpExpectations ?? shared?.expectations ?? new FtpDataExpectations(),
    bindControls: shared?.bindControls ?? NO_OTHER_RELAYS,
    ftpPasvAddress: config.ftpPasvAddress,
    guards: socksGuards(bounds, hits),
    bindListeners: new BindListeners(bounds, hits),
    budget,
  });

  const stopIdle = sweepIdle({
    connections,
    idleTimeoutMs: bounds.idleTimeoutMs,
    ftpIdleTimeoutMs: bounds.ftpIdleTimeoutMs,
    hits,
  });
  const reachability: ReachabilityChecker = {
    check: (mapping) => checkMapping(registry, mapping, dialTimeoutMs),
  };
  const liveEvents = new EventHub();
  const stopLiveFeed = startLiveFeed({ events, hub: liveEvents, connections });
  const usage = recordUsage({ events, store, logger: log });
  const ftpCheck = new FtpCheckRunner({
    store,
    credentials: checkCredentials,
    socksAddress: () => socksServer.address() as AddressInfo,
    stepTimeoutMs: Math.max(dialTimeoutMs, 10_000),
  });
  const admin = buildAdminApi({
    store,
    deps: {
      tunnels: registry,
      connections,
      reachability,
      metrics,
      ftpCheck,
      audit: auditLog,
      events: liveEvents,
      cluster: new ClusterView({
        selfId: relayId,
        membership: () => joined,
        ca: config.adminTls ? readFileSync(config.adminTls.certFile) : undefined,
        logger: log.child({ component: "cluster" }),
      }),
    },
    adminTokenHash,
    logger: log.child({ component: "admin" }),
    version: VERSION,
    events,
    authLimit: {
      failures: bounds.adminAuthFailures,
      windowMs: bounds.adminAuthWindowMs,
      delayMs: bounds.adminAuthDelayMs,
    },
    hits,
    tls: config.adminTls && {
      cert: readFileSync(config.adminTls.certFile),
      key: readFileSync(config.adminTls.keyFile),
    },
    // the ports the console puts into the commands it shows, once the servers listen
    consoleEndpoints: () => {
      const tunnel = tunnelServer.address();
      const socks = socksServer.address();
      if (tunnel === null || typeof tunnel === "string" || socks === null || typeof socks === "string") {
        return null;
      }
      return { tunnelPort: tunnel.port, tunnelTls: Boolean(config.tls), socksPort: socks.port };
    },
  });
  // the admin port's own bounds, before its first request (its token is checked per request)
  guardFirstRequest(
    admin.server,
    httpGuard("admin", LIMIT.ADMIN_PREAUTH_PER_SOURCE, LIMIT.ADMIN_PREAUTH_DEADLINE),
    bounds.adminPreauthTimeoutMs,
  );
  const metricsAt = config.metricsListen;
  const metricsServer = metricsAt ? createMetricsServer(metrics, log.child({ component: "metrics" })) : null;
  if (metricsServer) {
    guardFirstRequest(
      metricsServer,
      httpGuard("metrics", LIMIT.METRICS_PREAUTH_PER_SOURCE, LIMIT.METRICS_PREAUTH_DEADLINE),
      bounds.adminPreauthTimeoutMs,
    );
  }

  const started: Array<() => Promise<void>> = [];
  let membership!: Membership;
  let joined: Membership | null = null;
  try {
    await listen(tunnelServer, config.tunnelListen);
    started.push(() => closeServer(tunnelServer));
    await listen(socksServer, config.socksListen);
    started.push(() => closeServer(socksServer));
    await admin.listen({ host: config.adminListen.host, port: config.adminListen.port });
    started.push(() => admin.close());
    if (metricsServer && metricsAt) {
      await listen(metricsServer, metricsAt);
      started.push(() => closeServer(metricsServer));
    }
    membership = await joinCluster(
      config,
      database,
      relayId,
      startedAt,
      {
        tunnel: tunnelServer.address() as AddressInfo,
        socks: socksServer.address() as AddressInfo,
        admin: admin.server.address() as AddressInfo,
      },
      () => ({
        agents: new Set(registry.all().map((t) => t.agentId)).size,
        connections: connections.size,
      }),
    );
    joined = membership;
  } catch (err) {
    for (const stop of started.reverse()) await stop().catch(() => {});
    stopChangeEffects();
    stopAudit();
    metrics.close();
    stopIdle();
    hits.close();
    stopLiveFeed();
    await usage.close();
    liveEvents.close();
    await auditLog.close();
    await shared?.close();
    await store.close();
    throw err;
  }

  // renewed certificates are read again on SIGHUP and when their files change
  const tlsListeners: TlsListener[] = [
    ...(config.tls ? [{ name: "tunnel" as const, ...config.tls, server: tunnelServer as HttpsServer }] : []),
    ...(config.adminTls
      ? [{ name: "admin" as const, ...config.adminTls, server: admin.server as unknown as HttpsServer }]
      : []),
  ];
  const tlsReload =
    tlsListeners.length === 0
      ? null
      : reloadCertificates({
          listeners: tlsListeners,
          settings: config.tlsReload ?? DEFAULT_TLS_RELOAD,
          logger: log,
          events,
        });

  // agents that came in before the relay joined hear the set now, and every change after
  gateway.announceRelays(membership.advertised());
  const stopAnnouncing = membership.onChange((set) => gateway.announceRelays(set));
  const relay: Relay = {
    tunnelAddress: tunnelServer.address() as AddressInfo,
    socksAddress: socksServer.address() as AddressInfo,
    adminAddress: admin.server.address() as AddressInfo,
    metricsAddress: metricsServer ? (metricsServer.address() as AddressInfo) : null,
    generatedAdminToken,
    store,
    registry,
    connections,
    relayId,
    membership,
    events,
    usage,
    admin,
    // once: a second close waits for the first
    close() {
      closing ??= closeAll();
      return closing;
    },
  };
  let closing: Promise<void> | null = null;
  async function closeAll(): Promise<void> {
    // the row goes first: the other relays drop this one before its tunnels close
    stopAnnouncing();
    await relay.membership.close();
    tlsReload?.close();
    stopChangeEffects();
    socksServer.close();
    for (const c of connections.list()) connections.kill(c.id);
    gateway.close("relay shutting down");
    tunnelServer.closeAllConnections();
    stopLiveFeed();
    liveEvents.close();
    await Promise.all([
      closeServer(tunnelServer),
      closeServer(socksServer),
      admin.close(),
      ...(metricsServer ? [closeServer(metricsServer)] : []),
    ]);
    stopAudit();
    metrics.close();
    stopIdle();
    hits.close();
    await usage.close();
    await auditLog.close();
    await shared?.close();
    await store.close();
  }
  log.info(
    {
      tunnel: fmt(relay.tunnelAddress),
      tls: Boolean(config.tls),
      socks: fmt(relay.socksAddress),
      admin: fmt(relay.adminAddress),
      ...(relay.metricsAddress ? { metrics: fmt(relay.metricsAddress) } : {}),
      adminTls: Boolean(config.adminTls),
      relayId,
      ...(database !== null ? { store: "postgres", origin: database.origin } : { dataDir: config.dataDir }),
    },
    "relay listening",
  );
  return relay;
}

/** The store the configuration names. `pg` loads only for a relay with a database: 3 MiB of heap otherwise. */
async function configuredStore(config: RelayConfig): Promise<Store> {
  if (config.store) return config.store;
  if (!config.databaseUrl) return new FileStore({ dir: config.dataDir, logger: config.logger });
  const { PostgresStore } = await import("./store/postgres-store.js");
  return new PostgresStore({ url: config.databaseUrl, logger: config.logger });
}

/** What the relays of a cluster share of FTP, under this relay's lease in their database. */
async function clusterFtp(
  store: Store,
  database: StoreDatabase,
  events: RelayEvents,
  logger: Logger,
): Promise<{ expectations: FtpExpectations; bindControls: RemoteBindControls; close(): Promise<void> }> {
  const lease = new RelayLease({ pool: database.pool, relayId: events.relayId, logger });
  await lease.open();
  const bindControls = new SharedBindControls({ pool: database.pool, lease, events, logger });
  return {
    expectations: new SharedFtpExpectations({
      pool: database.pool,
      lease,
      mappingOf: (id) => store.getMapping(id),
      logger,
    }),
    bindControls,
    async close() {
      bindControls.close();
      await lease.close();
    },
  };
}

/**
 * This relay's place in the cluster: its row in the database (registered now, heartbeat from
 * here on), or the set of itself over the file store. A relay with no tunnel URL to advertise
 * registers all the same, says why it is not advertised, and agents learn nothing of it.
 */
async function joinCluster(
  config: RelayConfig,
  database: StoreDatabase | null,
  relayId: string,
  startedAt: string,
  bound: { readonly tunnel: AddressInfo; readonly socks: AddressInfo; readonly admin: AddressInfo },
  load: () => { agents: number; connections: number },
): Promise<Membership> {
  const log = config.logger;
  const tunnelUrl = advertisedUrl(
    config.publicUrl,
    { host: config.tunnelListen.host, port: bound.tunnel.port },
    config.tls ? "wss" : "ws",
    TUNNEL_PATH,
    { url: "UNDERPASS_RELAY_PUBLIC_URL", listen: "UNDERPASS_TUNNEL_LISTEN" },
  );
  const adminUrl = advertisedUrl(
    config.adminUrl,
    { host: config.adminListen.host, port: bound.admin.port },
    config.adminTls ? "https" : "http",
    "",
    { url: "UNDERPASS_RELAY_ADMIN_URL", listen: "UNDERPASS_ADMIN_LISTEN" },
  );
  if (tunnelUrl.url === null && database !== null) {
    log.warn({ relayId, why: tunnelUrl.why }, "this relay is not advertised to agents");
  }
  const self: RelaySelf = {
    id: relayId,
    tunnelUrl: tunnelUrl.url,
    adminUrl: adminUrl.url,
    addresses: { tunnel: fmt(bound.tunnel), socks: fmt(bound.socks), admin: fmt(bound.admin) },
    version: VERSION,
    startedAt,
  };
  const membership: Membership =
    database !== null
      ? new DatabaseMembership({
          pool: database.pool,
          self,
          load,
          timers: config.membership,
          logger: log,
        })
      : new LocalMembership(self, load, log);
  await membership.start();
  return membership;
}

/** The agent really dials the mapping's first internal port, as a CONNECT would. */
async function checkMapping(
  registry: AgentRegistry,
  mapping: MappingRecord,
  timeoutMs: number,
): Promise<CheckResult> {
  const tunnel = pickTunnel(registry, mapping.location);
  if (tunnel instanceof UnderpassError) return { reachable: false, error: tunnel.message };
  const t0 = performance.now();
  const opened = await openOnPremises(
    tunnel,
    OPEN_KIND.CONNECT,
    mapping.internalHost,
    mapping.internalPort.start,
    timeoutMs,
  );
  if (opened instanceof UnderpassError)
    return { reachable: false, error: `${opened.code}: ${opened.message}` };
  const latencyMs = Math.round((performance.now() - t0) * 100) / 100;
  opened.stream.reset(RESET_CODE.CANCELLED, "reachability check done");
  return { reachable: true, latencyMs };
}

/**
 * An HTTP port's connections count under `guard` from their TCP connection to their first
 * request; Node's own header timeout is checked only every 30 s, so the guard's deadline is
 * what closes a silent connection in time.
 */
function guardFirstRequest(server: HttpServer, guard: PreauthGuard, headersTimeoutMs: number): void {
  // within the request timeout, as Node requires of the two
  server.headersTimeout =
    server.requestTimeout > 0 ? Math.min(headersTimeoutMs, server.requestTimeout) : headersTimeoutMs;
  server.on("connection", (socket: Socket) => guard.admit(socket));
  server.on("request", (req: IncomingMessage) => guard.slotOf(req.socket)?.admitted());
}

function listen(server: Server, at: ListenAddress): Promise<void> {
  return new Promise((resolve, reject) => {
    server.once("error", reject);
    server.listen(at.port, at.host, () => {
      server.off("error", reject);
      resolve();
    });
  });
}

function closeServer(server: Server): Promise<void> {
  return new Promise((resolve) => server.close(() => resolve()));
}

function fmt(a: AddressInfo): string {
  return a.family === "IPv6" ? `[${a.address}]:${a.port}` : `${a.address}:${a.port}`;
}
