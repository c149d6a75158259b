/**
 * One catch-up round of the PostgreSQL store: what was committed since the version this relay
 * holds, read in one repeatable-read transaction so that the version, the change rows and the
 * records agree. Versions commit in order (migrations.ts: config_version), so the records of
 * every id named by a change up to the version read are exactly as of that version.
 *
 * Only the records the changes name are read again, unless this is the first round, the
 * database's version went back (restored from a backup), or the changes since the version held
 * were pruned; then everything is read.
 */
import type pg from "pg";
import type { ConfigChange } from "./changes.js";
import {
  ADMIN_TOKEN_SETTING,
  AGENTS,
  CLIENTS,
  MAPPINGS,
  type Ordered,
  selectAdminTokenHash,
  selectRows,
  type Table,
} from "./postgres-rows.js";
import type { AgentRecord, ClientRecord, MappingRecord, StoreData } from "./store.js";

type Entity = ConfigChange["entity"] | "settings";

/** More records named than this (an import) and the whole table is read instead. */
const REFRESH_BY_ID = 1_000;

export interface ReadResult {
  readonly version: number;
  readonly data: StoreData;
  /** Whether every write that touched the record since the last round came from `origin`. */
  readonly isLocal: (entity: ConfigChange["entity"], id: string) => boolean;
  /** Whether a change row since the last round names the record; null: all may have changed. */
  readonly touched: ((entity: ConfigChange["entity"], id: string) => boolean) | null;
}

interface ChangeRow {
  entity: Entity;
  entity_id: string;
  origin: string;
}

function sorted<R>(rows: Map<string, Ordered<R>>): R[] {
  return [...rows.values()].sort((a, b) => a.ord - b.ord).map((o) => o.record);
}

export class PostgresReader {
  readonly #origin: string;
  #version = 0;
  /** Nothing was read yet: the first round reads everything, even at version 0. */
  #loaded = false;
  #adminTokenHash: string | null = null;
  readonly #agents = new Map<string, Ordered<AgentRecord>>();
  readonly #clients = new Map<string, Ordered<ClientRecord>>();
  readonly #mappings = new Map<string, Ordered<MappingRecord>>();

  /** `origin` names the writes of this relay's own store in the change rows. */
  constructor(origin: string) {
    this.#origin = origin;
  }

  /** The configuration version the last round read. */
  get version(): number {
    return this.#version;
  }

  /** Reads what changed since the last round; null when nothing did. */
  async read(db: pg.ClientBase): Promise<ReadResult | null> {
    await db.query("begin isolation level repeatable read read only");
    try {
      const result = await this.#readIn(db);
      await db.query("commit");
      return result;
    } catch (err) {
      // a rollback that fails leaves the connection in doubt: its error goes up instead
      await db.query("rollback");
      throw err;
    }
  }

  async #readIn(db: pg.ClientBase): Promise<ReadResult | null> {
    const head = await db.query<{ version: string; floor: string | null }>(
      "select v.version, (select min(version) from config_changes) as floor from config_version v",
    );
    const version = Number(head.rows[0]?.version ?? 0);
    if (this.#loaded && version === this.#version) return null;
    const floor = head.rows[0]?.floor === null ? null : Number(head.rows[0]?.floor);
    const full = !this.#loaded || version < this.#version || floor === null || floor > this.#version + 1;
    const origins = new Map<string, boolean>();
    let touched: Record<Entity, Set<string>> | null = null;
    if (full) {
      this.#adminTokenHash = await selectAdminTokenHash(db);
      await this.#reload(db, AGENTS, this.#agents);
      await this.#reload(db, CLIENTS, this.#clients);
      await this.#reload(db, MAPPINGS, this.#mappings);
    } else {
      const changes = await db.query<ChangeRow>(
        "select entity, entity_id, origin from config_changes where version > $1 and version <= $2",
        [this.#version, version],
      );
      touched = {
        settings: new Set(),
        agent: new Set(),
        client: new Set(),
        mapping: new Set(),
      };
      for (const c of changes.rows) {
        touched[c.entity].add(c.entity_id);
        const key = `${c.entity}:${c.entity_id}`;
        origins.set(key, (origins.get(key) ?? true) && c.origin === this.#origin);
      }
      if (touched.settings.has(ADMIN_TOKEN_SETTING)) this.#adminTokenHash = await selectAdminTokenHash(db);
      await this.#refresh(db, AGENTS, this.#agents, touched.agent);
      await this.#refresh(db, CLIENTS, this.#clients, touched.client);
      await this.#refresh(db, MAPPINGS, this.#mappings, touched.mapping);
    }
    this.#version = version;
    this.#loaded = true;
    return {
      version,
      touched: touched === null ? null : (entity, id) => touched[entity].has(id),
      isLocal: (entity, id) => origins.get(`${entity}:${id}`) ?? false,
      data: {
        version: 1,
        adminTokenHash: this.#adminTokenHash,
        agents: sorted(this.#agents),
        clients: sorted(this.#clients),
        mappings: sorted(this.#mappings),
      },
    };
  }

  async #reload<R extends { id: string }, Row extends pg.QueryResultRow>(
    db: pg.ClientBase,
    table: Table<R, Row>,
    into: Map<string, Ordered<R>>,
  ): Promise<void> {
    const rows = await selectRows(db, table);
    into.clear();
    for (const r of rows) into.set(r.record.id, r);
  }

  async #refresh<R extends { id: string }, Row extends pg.QueryResultRow>(
    db: pg.ClientBase,
    table: Table<R, Row>,
    into: Map<string, Ordered<R>>,
    ids: ReadonlySet<string>,
  ): Promise<void> {
    if (ids.size === 0) return;
    if (ids.size > REFRESH_BY_ID) return this.#reload(db, table, into);
    const rows = await selectRows(db, table, [...ids]);
    for (const id of ids) into.delete(id);
    for (const r of rows) into.set(r.record.id, r);
  }
}
