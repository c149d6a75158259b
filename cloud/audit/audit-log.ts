/**
 * The audit trail: who was refused what, which credential changed what, agents coming and
 * going, kills and rotations. Append-only, queried newest first and paged by cursor. Behind an
 * interface so that a shared database can hold the cluster's trail.
 */

/** One audit event. Fields beyond the fixed ones are the event's details (never a secret). */
export interface AuditEvent {
  /** Increasing per trail; the cursor of a page is the last `seq` it showed. */
  readonly seq: number;
  /** ISO 8601, UTC. */
  readonly time: string;
  /** e.g. `socks.denied`, `admin.mapping.created`, `agent.connected`. */
  readonly event: string;
  readonly message: string;
  readonly clientId?: string | null;
  readonly agentId?: string | null;
  readonly mappingId?: string | null;
  readonly relayId?: string;
  readonly [detail: string]: unknown;
}

/** What a caller appends; the trail numbers and stamps it. */
export interface AuditEntry {
  readonly event: string;
  readonly message: string;
  /** Defaults to now. */
  readonly time?: string;
  readonly clientId?: string | null;
  readonly agentId?: string | null;
  readonly mappingId?: string | null;
  readonly [detail: string]: unknown;
}

export interface AuditQuery {
  /** Inclusive, ms since the epoch. */
  readonly since?: number;
  /** Exclusive, ms since the epoch. */
  readonly until?: number;
  readonly event?: string;
  /** Matches `clientId` or the client's name. */
  readonly client?: string;
  /** Matches `agentId` or the agent's name. */
  readonly agent?: string;
  readonly mapping?: string;
  /** Events per page, 1-1000. */
  readonly limit: number;
  /** Only events older than this cursor (the `nextCursor` of the page before). */
  readonly cursor?: string;
}

export interface AuditPage {
  readonly events: readonly AuditEvent[];
  /** Pass it as `cursor` for the next, older page; null when there is none. */
  readonly nextCursor: string | null;
}

export interface AuditLog {
  /**
   * Appends one event, numbered and stamped by the trail. The file trail has it in the
   * operating system's hands when this returns; the database trail writes it within
   * milliseconds, holding a bounded number of events while the database is away.
   */
  append(entry: AuditEntry): void;
  query(q: AuditQuery): Promise<AuditPage>;
  close(): Promise<void>;
}

/** Whether `e` passes every filter of `q` (the cursor and time bounds included). */
export function matchesQuery(e: AuditEvent, q: AuditQuery, cursorSeq: number): boolean {
  if (e.seq >= cursorSeq) return false;
  const t = Date.parse(e.time);
  if (q.since !== undefined && t < q.since) return false;
  if (q.until !== undefined && t >= q.until) return false;
  if (q.event !== undefined && e.event !== q.event) return false;
  if (q.client !== undefined && e.clientId !== q.client && e["client"] !== q.client) return false;
  if (q.agent !== undefined && e.agentId !== q.agent && e["agent"] !== q.agent) return false;
  if (q.mapping !== undefined && e.mappingId !== q.mapping) return false;
  return true;
}

/** The cursor's sequence number; a cursor that is not one of ours starts from the newest. */
export function cursorSeq(cursor: string | undefined): number {
  if (cursor === undefined) return Number.POSITIVE_INFINITY;
  const n = Number(cursor);
  return Number.isSafeInteger(n) && n > 0 ? n : Number.POSITIVE_INFINITY;
}
