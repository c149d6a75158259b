/**
 * What the admin API needs from the running relay, as narrow interfaces so that the API is
 * built and tested with `inject()` without a tunnel or a SOCKS server.
 */

import type { AuditLog } from "../audit/audit-log.js";
import type { ClusterDirectory } from "../cluster/cluster-view.js";
import type { FtpCheckAnswer } from "../ftp/check.js";
import type { ConnectionInfo } from "../socks/connections.js";
import type { MappingRecord, Store } from "../store/store.js";
import type { CheckResult } from "../tunnel/reachability.js";
import type { AgentStatus, TunnelLink } from "../tunnel/registry.js";

export type { AgentStatus, CheckResult, ClusterDirectory, ConnectionInfo, TunnelLink };

export interface TunnelDirectory {
  statusOf(agentId: string): AgentStatus;
  /** Every live tunnel of this relay. */
  links(): TunnelLink[];
  /** Close every live tunnel of the agent (it was deleted: its token stops working). */
  disconnectAgent(agentId: string, reason: string): void;
}

export interface ConnectionTable {
  list(): ConnectionInfo[];
  /** Reset one live connection; false when there is no such id. */
  kill(id: string): boolean;
  /** Reset every connection that uses a mapping (the mapping was deleted or changed). */
  killByMapping(mappingId: string): number;
  /** Reset every connection of a SOCKS client (the client was deleted). */
  killByClient(clientId: string): number;
}

export interface ReachabilityChecker {
  /** Ask an agent of the mapping's location to dial the internal target (its first port). */
  check(mapping: MappingRecord): Promise<CheckResult>;
}

export interface MetricsSource {
  /** Prometheus text exposition format. */
  render(): string | Promise<string>;
}

/** The login an FTP check uses (anonymous by default) and the directory it lists. */
export interface FtpCheckLogin {
  readonly username: string;
  readonly password: string;
  readonly path: string;
}

export interface FtpChecker {
  /** A real FTP session through the relay's own SOCKS endpoint (cloud/ftp/check.ts). */
  check(mapping: MappingRecord, login: FtpCheckLogin): Promise<FtpCheckAnswer>;
}

/** Where live events go: `GET /v1/events` subscribes to it, admin changes publish (event-hub.ts). */
export interface LiveEvents {
  subscribe(res: import("node:http").ServerResponse, types: ReadonlySet<string> | null): void;
  publish(event: { readonly type: string; readonly data: unknown }): void;
}

export interface AdminDeps {
  readonly tunnels: TunnelDirectory;
  readonly connections: ConnectionTable;
  readonly reachability: ReachabilityChecker;
  readonly metrics: MetricsSource;
  readonly ftpCheck: FtpChecker;
  /** The audit trail: admin changes are appended, `GET /v1/audit` reads it. */
  readonly audit: AuditLog;
  readonly events: LiveEvents;
  /** The other relays of the cluster, for the merged view (none over the file store). */
  readonly cluster: ClusterDirectory;
}

/** What every admin route plugin is given. */
export interface AdminRouteOptions {
  readonly store: Store;
  readonly deps: AdminDeps;
}
