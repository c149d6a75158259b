/**
 * What each write of the PostgreSQL store does inside its transaction (postgres-store.ts runs
 * it): the statements, the refusals as the coded errors the file store throws, and the change
 * rows it names for the change feed. `recordChanges` then bumps the version and notifies, in
 * the same transaction.
 */
import type pg from "pg";
import { ConflictError, NotFoundError } from "../../shared/errors.js";
import { checkConfig } from "./config-check.js";
import { CHANGE_CHANNEL } from "./migrations.js";
import { constraintOf, sqlState } from "./postgres-errors.js";
import {
  ADMIN_TOKEN_SETTING,
  AGENTS,
  CLIENTS,
  insertMany,
  insertOne,
  MAPPINGS,
  type Table,
  updateOne,
} from "./postgres-rows.js";
import type { AgentRecord, ClientRecord, ConfigData, MappingRecord, UsageNote } from "./store.js";

type RecordEntity = "agent" | "client" | "mapping";

/** One row of `config_changes`: what a write touched (migrations.ts). */
export interface ChangeRow {
  readonly entity: RecordEntity | "settings";
  readonly id: string;
  readonly kind: "created" | "changed" | "deleted" | "rotated" | "seen";
}

/** A write's statements; it pushes what it touched to `changes`. */
export type WriteBody<T> = (db: pg.ClientBase, changes: ChangeRow[]) => Promise<T>;

/** Change rows older than this many versions are pruned; a relay further behind reads everything. */
const KEEP_VERSIONS = 10_000;
/** Pruning runs on every this many versions. */
const PRUNE_EVERY = 100;

/** The exclusion constraint said no; the mapping in the way is looked up after the rollback. */
export class OverlapRefused extends Error {}

/**
 * Rethrows a unique constraint's violation as the ConflictError the file store would throw
 * (`messages` by constraint name), and the overlap constraint's as OverlapRefused.
 */
function rethrowAs(messages: Readonly<Record<string, string>>): (err: unknown) => never {
  return (err) => {
    const state = sqlState(err);
    const constraint = constraintOf(err);
    const message = constraint === undefined ? undefined : messages[constraint];
    if (state === "23505" && message !== undefined) throw new ConflictError(message);
    if (state === "23P01" && constraint === "mappings_no_overlap") throw new OverlapRefused();
    throw err;
  };
}

/** Inserts a record; a taken id, or what `unique` names, is a ConflictError. */
function adding<R extends { id: string }, Row extends pg.QueryResultRow>(
  entity: RecordEntity,
  table: Table<R, Row>,
  record: R,
  unique: Readonly<Record<string, string>>,
): WriteBody<void> {
  return async (db, changes) => {
    const added = await insertOne(db, table, record).catch(rethrowAs(unique));
    if (!added) throw new ConflictError(`${entity} ${record.id} already exists`);
    changes.push({ entity, id: record.id, kind: "created" });
  };
}

/**
 * Replaces a record; NotFoundError when it is gone. With `secret` (its column and new value),
 * a new value is a rotation.
 */
function replacing<R extends { id: string }, Row extends pg.QueryResultRow>(
  entity: RecordEntity,
  table: Table<R, Row>,
  record: R,
  unique: Readonly<Record<string, string>>,
  secret: { readonly column: string; readonly value: string } | null,
): WriteBody<void> {
  return async (db, changes) => {
    let kind: ChangeRow["kind"] = "changed";
    if (secret !== null) {
      const old = await db.query<{ secret: string }>(
        `select ${secret.column} as secret from ${table.name} where id = $1 for update`,
        [record.id],
      );
      const before = old.rows[0];
      if (before === undefined) throw new NotFoundError(`no ${entity} ${record.id}`);
      if (before.secret !== secret.value) kind = "rotated";
    }
    const replaced = await updateOne(db, table, record).catch(rethrowAs(unique));
    if (!replaced) throw new NotFoundError(`no ${entity} ${record.id}`);
    changes.push({ entity, id: record.id, kind });
  };
}

const AGENT_UNIQUE = { agents_token_hash_key: "another agent already has this token" };
const clientUnique = (c: ClientRecord) => ({ clients_username_key: `username ${c.username} is taken` });

export const addAgent = (a: AgentRecord) => adding("agent", AGENTS, a, AGENT_UNIQUE);
export const replaceAgent = (a: AgentRecord) =>
  replacing("agent", AGENTS, a, AGENT_UNIQUE, { column: "token_hash", value: a.tokenHash });
export const addClient = (c: ClientRecord) => adding("client", CLIENTS, c, clientUnique(c));
export const replaceClient = (c: ClientRecord) =>
  replacing("client", CLIENTS, c, clientUnique(c), { column: "password_hash", value: c.passwordHash });

/** The class of the advisory locks that order writers of one virtual host (two-key lock space). */
const MAPPING_LOCK_CLASS = 0x6d6170; // "map"

/**
 * Writers of mappings with the same location and virtual host take turns. The exclusion
 * constraint alone would still refuse the second of two overlapping writers, but two inserts
 * that each see the other's uncommitted row wait for each other, and PostgreSQL breaks that
 * deadlock only after deadlock_timeout (1 s). Taking turns, the second finds the first
 * committed and is refused at once.
 */
function takingTurns(m: MappingRecord, body: WriteBody<void>): WriteBody<void> {
  return async (db, changes) => {
    await db.query("select pg_advisory_xact_lock($1, hashtext($2 || '/' || lower($3)))", [
      MAPPING_LOCK_CLASS,
      m.location,
      m.virtualHost,
    ]);
    await body(db, changes);
  };
}

export const addMapping = (m: MappingRecord) => takingTurns(m, adding("mapping", MAPPINGS, m, {}));
export const replaceMapping = (m: MappingRecord) =>
  takingTurns(m, replacing("mapping", MAPPINGS, m, {}, null));

/** Deletes a record; resolves whether there was one. */
export function deleting(entity: RecordEntity, id: string): WriteBody<boolean> {
  const table = { agent: AGENTS, client: CLIENTS, mapping: MAPPINGS }[entity].name;
  return async (db, changes) => {
    const r = await db.query(`delete from ${table} where id = $1`, [id]);
    if (r.rowCount !== 1) return false;
    changes.push({ entity, id, kind: "deleted" });
    return true;
  };
}

export function settingAdminToken(hash: string): WriteBody<void> {
  return async (db, changes) => {
    await db.query(
      "insert into settings (name, value) values ($1, $2) on conflict (name) do update set value = excluded.value",
      [ADMIN_TOKEN_SETTING, hash],
    );
    changes.push({ entity: "settings", id: ADMIN_TOKEN_SETTING, kind: "changed" });
  };
}

/** Last-seen times and addresses, the last note of a record winning; gone records are skipped. */
export function notingUsage(notes: readonly UsageNote[]): WriteBody<void> {
  const last = new Map<string, UsageNote>();
  for (const n of notes) last.set(`${n.kind}:${n.id}`, n);
  const targets = [
    ["agent", "agents", "last_seen_at"],
    ["client", "clients", "last_used_at"],
  ] as const;
  return async (db, changes) => {
    for (const [kind, table, seen] of targets) {
      const list = [...last.values()].filter((n) => n.kind === kind);
      if (list.length === 0) continue;
      const r = await db.query<{ id: string }>(
        `update ${table} t set ${seen} = u.at, last_address = u.address
           from unnest($1::text[], $2::text[], $3::text[]) as u(id, at, address)
          where t.id = u.id returning t.id`,
        [list.map((n) => n.id), list.map((n) => n.at), list.map((n) => n.address)],
      );
      for (const row of r.rows) changes.push({ entity: kind, id: row.id, kind: "seen" });
    }
  };
}

/** The whole configuration replaced, checked as a whole first; the admin token stays. */
export function importing(config: ConfigData): WriteBody<void> {
  return async (db, changes) => {
    checkConfig(config);
    // writers wait for the import, so that no write slips between its read and its delete;
    // readers (catch-up rounds) do not
    await db.query("lock table agents, clients, mappings in exclusive mode");
    const named = async (entity: RecordEntity, table: string, after: readonly { id: string }[]) => {
      const old = new Set((await db.query<{ id: string }>(`select id from ${table}`)).rows.map((r) => r.id));
      const next = new Set(after.map((r) => r.id));
      for (const id of old) if (!next.has(id)) changes.push({ entity, id, kind: "deleted" });
      for (const id of next) changes.push({ entity, id, kind: old.has(id) ? "changed" : "created" });
    };
    await named("agent", "agents", config.agents);
    await named("client", "clients", config.clients);
    await named("mapping", "mappings", config.mappings);
    await db.query("delete from mappings");
    await db.query("delete from clients");
    await db.query("delete from agents");
    await insertMany(db, AGENTS, config.agents);
    await insertMany(db, CLIENTS, config.clients);
    await insertMany(db, MAPPINGS, config.mappings);
  };
}

/**
 * Bumps the configuration version, names the changes and NOTIFYs the new version (delivered at
 * commit). The version row stays locked until commit, so versions commit in order.
 */
export async function recordChanges(
  db: pg.ClientBase,
  changes: readonly ChangeRow[],
  origin: string,
): Promise<number> {
  const r = await db.query<{ version: string }>(
    "update config_version set version = version + 1 returning version",
  );
  const version = Number(r.rows[0]?.version);
  await db.query(
    `insert into config_changes (version, entity, entity_id, kind, origin)
     select $1, e, i, k, $5 from unnest($2::text[], $3::text[], $4::text[]) as u(e, i, k)`,
    [version, changes.map((c) => c.entity), changes.map((c) => c.id), changes.map((c) => c.kind), origin],
  );
  await db.query("select pg_notify($1, $2)", [CHANGE_CHANNEL, String(version)]);
  if (version % PRUNE_EVERY === 0)
    await db.query("delete from config_changes where version <= $1", [version - KEEP_VERSIONS]);
  return version;
}
