/**
 * Records ↔ rows of the PostgreSQL store (migrations.ts holds the tables). A null column of an
 * optional field (`lastSeenAt`, `lastAddress`, `lastUsedAt`) is left out of the record, as a
 * record that was never seen has no such field.
 */
import type pg from "pg";
import type { AgentRecord, ClientRecord, MappingProtocol, MappingRecord } from "./store.js";

/** A record with the position it was added at (lists show records in that order). */
export interface Ordered<R> {
  readonly ord: number;
  readonly record: R;
}

interface AgentRow {
  id: string;
  ord: string;
  name: string;
  location: string;
  token_hash: string;
  created_at: string;
  last_seen_at: string | null;
  last_address: string | null;
  single_instance: boolean;
}

interface ClientRow {
  id: string;
  ord: string;
  name: string;
  location: string;
  username: string;
  password_hash: string;
  created_at: string;
  last_used_at: string | null;
  last_address: string | null;
}

interface MappingRow {
  id: string;
  ord: string;
  virtual_host: string;
  virtual_start: number;
  virtual_end: number;
  internal_host: string;
  internal_start: number;
  internal_end: number;
  location: string;
  protocol: MappingProtocol;
  description: string;
  created_at: string;
  updated_at: string;
}

function optional<K extends string>(key: K, value: string | null): { [P in K]?: string } {
  return (value === null ? {} : { [key]: value }) as { [P in K]?: string };
}

function agentOf(r: AgentRow): Ordered<AgentRecord> {
  return {
    ord: Number(r.ord),
    record: {
      id: r.id,
      name: r.name,
      location: r.location,
      tokenHash: r.token_hash,
      createdAt: r.created_at,
      ...optional("lastSeenAt", r.last_seen_at),
      ...optional("lastAddress", r.last_address),
      ...(r.single_instance ? { singleInstance: true as const } : {}),
    },
  };
}

function clientOf(r: ClientRow): Ordered<ClientRecord> {
  return {
    ord: Number(r.ord),
    record: {
      id: r.id,
      name: r.name,
      location: r.location,
      username: r.username,
      passwordHash: r.password_hash,
      createdAt: r.created_at,
      ...optional("lastUsedAt", r.last_used_at),
      ...optional("lastAddress", r.last_address),
    },
  };
}

function mappingOf(r: MappingRow): Ordered<MappingRecord> {
  return {
    ord: Number(r.ord),
    record: {
      id: r.id,
      virtualHost: r.virtual_host,
      virtualPort: { start: r.virtual_start, end: r.virtual_end },
      internalHost: r.internal_host,
      internalPort: { start: r.internal_start, end: r.internal_end },
      location: r.location,
      protocol: r.protocol,
      description: r.description,
      createdAt: r.created_at,
      updatedAt: r.updated_at,
    },
  };
}

type Queryable = Pick<pg.ClientBase, "query">;

/** The first mapping (in the order added) that a write of `m` would overlap. */
export async function selectOverlap(db: Queryable, m: MappingRecord): Promise<MappingRecord | undefined> {
  const r = await db.query<MappingRow>(
    `select ${MAPPINGS.selected} from mappings
      where location = $1 and lower(virtual_host) = lower($2) and id <> $3
        and int4range(virtual_start, virtual_end, '[]') && int4range($4, $5, '[]')
      order by ord limit 1`,
    [m.location, m.virtualHost, m.id, m.virtualPort.start, m.virtualPort.end],
  );
  const row = r.rows[0];
  return row === undefined ? undefined : MAPPINGS.fromRow(row).record;
}

export const ADMIN_TOKEN_SETTING = "admin_token_hash";

export async function selectAdminTokenHash(db: Queryable): Promise<string | null> {
  const r = await db.query<{ value: string }>("select value from settings where name = $1", [
    ADMIN_TOKEN_SETTING,
  ]);
  return r.rows[0]?.value ?? null;
}

// -- writes ------------------------------------------------------------------------------------

/** Column values of an agent, in the order of its table's `columns`. */
function agentValues(a: AgentRecord): unknown[] {
  return [
    a.id,
    a.name,
    a.location,
    a.tokenHash,
    a.createdAt,
    a.lastSeenAt ?? null,
    a.lastAddress ?? null,
    a.singleInstance === true,
  ];
}

function clientValues(c: ClientRecord): unknown[] {
  return [
    c.id,
    c.name,
    c.location,
    c.username,
    c.passwordHash,
    c.createdAt,
    c.lastUsedAt ?? null,
    c.lastAddress ?? null,
  ];
}

function mappingValues(m: MappingRecord): unknown[] {
  return [
    m.id,
    m.virtualHost,
    m.virtualPort.start,
    m.virtualPort.end,
    m.internalHost,
    m.internalPort.start,
    m.internalPort.end,
    m.location,
    m.protocol,
    m.description,
    m.createdAt,
    m.updatedAt,
  ];
}

export interface Table<R, Row extends pg.QueryResultRow = pg.QueryResultRow> {
  readonly name: string;
  /** What a select reads, ord included. */
  readonly selected: string;
  readonly fromRow: (row: Row) => Ordered<R>;
  /** Columns written, id first; ord is the database's. */
  readonly columns: readonly string[];
  /** The SQL array type of each column, for inserts of many rows through unnest. */
  readonly types: readonly string[];
  readonly values: (r: R) => unknown[];
}

export const AGENTS: Table<AgentRecord, AgentRow> = {
  name: "agents",
  selected: "id, ord, name, location, token_hash, created_at, last_seen_at, last_address, single_instance",
  fromRow: agentOf,
  columns: [
    "id",
    "name",
    "location",
    "token_hash",
    "created_at",
    "last_seen_at",
    "last_address",
    "single_instance",
  ],
  types: ["text", "text", "text", "text", "text", "text", "text", "boolean"],
  values: agentValues,
};

export const CLIENTS: Table<ClientRecord, ClientRow> = {
  name: "clients",
  selected: "id, ord, name, location, username, password_hash, created_at, last_used_at, last_address",
  fromRow: clientOf,
  columns: [
    "id",
    "name",
    "location",
    "username",
    "password_hash",
    "created_at",
    "last_used_at",
    "last_address",
  ],
  types: ["text", "text", "text", "text", "text", "text", "text", "text"],
  values: clientValues,
};

export const MAPPINGS: Table<MappingRecord, MappingRow> = {
  name: "mappings",
  selected:
    "id, ord, virtual_host, virtual_start, virtual_end, internal_host, internal_start, internal_end, location, protocol, description, created_at, updated_at",
  fromRow: mappingOf,
  columns: [
    "id",
    "virtual_host",
    "virtual_start",
    "virtual_end",
    "internal_host",
    "internal_start",
    "internal_end",
    "location",
    "protocol",
    "description",
    "created_at",
    "updated_at",
  ],
  types: ["text", "text", "int4", "int4", "text", "int4", "int4", "text", "text", "text", "text", "text"],
  values: mappingValues,
};

/** Inserts one record; false when a record with its id exists already (nothing is written). */
export async function insertOne<R, Row extends pg.QueryResultRow>(
  db: Queryable,
  t: Table<R, Row>,
  r: R,
): Promise<boolean> {
  const params = t.columns.map((_, i) => `$${i + 1}`).join(", ");
  const res = await db.query(
    `insert into ${t.name} (${t.columns.join(", ")}) values (${params}) on conflict (id) do nothing`,
    t.values(r),
  );
  return res.rowCount === 1;
}

/** Replaces every column of one record but its id and position; false when there is none. */
export async function updateOne<R, Row extends pg.QueryResultRow>(
  db: Queryable,
  t: Table<R, Row>,
  r: R,
): Promise<boolean> {
  const sets = t.columns
    .slice(1)
    .map((c, i) => `${c} = $${i + 2}`)
    .join(", ");
  const res = await db.query(`update ${t.name} set ${sets} where id = $1`, t.values(r));
  return res.rowCount === 1;
}

/** Inserts many records in one statement, positions in the order given. */
export async function insertMany<R, Row extends pg.QueryResultRow>(
  db: Queryable,
  t: Table<R, Row>,
  records: readonly R[],
): Promise<void> {
  if (records.length === 0) return;
  const rows = records.map(t.values);
  const arrays = t.columns.map((_, i) => rows.map((row) => row[i]));
  const unnest = t.types.map((type, i) => `$${i + 1}::${type}[]`).join(", ");
  await db.query(
    `insert into ${t.name} (${t.columns.join(", ")})
     select ${t.columns.join(", ")} from unnest(${unnest}) with ordinality as u(${t.columns.join(", ")}, n)
     order by n`,
    arrays,
  );
}

/** Every row, or (with `ids`) the rows of those ids that exist; in the order they were added. */
export async function selectRows<R, Row extends pg.QueryResultRow>(
  db: Queryable,
  t: Table<R, Row>,
  ids?: readonly string[],
): Promise<Ordered<R>[]> {
  const where = ids === undefined ? "" : "where id = any($1::text[])";
  const r = await db.query<Row>(
    `select ${t.selected} from ${t.name} ${where} order by ord`,
    ids === undefined ? [] : [ids],
  );
  return r.rows.map(t.fromRow);
}
