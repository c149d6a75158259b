/**
 * The cluster's one audit trail: a table in the configuration database (migrations.ts,
 * `audit_events`), numbered by the database, so that every relay appends to and pages through
 * the same events. Queries mean what the file trail's mean (audit-log.ts `matchesQuery`), with
 * the filters in SQL over indexed columns.
 *
 * `append` cannot wait for the database (it is called from event subscribers on the data
 * path): events are queued and written in batches right after, in the order appended. While the
 * database is away they are held, up to `maxPending`; beyond that the oldest are dropped,
 * counted and logged, and the rest are written once it is back.
 */
import type pg from "pg";
import type { Logger } from "../../shared/logger.js";
import {
  type AuditEntry,
  type AuditEvent,
  type AuditLog,
  type AuditPage,
  type AuditQuery,
  cursorSeq,
} from "./audit-log.js";

export interface PostgresAuditLogOptions {
  readonly pool: pg.Pool;
  readonly logger: Logger;
  /** Stamped on every event. */
  readonly relayId?: string;
  /** Events held while the database is away (default 10 000); the oldest are dropped beyond. */
  readonly maxPending?: number;
  /** ms between two tries to write held events while the database is away (default 1000). */
  readonly retryMs?: number;
}

/** Events per INSERT. */
const BATCH = 500;

/** An event as appended, before the database numbers it. */
type Pending = AuditEntry & { readonly time: string; readonly relayId?: string };

const text = (v: unknown): string | null => (typeof v === "string" ? v : null);

/** The instant of an event for the `time` column; a time that does not parse is "now". */
function instant(e: Pending): string {
  const t = Date.parse(e.time);
  return new Date(Number.isNaN(t) ? Date.now() : t).toISOString();
}

export class PostgresAuditLog implements AuditLog {
  readonly #pool: pg.Pool;
  readonly #log: Logger;
  readonly #relayId: string | undefined;
  readonly #max: number;
  readonly #retryMs: number;
  #pending: Pending[] = [];
  #dropped = 0;
  #writing: Promise<void> | null = null;
  #retry: NodeJS.Timeout | null = null;
  #failing = false;
  #closed = false;

  constructor(o: PostgresAuditLogOptions) {
    this.#pool = o.pool;
    this.#log = o.logger.child({ component: "audit-trail" });
    this.#relayId = o.relayId;
    this.#max = o.maxPending ?? 10_000;
    this.#retryMs = o.retryMs ?? 1_000;
  }

  /** Events appended and not yet written. */
  get pending(): number {
    return this.#pending.length;
  }

  append(entry: AuditEntry): void {
    const event: Pending = {
      ...entry,
      time: entry.time ?? new Date().toISOString(),
      ...(this.#relayId === undefined ? {} : { relayId: this.#relayId }),
    };
    this.#pending.push(event);
    if (this.#pending.length > this.#max) {
      this.#pending.shift();
      if (this.#dropped++ % 1000 === 0)
        this.#log.warn(
          { dropped: this.#dropped, held: this.#max },
          "the audit trail's database is away and its queue is full: the oldest events are dropped",
        );
    }
    if (!this.#failing) void this.flush().catch(() => undefined);
  }

  /** Writes what is queued; rejects when the database cannot be reached (the events stay queued). */
  flush(): Promise<void> {
    this.#writing ??= this.#drain().finally(() => {
      this.#writing = null;
    });
    return this.#writing;
  }

  async #drain(): Promise<void> {
    while (this.#pending.length > 0) {
      const batch = this.#pending.slice(0, BATCH);
      try {
        await this.#insert(batch);
      } catch (err) {
        if (!this.#failing)
          this.#log.warn({ err, held: this.#pending.length }, "cannot write the audit trail; holding events");
        this.#failing = true;
        this.#scheduleRetry();
        throw err;
      }
      // by identity: appends meanwhile went to the end, and a full queue may have dropped its head
      const written = new Set(batch);
      this.#pending = this.#pending.filter((e) => !written.has(e));
      if (this.#failing) this.#log.info("audit trail written again");
      this.#failing = false;
    }
  }

  #scheduleRetry(): void {
    if (this.#retry !== null || this.#closed) return;
    this.#retry = setTimeout(() => {
      this.#retry = null;
      this.flush().catch(() => undefined);
    }, this.#retryMs);
    this.#retry.unref();
  }

  async #insert(batch: readonly Pending[]): Promise<void> {
    await this.#pool.query(
      `insert into audit_events (time, event, client_id, client, agent_id, agent, mapping_id, body)
       select t, e, ci, c, ai, a, mi, b
         from unnest($1::timestamptz[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[],
                     $7::text[], $8::jsonb[]) with ordinality as u(t, e, ci, c, ai, a, mi, b, n)
        order by n`,
      [
        batch.map(instant),
        batch.map((e) => e.event),
        batch.map((e) => text(e.clientId)),
        batch.map((e) => text(e["client"])),
        batch.map((e) => text(e.agentId)),
        batch.map((e) => text(e["agent"])),
        batch.map((e) => text(e.mappingId)),
        batch.map((e) => JSON.stringify(e)),
      ],
    );
  }

  async query(q: AuditQuery): Promise<AuditPage> {
    // this relay's own events come first into the table, so that a query finds them
    await this.flush().catch(() => undefined);
    const where: string[] = [];
    const values: unknown[] = [];
    const param = (v: unknown): string => {
      values.push(v);
      return `$${values.length}`;
    };
    const before = cursorSeq(q.cursor);
    if (Number.isFinite(before)) where.push(`seq < ${param(before)}`);
    if (q.since !== undefined) {
      const since = new Date(q.since);
      // past the last representable time nothing can be newer
      if (Number.isNaN(since.getTime())) return { events: [], nextCursor: null };
      where.push(`time >= ${param(since.toISOString())}`);
    }
    if (q.until !== undefined) {
      const until = new Date(q.until);
      if (!Number.isNaN(until.getTime())) where.push(`time < ${param(until.toISOString())}`);
    }
    if (q.event !== undefined) where.push(`event = ${param(q.event)}`);
    if (q.client !== undefined) {
      const c = param(q.client);
      where.push(`(client_id = ${c} or client = ${c})`);
    }
    if (q.agent !== undefined) {
      const a = param(q.agent);
      where.push(`(agent_id = ${a} or agent = ${a})`);
    }
    if (q.mapping !== undefined) where.push(`mapping_id = ${param(q.mapping)}`);
    const r = await this.#pool.query<{ seq: string; body: Pending }>(
      `select seq, body from audit_events ${where.length > 0 ? `where ${where.join(" and ")}` : ""}
        order by seq desc limit ${param(q.limit + 1)}`,
      values,
    );
    const events: AuditEvent[] = r.rows
      .slice(0, q.limit)
      .map((row) => ({ ...row.body, seq: Number(row.seq) }));
    const more = r.rows.length > q.limit;
    return { events, nextCursor: more ? String(events[events.length - 1]!.seq) : null };
  }

  /** One last try to write what is queued; what still cannot be written is counted in the log. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    if (this.#retry) clearTimeout(this.#retry);
    await this.flush().catch(() => undefined);
    if (this.#pending.length > 0)
      this.#log.warn({ lost: this.#pending.length }, "audit events not written before the relay stopped");
  }
}
