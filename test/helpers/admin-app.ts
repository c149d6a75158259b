/**
 * The admin API under test: built over a file store in a temporary directory, with fakes of
 * what the running relay gives it (each fake records how it was called).
 */
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { FastifyInstance } from "fastify";
import { buildAdminApi } from "../../cloud/admin/app.js";
import type { AdminAuthLimit } from "../../cloud/admin/auth-limit.js";
import type {
  AgentStatus,
  CheckResult,
  ConnectionInfo,
  ConnectionTable,
  FtpChecker,
  FtpCheckLogin,
  MetricsSource,
  ReachabilityChecker,
  TunnelDirectory,
  TunnelLink,
} from "../../cloud/admin/deps.js";
import { EventHub } from "../../cloud/admin/event-hub.js";
import { hashSecret } from "../../cloud/admin/secrets.js";
import { FileAuditLog } from "../../cloud/audit/file-audit-log.js";
import { ClusterView } from "../../cloud/cluster/cluster-view.js";
import { LocalMembership } from "../../cloud/cluster/membership.js";
import type { FtpCheckAnswer } from "../../cloud/ftp/check.js";
import { FileStore } from "../../cloud/store/file-store.js";
import type { MappingRecord, Store } from "../../cloud/store/store.js";
import { notConnected } from "../../cloud/tunnel/registry.js";
import type { Logger } from "../../shared/logger.js";

/** The id of the relay the admin API under test answers for. */
export const RELAY_ID = "rl_under_test";

export class FakeTunnels implements TunnelDirectory {
  readonly disconnected: Array<{ agentId: string; reason: string }> = [];
  readonly status = new Map<string, AgentStatus>();
  statusOf(agentId: string): AgentStatus {
    return this.status.get(agentId) ?? notConnected();
  }
  /** A link per tunnel the status says the agent has. */
  links(): TunnelLink[] {
    return [...this.status].flatMap(([agentId, s]) =>
      Array.from({ length: s.tunnels }, (_, i) => ({
        agentId,
        relayId: RELAY_ID,
        tunnelId: `tn_${agentId}_${i}`,
        remoteAddress: s.remoteAddress ?? "",
        hostName: null,
        instanceId: null,
        version: s.version ?? "",
        connectedAt: s.connectedAt ?? new Date(0).toISOString(),
      })),
    );
  }
  disconnectAgent(agentId: string, reason: string): void {
    this.disconnected.push({ agentId, reason });
  }
}

export class FakeConnections implements ConnectionTable {
  readonly live: ConnectionInfo[] = [];
  readonly killed: string[] = [];
  readonly killedByMapping: string[] = [];
  readonly killedByClient: string[] = [];
  list(): ConnectionInfo[] {
    return [...this.live];
  }
  kill(id: string): boolean {
    const i = this.live.findIndex((c) => c.id === id);
    if (i < 0) return false;
    this.live.splice(i, 1);
    this.killed.push(id);
    return true;
  }
  killByMapping(mappingId: string): number {
    this.killedByMapping.push(mappingId);
    return 0;
  }
  killByClient(clientId: string): number {
    this.killedByClient.push(clientId);
    return 0;
  }
}

export class FakeReachability implements ReachabilityChecker {
  readonly checked: MappingRecord[] = [];
  answer: CheckResult | Error = { reachable: true, latencyMs: 7 };
  async check(mapping: MappingRecord): Promise<CheckResult> {
    this.checked.push(mapping);
    if (this.answer instanceof Error) throw this.answer;
    return this.answer;
  }
}

export class FakeFtpCheck implements FtpChecker {
  readonly checked: Array<{ mapping: MappingRecord; login: FtpCheckLogin }> = [];
  answer: FtpCheckAnswer | Error | null = null;
  async check(mapping: MappingRecord, login: FtpCheckLogin): Promise<FtpCheckAnswer> {
    this.checked.push({ mapping, login });
    if (this.answer instanceof Error) throw this.answer;
    return (
      this.answer ?? {
        mappingId: mapping.id,
        target: `${mapping.virtualHost}:${mapping.virtualPort.start}`,
        ok: false,
        steps: [
          { step: "connect", ok: true, detail: "connected" },
          { step: "greeting", ok: true, detail: "220 ready", reply: "220 ready" },
          {
            step: "login",
            ok: false,
            detail: "refused",
            code: "UP_FTP_LOGIN_FAILED",
            fix: "check the password",
            reply: "530 Login incorrect.",
          },
        ],
      }
    );
  }
}

export class FakeMetrics implements MetricsSource {
  render(): string {
    return "# TYPE underpass_agents_connected gauge\nunderpass_agents_connected 2\n";
  }
}

export const CONNECTION: ConnectionInfo = {
  id: "cn_1",
  kind: "connect",
  clientId: "cl_x",
  clientName: "erp",
  mappingId: "mp_x",
  location: "default",
  virtualHost: "ftp.example",
  virtualPort: 21,
  internalHost: "10.0.0.5",
  internalPort: 21,
  agentId: "ag_x",
  remoteAddress: "192.0.2.1:40000",
  bytesUp: 10,
  bytesDown: 2000,
  startedAt: "2026-01-01T00:00:00.000Z",
  ageMs: 1500,
};

export interface AdminUnderTest {
  readonly app: FastifyInstance;
  /** The file store itself (the app may see it through `wrapStore`). */
  readonly store: FileStore;
  /** The store's data directory. */
  readonly dir: string;
  readonly tunnels: FakeTunnels;
  readonly connections: FakeConnections;
  readonly reachability: FakeReachability;
  readonly metrics: FakeMetrics;
  readonly ftpCheck: FakeFtpCheck;
  /** The real audit trail, in the store's directory. */
  readonly audit: FileAuditLog;
  /** The real live-event hub. */
  readonly events: EventHub;
  /** The cluster of one relay the app answers for. */
  readonly cluster: ClusterView;
  /** Close the app and the store and remove the directory. */
  close(): Promise<void>;
}

export interface AdminUnderTestOptions {
  readonly token: string;
  readonly logger: Logger;
  readonly version: string;
  /** What the app is given instead of the file store (a wrapper that fails on demand). */
  readonly wrapStore?: (store: Store) => Store;
  /** Called before `ready()`, while hooks can still be added. */
  readonly beforeReady?: (app: FastifyInstance) => void;
  /**
   * The bound on failed authentications; by default one no test of another subject reaches
   * (they send their 401s from the one address inject() uses).
   */
  readonly authLimit?: AdminAuthLimit;
}

/** The bound tests of other subjects run under: far more failures than any of them sends. */
export const LENIENT_AUTH_LIMIT: AdminAuthLimit = { failures: 10_000, windowMs: 60_000, delayMs: 1 };

export async function startAdmin(options: AdminUnderTestOptions): Promise<AdminUnderTest> {
  const dir = await mkdtemp(join(tmpdir(), "underpass-admin-"));
  const store = new FileStore({ dir, logger: options.logger });
  await store.open();
  const tunnels = new FakeTunnels();
  const connections = new FakeConnections();
  const reachability = new FakeReachability();
  const metrics = new FakeMetrics();
  const ftpCheck = new FakeFtpCheck();
  const audit = new FileAuditLog({ dir: join(dir, "audit") });
  const events = new EventHub();
  // one relay alone, as over the file store
  const membership = new LocalMembership(
    {
      id: RELAY_ID,
      tunnelUrl: "ws://127.0.0.1:8443/tunnel",
      adminUrl: null,
      addresses: { tunnel: "127.0.0.1:8443" },
      version: options.version,
      startedAt: new Date().toISOString(),
    },
    () => ({ agents: 0, connections: connections.live.length }),
    options.logger,
  );
  const cluster = new ClusterView({ selfId: RELAY_ID, membership: () => membership, logger: options.logger });
  const app = buildAdminApi({
    store: options.wrapStore?.(store) ?? store,
    deps: { tunnels, connections, reachability, metrics, ftpCheck, audit, events, cluster },
    adminTokenHash: hashSecret(options.token),
    logger: options.logger,
    version: options.version,
    authLimit: options.authLimit ?? LENIENT_AUTH_LIMIT,
  });
  options.beforeReady?.(app);
  await app.ready();
  return {
    app,
    store,
    dir,
    tunnels,
    connections,
    reachability,
    metrics,
    ftpCheck,
    audit,
    events,
    cluster,
    async close() {
      events.close();
      await app.close();
      await audit.close();
      await store.close();
      await rm(dir, { recursive: true, force: true });
    },
  };
}
