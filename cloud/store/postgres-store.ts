/**
 * The store of several relays: one PostgreSQL database (`UNDERPASS_DATABASE_URL`), through
 * `pg` (node-postgres: the driver with LISTEN/NOTIFY on a plain client, a pool, and TLS options
 * passed straight to Node's tls).
 *
 * Writes go to the database, each in one transaction that also bumps the configuration version
 * and names what it touched (the change feed, cluster/change-feed.ts); a write resolves once
 * it is committed and this relay's snapshot holds it. Reads are answered from that in-memory
 * snapshot, which every relay brings up to date within a second of any relay's write, and
 * which keeps serving while the database is away: then writes fail with
 * `StoreUnavailableError` (503) and `health()` says so.
 *
 * Uniqueness (ids, token hashes, usernames) and overlapping mappings are refused by the
 * database's own constraints, so two relays racing each other cannot both succeed. Overlaps
 * are an exclusion constraint (btree_gist) rather than serialisable transactions: it holds for
 * every writer without retry loops, and it needs no lock on the table.
 */
import { randomBytes } from "node:crypto";
import pg from "pg";
import { StoreError, UnderpassError } from "../../shared/errors.js";
import type { Logger } from "../../shared/logger.js";
import { ChangeFeed } from "../cluster/change-feed.js";
import { type ConfigChangeListener, diffConfig, type StoreHealth } from "./changes.js";
import { CHANGE_CHANNEL, migrate } from "./migrations.js";
import { refuseOverlap } from "./overlap.js";
import { isRetryable, storeErrorOf } from "./postgres-errors.js";
import { PostgresReader } from "./postgres-reader.js";
import { selectOverlap } from "./postgres-rows.js";
import { connectionConfig, type DatabaseTarget, describeTarget, parseDatabaseUrl } from "./postgres-url.js";
import * as w from "./postgres-writes.js";
import { ConfigSnapshot, SnapshotReads } from "./snapshot.js";
import type {
  AgentRecord,
  ClientRecord,
  ConfigData,
  MappingRecord,
  Store,
  StoreDatabase,
  UsageNote,
} from "./store.js";

export interface PostgresStoreOptions {
  /** `postgres://user:password@host:5432/database[?sslmode=…]` (postgres-url.ts). */
  readonly url: string;
  readonly logger: Logger;
  /** Names this store's writes in the change feed and its connections in pg_stat_activity. */
  readonly origin?: string;
  /** ms between two version checks besides NOTIFY (default 5000). */
  readonly checkIntervalMs?: number;
  /** Cap of the delay between two dials of the dropped listening connection, ms (default 5000). */
  readonly reconnectMaxMs?: number;
  /** Pooled connections for writes and catch-up rounds (default 10). */
  readonly poolSize?: number;
}

/** A dial that has not connected after this long fails, ms (unless the URL sets connect_timeout). */
const CONNECT_TIMEOUT_MS = 5_000;
/** A query without an answer after this long fails and its connection is dropped, ms. */
const QUERY_TIMEOUT_MS = 30_000;
/** Runs of a write the server aborted as a deadlock's victim (or a serialisation failure). */
const RETRIES = 3;
/** Tries of a mapping write whose overlap is gone by the time it is looked up. */
const OVERLAP_TRIES = 3;

export class PostgresStore extends SnapshotReads implements Store {
  /** Names this store's writes in the change rows. */
  readonly origin: string;
  readonly #target: DatabaseTarget;
  readonly #label: string;
  readonly #log: Logger;
  readonly #o: PostgresStoreOptions;
  #pool: pg.Pool | null = null;
  #feed: ChangeFeed | null = null;
  readonly #reader: PostgresReader;
  readonly #listeners = new Set<ConfigChangeListener>();
  #state: "new" | "opening" | "open" | "closed" = "new";
  readonly #writes = new Set<Promise<unknown>>();

  constructor(o: PostgresStoreOptions) {
    super();
    this.#o = o;
    this.#target = parseDatabaseUrl(o.url);
    this.#label = describeTarget(this.#target);
    this.origin = o.origin ?? `st_${randomBytes(6).toString("hex")}`;
    this.#log = o.logger.child({ component: "postgres-store", database: this.#label, origin: this.origin });
    this.#reader = new PostgresReader(this.origin);
  }

  /** The pool, for the audit trail that lives in the same database; open the store first. */
  get pool(): pg.Pool {
    if (this.#pool === null) throw new StoreError("the PostgreSQL store is not open");
    return this.#pool;
  }

  get database(): StoreDatabase {
    return this;
  }

  /** The server process that LISTENs for this store, or null while it is being dialled. */
  get listenerPid(): number | null {
    return this.#feed?.listenerPid ?? null;
  }

  async open(): Promise<void> {
    if (this.#state !== "new") throw new StoreError(`store ${this.#label} was already opened`);
    this.#state = "opening";
    const base = connectionConfig(this.#target, { connectTimeoutMs: CONNECT_TIMEOUT_MS });
    const name = (what: string): string => `${base.application_name} ${what}`.slice(0, 63);
    try {
      await this.#migrate({ ...base, application_name: name(`migrate ${this.origin}`) });
      const pool = new pg.Pool({
        ...base,
        application_name: name(this.origin),
        max: this.#o.poolSize ?? 10,
        query_timeout: QUERY_TIMEOUT_MS,
      });
      // an idle pooled connection that the server closes must not crash the relay
      pool.on("error", (err) => this.#log.warn({ err }, "an idle database connection failed"));
      this.#pool = pool;
      this.#feed = new ChangeFeed({
        connection: { ...base, application_name: name(`listen ${this.origin}`) },
        channel: CHANGE_CHANNEL,
        round: () => this.#round(),
        version: () => this.#reader.version,
        checkIntervalMs: this.#o.checkIntervalMs,
        reconnectMaxMs: this.#o.reconnectMaxMs,
        logger: this.#log,
      });
      await this.#feed.start();
    } catch (err) {
      await this.#shutdown();
      this.#state = "closed";
      throw storeErrorOf(err, "opening the store", this.#label);
    }
    this.#state = "open";
    const { agents, clients, mappings } = this.snapshot.data;
    this.#log.info(
      {
        version: this.#reader.version,
        agents: agents.length,
        clients: clients.length,
        mappings: mappings.length,
      },
      "store loaded",
    );
  }

  async close(): Promise<void> {
    if (this.#state === "closed") return;
    this.#state = "closed";
    await Promise.allSettled([...this.#writes]);
    await this.#shutdown();
  }

  onChange(listener: ConfigChangeListener): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  health(): StoreHealth {
    return {
      state: this.#feed?.healthy ? "available" : "unavailable",
      version: this.#reader.version,
    };
  }

  // -- writes ------------------------------------------------------------------------------

  setAdminTokenHash(hash: string): Promise<void> {
    return this.#write("setting the admin token", w.settingAdminToken(hash));
  }

  addAgent(agent: AgentRecord): Promise<void> {
    return this.#write("adding an agent", w.addAgent(agent));
  }

  replaceAgent(agent: AgentRecord): Promise<void> {
    return this.#write("replacing an agent", w.replaceAgent(agent));
  }

  deleteAgent(id: string): Promise<boolean> {
    return this.#write(`deleting agent ${id}`, w.deleting("agent", id));
  }

  addClient(client: ClientRecord): Promise<void> {
    return this.#write("adding a client", w.addClient(client));
  }

  replaceClient(client: ClientRecord): Promise<void> {
    return this.#write("replacing a client", w.replaceClient(client));
  }

  deleteClient(id: string): Promise<boolean> {
    return this.#write(`deleting client ${id}`, w.deleting("client", id));
  }

  addMapping(mapping: MappingRecord): Promise<void> {
    return this.#writeMapping(mapping, "adding a mapping", w.addMapping(mapping));
  }

  replaceMapping(mapping: MappingRecord): Promise<void> {
    return this.#writeMapping(mapping, "replacing a mapping", w.replaceMapping(mapping));
  }

  deleteMapping(id: string): Promise<boolean> {
    return this.#write(`deleting mapping ${id}`, w.deleting("mapping", id));
  }

  noteUsage(notes: readonly UsageNote[]): Promise<void> {
    return this.#write("noting when agents and clients were last seen", w.notingUsage(notes));
  }

  importConfig(config: ConfigData): Promise<void> {
    return this.#write("importing the configuration", w.importing(config));
  }

  // -- the write path ----------------------------------------------------------------------

  /** A mapping write; an overlap is answered with the mapping in the way, as the file store does. */
  async #writeMapping(mapping: MappingRecord, what: string, body: w.WriteBody<void>): Promise<void> {
    for (let attempt = 1; ; attempt++) {
      try {
        return await this.#write(what, body);
      } catch (err) {
        if (!(err instanceof w.OverlapRefused)) throw err;
      }
      // the conflicting mapping is committed (the constraint waited for it): read it
      let other: MappingRecord | undefined;
      try {
        other = await selectOverlap(this.pool, mapping);
      } catch (err) {
        throw storeErrorOf(err, what, this.#label);
      }
      if (other !== undefined) refuseOverlap([other], mapping);
      if (attempt >= OVERLAP_TRIES)
        throw new StoreError(`${what}: the overlapping mapping kept changing; try again`);
    }
  }

  /**
   * Runs `body` in a transaction; when it names changes, the version is bumped, the changes
   * recorded and NOTIFY sent in the same transaction. Resolves once the snapshot holds it.
   */
  #write<T>(what: string, body: w.WriteBody<T>): Promise<T> {
    if (this.#state !== "open")
      return Promise.reject(
        new StoreError(`store ${this.#label} is ${this.#state === "closed" ? "closed" : "not open"}`),
      );
    const run = this.#transact(what, body);
    this.#writes.add(run);
    const forget = (): void => void this.#writes.delete(run);
    run.then(forget, forget);
    return run;
  }

  async #transact<T>(what: string, body: w.WriteBody<T>): Promise<T> {
    for (let attempt = 1; ; attempt++) {
      try {
        return await this.#transactOnce(what, body);
      } catch (err) {
        if (!(err instanceof StoreError && isRetryable(err.cause)) || attempt >= RETRIES) throw err;
        this.#log.debug(
          { err, attempt },
          "the database aborted a write to break a deadlock; running it again",
        );
      }
    }
  }

  async #transactOnce<T>(what: string, body: w.WriteBody<T>): Promise<T> {
    let version = 0;
    let result: T;
    try {
      result = await this.#withConnection(async (db) => {
        await db.query("begin");
        try {
          const changes: w.ChangeRow[] = [];
          const done = await body(db, changes);
          if (changes.length > 0) version = await w.recordChanges(db, changes, this.origin);
          await db.query("commit");
          return done;
        } catch (err) {
          // a rollback that fails leaves the connection in doubt: it is thrown, and dropped
          await db.query("rollback");
          throw err;
        }
      });
    } catch (err) {
      throw err instanceof w.OverlapRefused ? err : storeErrorOf(err, what, this.#label);
    }
    if (version > 0) {
      // the answer comes after this relay serves it (read your writes)
      await this.#feed
        ?.catchUp()
        .catch((err: unknown) =>
          this.#log.warn({ err, version }, "a write is committed but not yet in this relay's snapshot"),
        );
    }
    return result;
  }

  /**
   * A pooled connection for `use`. While it is checked out nobody else listens for its
   * failure, so this does (an unheard 'error' would end the process); it goes back to the pool
   * only after a success or a refusal of ours (a coded error, with its transaction rolled back),
   * and is dropped after anything else.
   */
  async #withConnection<T>(use: (db: pg.PoolClient) => Promise<T>): Promise<T> {
    const db = await this.pool.connect();
    let failed: Error | undefined;
    const onError = (err: Error): void => {
      failed = err;
    };
    db.on("error", onError);
    try {
      return await use(db);
    } catch (err) {
      if (!(err instanceof UnderpassError || err instanceof w.OverlapRefused))
        failed ??= err instanceof Error ? err : new Error(String(err));
      throw err;
    } finally {
      db.off("error", onError);
      db.release(failed);
    }
  }

  // -- catching up -------------------------------------------------------------------------

  /** One round of the change feed: apply what was committed since, then tell the listeners. */
  async #round(): Promise<void> {
    const read = await this.#withConnection((db) => this.#reader.read(db));
    if (read === null) return;
    const before = this.snapshot.data;
    this.snapshot = new ConfigSnapshot(read.data);
    if (this.#state !== "open") return; // the first load tells nobody
    const changes = diffConfig(before, this.snapshot.data, read.isLocal, read.touched);
    if (changes.length === 0) return;
    this.#log.debug({ version: read.version, changes: changes.length }, "configuration changes applied");
    for (const listener of this.#listeners) {
      try {
        listener({ version: read.version, changes });
      } catch (err) {
        this.#log.error({ err }, "a configuration change listener failed");
      }
    }
  }

  async #migrate(config: pg.ClientConfig): Promise<void> {
    const client = new pg.Client(config);
    client.on("error", () => undefined); // a failure shows in the query that meets it
    await client.connect();
    try {
      const applied = await migrate(client, this.#log);
      if (applied.length > 0) this.#log.info({ applied }, "database schema brought up to date");
    } finally {
      await client.end().catch(() => undefined);
    }
  }

  async #shutdown(): Promise<void> {
    await this.#feed?.close();
    this.#feed = null;
    const pool = this.#pool;
    this.#pool = null;
    await pool?.end().catch(() => undefined);
  }
}
