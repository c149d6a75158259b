/**
 * What the admin API needs from the running relay, as narrow interfaces so that the API is
 * built and tested with `inject()` without a tunnel or a SOCKS server.
 */
import type { MappingRecord } from "../store/store.js";

export interface AgentStatus {
  readonly connected: boolean;
  /** ISO time the oldest live tunnel of the agent was established, or null. */
  readonly connectedAt: string | null;
  /** Remote address of the oldest live tunnel, or null. */
  readonly remoteAddress: string | null;
  /** Agent software version from its hello, or null. */
  readonly version: string | null;
  /** Live tunnels of the agent (an agent may keep a pool). */
  readonly tunnels: number;
}

export interface TunnelDirectory {
  statusOf(agentId: string): AgentStatus;
  /** Close every live tunnel of the agent (it was deleted: its token stops working). */
  disconnectAgent(agentId: string, reason: string): void;
}

export interface ConnectionInfo {
  readonly id: string;
  readonly kind: "connect" | "bind" | "check";
  readonly clientId: string | null;
  readonly clientName: string | null;
  readonly mappingId: string;
  readonly location: string;
  readonly virtualHost: string;
  readonly virtualPort: number;
  readonly internalHost: string;
  readonly internalPort: number;
  readonly agentId: string;
  readonly remoteAddress: string;
  /** Bytes from the client towards the internal target. */
  readonly bytesUp: number;
  /** Bytes from the internal target towards the client. */
  readonly bytesDown: number;
  readonly startedAt: string;
  readonly ageMs: number;
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

export interface CheckResult {
  readonly reachable: boolean;
  readonly latencyMs?: number;
  readonly error?: string;
}

export interface ReachabilityChecker {
  /** Ask an agent of the mapping's location to dial the internal target (its first port). */
  check(mapping: MappingRecord): Promise<CheckResult>;
}

export interface MetricsSource {
  /** Prometheus text exposition format. */
  render(): string;
}

export interface AdminDeps {
  readonly tunnels: TunnelDirectory;
  readonly connections: ConnectionTable;
  readonly reachability: ReachabilityChecker;
  readonly metrics: MetricsSource;
}
