/**
 * The shapes the console reads from the public admin API (README "Admin API", "Live events",
 * "Audit trail"), declared here because the console imports nothing of the server. Only the
 * fields the pages use are listed; the API may send more.
 */

/** ISO 8601 time, as every answer spells times. */
export type IsoTime = string;
/** A single port, or a range "start-end". */
export type PortSpec = number | string;

export interface Issue {
  readonly path: string;
  readonly message: string;
}

/** Every error answer. */
export interface ErrorBody {
  readonly error: string;
  readonly message: string;
  readonly issues?: readonly Issue[];
  /** 409: the id of the mapping the request overlaps. */
  readonly conflictsWith?: string;
}

export interface Endpoints {
  readonly tunnelPort: number;
  readonly tunnelTls: boolean;
  readonly socksPort: number;
}

/** `POST /v1/session` and `GET /v1/session`. */
export interface SessionInfo {
  readonly actor: string;
  readonly csrfToken: string;
  readonly csrfHeader: string;
  readonly expiresAt: IsoTime;
  readonly idleExpiresAt: IsoTime;
  readonly idleTimeoutMs: number;
  readonly endpoints: Endpoints | null;
}

export interface Agent {
  readonly id: string;
  readonly name: string;
  readonly location: string;
  readonly createdAt: IsoTime;
  readonly connected: boolean;
  readonly connectedAt: IsoTime | null;
  readonly remoteAddress: string | null;
  readonly version: string | null;
  readonly tunnels: number;
  readonly lastSeenAt: IsoTime | null;
  readonly lastAddress: string | null;
}

/** A new or rotated agent: its token, shown once. */
export interface AgentCreated {
  readonly id: string;
  readonly name: string;
  readonly location: string;
  readonly token: string;
}

export interface Client {
  readonly id: string;
  readonly name: string;
  readonly location: string;
  readonly username: string;
  readonly createdAt: IsoTime;
  readonly lastUsedAt: IsoTime | null;
  readonly lastAddress: string | null;
}

/** A new or rotated client: its password, shown once. */
export interface ClientCreated {
  readonly id: string;
  readonly name: string;
  readonly location: string;
  readonly username: string;
  readonly password: string;
}

export type Protocol = "tcp" | "ftp";

export interface Mapping {
  readonly id: string;
  readonly virtualHost: string;
  readonly virtualPort: PortSpec;
  readonly internalHost: string;
  readonly internalPort: PortSpec;
  readonly location: string;
  readonly protocol: Protocol;
  readonly description: string;
  readonly createdAt: IsoTime;
  readonly updatedAt: IsoTime;
}

/** The body of `POST /v1/mappings` (and, any subset of it, of `PATCH`). */
export interface MappingInput {
  virtualHost: string;
  virtualPort: PortSpec;
  internalHost: string;
  internalPort: PortSpec;
  location: string;
  protocol: Protocol;
  description: string;
}

export interface CheckResult {
  readonly reachable: boolean;
  readonly latencyMs?: number;
  readonly error?: string;
}

export interface FtpCheckStep {
  readonly step: string;
  readonly ok: boolean;
  readonly detail: string;
  readonly code?: string;
  readonly fix?: string;
  readonly reply?: string;
  readonly announced?: { readonly host: string | null; readonly port: number };
  readonly coveredBy?: string | null;
  readonly dataOpened?: boolean;
  readonly names?: readonly string[];
}

export interface FtpCheckResult {
  readonly mappingId: string;
  readonly target: string;
  readonly ok: boolean;
  readonly steps: readonly FtpCheckStep[];
}

export interface Connection {
  readonly id: string;
  readonly kind: string;
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
  readonly bytesUp: number;
  readonly bytesDown: number;
  readonly startedAt: IsoTime;
  readonly ageMs: number;
}

/** One audit event: the fixed fields, and its details. */
export interface AuditEvent {
  readonly seq: number;
  readonly time: IsoTime;
  readonly event: string;
  readonly message: string;
  readonly [detail: string]: unknown;
}

export interface AuditPage {
  readonly events: readonly AuditEvent[];
  readonly nextCursor: string | null;
}

/** `GET /v1/audit` filters; times are ISO. */
export interface AuditFilter {
  since?: string;
  until?: string;
  event?: string;
  client?: string;
  agent?: string;
  mapping?: string;
  limit?: number;
  cursor?: string;
}

// ---- live events (`GET /v1/events`) -----------------------------------------------------------

export interface AgentUpData {
  readonly agentId: string;
  readonly agentName: string;
  readonly location: string;
  readonly remote: string;
}

export interface AgentDownData {
  readonly agentId: string;
  readonly location: string;
  readonly reason: string;
}

export interface ConnectionOpenedData {
  readonly connectionId: string;
  readonly location: string;
}

export interface ConnectionClosedData {
  readonly connectionId: string;
  readonly bytesUp: number;
  readonly bytesDown: number;
  readonly error?: string | null;
}

export interface DenialData {
  readonly command: string;
  readonly clientId: string | null;
  readonly clientName: string | null;
  readonly remote: string;
  readonly location: string;
  readonly host: string;
  readonly port: number;
  readonly nearest: readonly string[];
}

export interface AuthFailedData {
  readonly username: string;
  readonly remote: string;
}

export interface ConfigChangedData {
  /** The `admin.*` audit event, e.g. `admin.mapping.created`. */
  readonly event: string;
  readonly message: string;
  readonly actor: string;
}

export interface TrafficLocation {
  readonly upBps: number;
  readonly downBps: number;
  readonly connections: number;
}

export interface TrafficData {
  readonly at: IsoTime;
  readonly intervalMs: number;
  readonly locations: Readonly<Record<string, TrafficLocation>>;
}

/** Each live event type and its data. */
export interface LiveEventMap {
  "agent.up": AgentUpData;
  "agent.down": AgentDownData;
  "connection.opened": ConnectionOpenedData;
  "connection.closed": ConnectionClosedData;
  denial: DenialData;
  "auth.failed": AuthFailedData;
  "config.changed": ConfigChangedData;
  traffic: TrafficData;
}

export type LiveEventType = keyof LiveEventMap;

export const LIVE_EVENT_TYPES: readonly LiveEventType[] = [
  "agent.up",
  "agent.down",
  "connection.opened",
  "connection.closed",
  "denial",
  "auth.failed",
  "config.changed",
  "traffic",
];
