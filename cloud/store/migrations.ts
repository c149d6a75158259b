/**
 * The database schema as numbered migrations, applied at start in order, each in its own
 * transaction and recorded in `underpass_migrations`. They run under a session-level advisory
 * lock (`pg_advisory_lock`), so relays that start at the same moment on an empty database wait
 * for one another and each migration runs once. A migration, once released, is never edited:
 * a change is a new one.
 */
import type pg from "pg";
import { StoreError } from "../../shared/errors.js";
import type { Logger } from "../../shared/logger.js";

export interface Migration {
  readonly version: number;
  readonly name: string;
  readonly sql: string;
}

/** The key of the advisory lock: "underpas" in ASCII, as a positive bigint. */
export const MIGRATION_LOCK_KEY = "8461811136750182771";

/** The channel `NOTIFY` wakes relays on; the payload is the new configuration version. */
export const CHANGE_CHANNEL = "underpass_config";

export const MIGRATIONS: readonly Migration[] = [
  {
    version: 1,
    name: "configuration and its change feed",
    sql: `
      -- equality on text inside a GiST exclusion constraint needs btree_gist's operator classes
      create extension if not exists btree_gist;

      create table settings (
        name text primary key,
        value text not null
      );

      -- times are the ISO 8601 text the records carry, kept as given so that an export
      -- restored and exported again is the same document; nothing queries them by time.
      -- ord keeps the order records were added in, which lists show.
      create table agents (
        id text primary key,
        ord bigint generated always as identity,
        name text not null,
        location text not null,
        token_hash text not null constraint agents_token_hash_key unique,
        created_at text not null,
        last_seen_at text,
        last_address text
      );

      create table clients (
        id text primary key,
        ord bigint generated always as identity,
        name text not null,
        location text not null,
        username text not null constraint clients_username_key unique,
        password_hash text not null,
        created_at text not null,
        last_used_at text,
        last_address text
      );

      create table mappings (
        id text primary key,
        ord bigint generated always as identity,
        virtual_host text not null,
        virtual_start integer not null,
        virtual_end integer not null,
        internal_host text not null,
        internal_start integer not null,
        internal_end integer not null,
        location text not null,
        protocol text not null constraint mappings_protocol check (protocol in ('tcp', 'ftp')),
        description text not null,
        created_at text not null,
        updated_at text not null,
        constraint mappings_virtual_ports check (virtual_start between 1 and 65535 and virtual_end between virtual_start and 65535),
        constraint mappings_internal_ports check (internal_start between 1 and 65535 and internal_end between internal_start and 65535),
        -- two mappings of a location may not both match a SOCKS destination: the database
        -- refuses the second of two racing writers itself, whichever relay they run in
        constraint mappings_no_overlap exclude using gist (
          location with =,
          lower(virtual_host) with =,
          int4range(virtual_start, virtual_end, '[]') with &&
        )
      );

      -- the change feed: every write bumps the one version row in its transaction and names
      -- what it touched. The row lock on config_version is held until commit, so versions
      -- commit in order and a relay that has read version n has seen every change up to n.
      create table config_version (
        only_row boolean primary key default true constraint config_version_one_row check (only_row),
        version bigint not null
      );
      insert into config_version (version) values (0);

      create table config_changes (
        version bigint not null,
        entity text not null constraint config_changes_entity check (entity in ('settings', 'agent', 'client', 'mapping')),
        entity_id text not null,
        kind text not null constraint config_changes_kind check (kind in ('created', 'changed', 'deleted', 'rotated', 'seen')),
        -- the store that wrote it, so that its relay does not act twice on its own change
        origin text not null,
        at timestamptz not null default now()
      );
      create index config_changes_version on config_changes (version);
    `,
  },
  {
    version: 2,
    name: "audit trail",
    sql: `
      create table audit_events (
        seq bigint generated always as identity primary key,
        time timestamptz not null,
        event text not null,
        client_id text,
        client text,
        agent_id text,
        agent text,
        mapping_id text,
        -- the whole event as appended, seq aside
        body jsonb not null
      );
      create index audit_events_time on audit_events (time);
      create index audit_events_event on audit_events (event, seq);
      create index audit_events_client on audit_events (client_id, seq);
      create index audit_events_agent on audit_events (agent_id, seq);
      create index audit_events_mapping on audit_events (mapping_id, seq);
    `,
  },
  {
    version: 3,
    name: "agents: single-instance flag",
    sql: `
      -- a single-instance agent's tunnels come from one agent process at a time
      alter table agents add column single_instance boolean not null default false;
    `,
  },
  {
    version: 4,
    name: "relay membership",
    sql: `
      -- one row per running relay, written by the relay itself: registered at start, its
      -- heartbeat every second, deleted on a clean stop. Liveness is judged on the database's
      -- clock (heartbeat_at against now()), so relays whose clocks differ agree on it.
      create table relays (
        id text primary key,
        -- the tunnel URL agents should use; null when the relay has none to offer
        tunnel_url text,
        -- where peers reach its admin API; null when it has none
        admin_url text,
        -- the addresses it listens on: {"tunnel": "host:port", "socks": …, "admin": …}
        addresses jsonb not null,
        version text not null,
        started_at timestamptz not null,
        heartbeat_at timestamptz not null,
        agents integer not null default 0,
        connections integer not null default 0
      );
      create index relays_heartbeat on relays (heartbeat_at);
    `,
  },
  {
    version: 5,
    name: "FTP across relays",
    sql: `
      -- what an FTP control connection on one relay lets a data connection or a BIND's PORT do
      -- on another (cluster/shared-ftp-expectations.ts). Each row names the relay that holds
      -- its control connection; a row counts only while that relay's lease runs, so a relay
      -- that crashed leaves nothing valid behind. Times are the database's own clock.
      create table ftp_relay_leases (
        relay_id text primary key,
        alive_until timestamptz not null
      );

      -- a passive data port a 227/229 announced: for one owner (SOCKS client), once, briefly
      create table ftp_data_expectations (
        owner text not null,
        port integer not null,
        relay_id text not null,
        control_id text not null,
        -- host names and addresses the data CONNECT may name, canonical
        hosts text[] not null,
        mapping_id text not null,
        internal_host text not null,
        internal_port integer not null,
        agent_id text not null,
        expires_at timestamptz not null,
        primary key (owner, port)
      );
      create index ftp_data_expectations_control on ftp_data_expectations (control_id);
      create index ftp_data_expectations_relay on ftp_data_expectations (relay_id);

      -- the on-premise listener a SOCKS BIND got: a PORT naming it, on any relay, is no bounce
      create table ftp_bind_listens (
        owner text not null,
        address text not null,
        port integer not null,
        relay_id text not null,
        primary key (owner, address, port)
      );
      create index ftp_bind_listens_relay on ftp_bind_listens (relay_id);

      -- live CONNECTs a BIND arriving at another relay may belong to (resolve.ts resolveBind)
      create table ftp_bind_controls (
        connection_id text primary key,
        relay_id text not null,
        -- null when SOCKS authentication is off: then remote_host tells clients apart
        client_id text,
        remote_host text not null,
        mapping_id text not null,
        location text not null,
        virtual_host text not null,
        virtual_port integer not null,
        internal_host text not null,
        internal_port integer not null,
        agent_id text not null,
        started_at timestamptz not null default clock_timestamp()
      );
      create index ftp_bind_controls_client on ftp_bind_controls (client_id, started_at);
      create index ftp_bind_controls_relay on ftp_bind_controls (relay_id);
    `,
  },
];

/** Brings the database to the newest schema this build knows; returns the versions it applied. */
export async function migrate(client: pg.Client, logger: Logger): Promise<number[]> {
  const newest = Math.max(...MIGRATIONS.map((m) => m.version));
  await client.query("select pg_advisory_lock($1::bigint)", [MIGRATION_LOCK_KEY]);
  try {
    await client.query(`
      create table if not exists underpass_migrations (
        version integer primary key,
        name text not null,
        applied_at timestamptz not null default now()
      )`);
    const done = new Set(
      (await client.query<{ version: number }>("select version from underpass_migrations")).rows.map(
        (r) => r.version,
      ),
    );
    const ahead = [...done].filter((v) => v > newest);
    if (ahead.length > 0) {
      throw new StoreError(
        `the database schema is at version ${Math.max(...ahead)}, newer than this relay knows (${newest}); upgrade the relay`,
      );
    }
    const applied: number[] = [];
    for (const m of MIGRATIONS) {
      if (done.has(m.version)) continue;
      try {
        await client.query("begin");
        await client.query(m.sql);
        await client.query("insert into underpass_migrations (version, name) values ($1, $2)", [
          m.version,
          m.name,
        ]);
        await client.query("commit");
      } catch (err) {
        await client.query("rollback").catch(() => undefined);
        throw new StoreError(
          `database migration ${m.version} (${m.name}) failed: ${err instanceof Error ? err.message : String(err)}`,
          { cause: err },
        );
      }
      logger.info({ migration: m.version, name: m.name }, "database migrated");
      applied.push(m.version);
    }
    return applied;
  } finally {
    await client.query("select pg_advisory_unlock($1::bigint)", [MIGRATION_LOCK_KEY]).catch(() => undefined);
  }
}
