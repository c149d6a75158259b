/**
 * What the admin API needs from the running relay, as narrow interfaces so that the API is
 * built and tested with `inject()` without a tunnel or a SOCKS server.
 */

import type { ConnectionInfo } from "../socks/connections.js";
import type { MappingRecord } from "../store/store.js";
import type { CheckResult } from "../tunnel/reachability.js";
import type { AgentStatus } from "../tunnel/registry.js";

export type { AgentStatus, CheckResult, ConnectionInfo };

export interface TunnelDirectory {
  statusOf(agentId: string): AgentStatus;
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

export interface AdminDeps {
  readonly tunnels: TunnelDirectory;
  readonly connections: ConnectionTable;
  readonly reachability: ReachabilityChecker;
  readonly metrics: MetricsSource;
}
