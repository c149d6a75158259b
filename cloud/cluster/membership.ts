/**
 * Relay membership: which relays make up the cluster. Over the database store each relay keeps
 * a row in `relays` (migration 4): registered at start (an upsert, so a relay that comes back
 * with its id takes its row again), a heartbeat every second with the agents and connections it
 * holds, deleted on a clean stop. A relay whose heartbeat is older than the live bound (5 s) is
 * not live; rows not live for the prune bound (1 h) are deleted by whichever relay sees them.
 * Liveness is judged on the database's clock, so relays whose clocks differ agree on it.
 *
 * The set is read back with every heartbeat, so what `relays()` answers is at most one
 * heartbeat old. While the database cannot be reached the last set read is kept as it was
 * (this relay cannot tell who stopped), and the heartbeat goes on trying.
 *
 * Over the file store there is one relay: `LocalMembership`, the set of itself.
 */
import { randomBytes } from "node:crypto";
import type pg from "pg";
import type { Logger } from "../../shared/logger.js";

/** What a relay says of itself. */
export interface RelaySelf {
  readonly id: string;
  /** The tunnel URL agents should use; null when the relay has none to advertise. */
  readonly tunnelUrl: string | null;
  /** Where peers reach its admin API; null when it has none. */
  readonly adminUrl: string | null;
  /** The addresses it listens on, `host:port` by listener (tunnel, socks, admin). */
  readonly addresses: Readonly<Record<string, string>>;
  readonly version: string;
  /** ISO 8601. */
  readonly startedAt: string;
}

/** What it holds now, sent with each heartbeat. */
export interface RelayLoad {
  readonly agents: number;
  readonly connections: number;
}

/** One relay of the cluster as the membership knows it. */
export interface RelayInfo extends RelaySelf, RelayLoad {
  /** ISO 8601, the database's clock. */
  readonly heartbeatAt: string;
  readonly live: boolean;
}

/** A relay agents may tunnel to: live and with a tunnel URL. */
export interface AdvertisedRelay {
  readonly id: string;
  readonly url: string;
}

export interface Membership {
  readonly selfId: string;
  /** Every registered relay, live or not, the oldest first. */
  relays(): readonly RelayInfo[];
  /** The live relays that have a tunnel URL, by id; this relay always among them when it has one. */
  advertised(): readonly AdvertisedRelay[];
  /** Hears every change of `advertised()`; returns what stops listening. */
  onChange(listener: (relays: readonly AdvertisedRelay[]) => void): () => void;
  /** The secret the relays of the cluster call one another with; null for one relay alone. */
  secret(): string | null;
  start(): Promise<void>;
  close(): Promise<void>;
}

export interface MembershipTimers {
  /** ms between two heartbeats (default 1000). */
  readonly heartbeatMs: number;
  /** A relay whose last heartbeat is older than this is not live, ms (default 5000). */
  readonly liveMs: number;
  /** A row whose last heartbeat is older than this is deleted, ms (default 1 h). */
  readonly pruneMs: number;
}

export const DEFAULT_MEMBERSHIP_TIMERS: MembershipTimers = {
  heartbeatMs: 1_000,
  liveMs: 5_000,
  pruneMs: 3_600_000,
};

/** Same set, in the same order: advertised() is kept sorted by id. */
function sameSet(a: readonly AdvertisedRelay[], b: readonly AdvertisedRelay[]): boolean {
  return a.length === b.length && a.every((r, i) => r.id === b[i]?.id && r.url === b[i]?.url);
}

/** Live relays with a URL, sorted by id, `self` among them even when the database is away. */
function advertisedOf(relays: readonly RelayInfo[], self: RelaySelf): AdvertisedRelay[] {
  const out = new Map<string, AdvertisedRelay>();
  for (const r of relays) if (r.live && r.tunnelUrl !== null) out.set(r.id, { id: r.id, url: r.tunnelUrl });
  if (self.tunnelUrl !== null) out.set(self.id, { id: self.id, url: self.tunnelUrl });
  return [...out.values()].sort((x, y) => (x.id < y.id ? -1 : x.id > y.id ? 1 : 0));
}

/** Shared by both memberships: the listeners and the advertised set they hear. */
abstract class Listened {
  readonly #listeners = new Set<(relays: readonly AdvertisedRelay[]) => void>();
  protected current: readonly AdvertisedRelay[] = [];
  protected abstract readonly log: Logger;

  advertised(): readonly AdvertisedRelay[] {
    return this.current;
  }

  onChange(listener: (relays: readonly AdvertisedRelay[]) => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  protected update(next: readonly AdvertisedRelay[]): void {
    if (sameSet(this.current, next)) return;
    this.current = next;
    this.log.info({ relays: next.map((r) => r.id) }, "the set of live relays changed");
    for (const l of [...this.#listeners]) {
      try {
        l(next);
      } catch (err) {
        this.log.error({ err }, "a relay set listener failed");
      }
    }
  }
}

/** One relay on the file store: the cluster is itself. */
export class LocalMembership extends Listened implements Membership {
  readonly selfId: string;
  readonly #self: RelaySelf;
  readonly #load: () => RelayLoad;
  protected readonly log: Logger;

  constructor(self: RelaySelf, load: () => RelayLoad, logger: Logger) {
    super();
    this.selfId = self.id;
    this.#self = self;
    this.#load = load;
    this.log = logger;
    this.current = advertisedOf([], self);
  }

  relays(): readonly RelayInfo[] {
    return [{ ...this.#self, ...this.#load(), heartbeatAt: new Date().toISOString(), live: true }];
  }

  secret(): string | null {
    return null;
  }

  async start(): Promise<void> {}
  async close(): Promise<void> {}
}

interface RelayRow {
  id: string;
  tunnel_url: string | null;
  admin_url: string | null;
  addresses: Record<string, string>;
  version: string;
  started_at: Date;
  heartbeat_at: Date;
  agents: number;
  connections: number;
  live: boolean;
}

export interface DatabaseMembershipOptions {
  readonly pool: pg.Pool;
  readonly self: RelaySelf;
  readonly load: () => RelayLoad;
  readonly timers?: Partial<MembershipTimers>;
  readonly logger: Logger;
}

/** The relays of a cluster over one PostgreSQL database. */
export class DatabaseMembership extends Listened implements Membership {
  readonly selfId: string;
  readonly #o: DatabaseMembershipOptions;
  readonly #t: MembershipTimers;
  protected readonly log: Logger;
  #relays: readonly RelayInfo[] = [];
  #timer: NodeJS.Timeout | null = null;
  #beat: Promise<void> | null = null;
  #state: "new" | "running" | "closed" = "new";
  /** The heartbeat failed last time: said once, and again when it works. */
  #failing = false;
  #secret: string | null = null;

  constructor(o: DatabaseMembershipOptions) {
    super();
    this.#o = o;
    this.selfId = o.self.id;
    this.#t = { ...DEFAULT_MEMBERSHIP_TIMERS, ...o.timers };
    this.log = o.logger.child({ component: "membership", relayId: o.self.id });
    this.current = advertisedOf([], o.self);
  }

  relays(): readonly RelayInfo[] {
    return this.#relays;
  }

  secret(): string | null {
    return this.#secret;
  }

  /** Registers this relay; a database that cannot take it fails the start. */
  async start(): Promise<void> {
    if (this.#state !== "new") return;
    this.#state = "running";
    this.#secret = await clusterSecret(this.#o.pool);
    await this.#heartbeat();
    if (this.#failing) {
      this.#state = "closed";
      throw new Error("the relay could not register itself in the database");
    }
    this.#schedule();
  }

  /** Stops the heartbeat and deletes this relay's row, so that the others drop it at once. */
  async close(): Promise<void> {
    if (this.#state === "closed") return;
    const wasRunning = this.#state === "running";
    this.#state = "closed";
    if (this.#timer) clearTimeout(this.#timer);
    await this.#beat;
    if (!wasRunning) return;
    await this.#o.pool
      .query("delete from relays where id = $1", [this.selfId])
      .catch((err: unknown) => this.log.warn({ err }, "could not delete this relay's row on stop"));
  }

  #schedule(): void {
    if (this.#state !== "running") return;
    this.#timer = setTimeout(() => {
      this.#beat = this.#heartbeat().finally(() => {
        this.#beat = null;
        this.#schedule();
      });
    }, this.#t.heartbeatMs);
    this.#timer.unref();
  }

  async #heartbeat(): Promise<void> {
    const { pool, self, load } = this.#o;
    const { agents, connections } = load();
    try {
      await pool.query(
        `insert into relays (id, tunnel_url, admin_url, addresses, version, started_at, heartbeat_at, agents, connections)
         values ($1, $2, $3, $4, $5, $6, now(), $7, $8)
         on conflict (id) do update set
           tunnel_url = excluded.tunnel_url, admin_url = excluded.admin_url,
           addresses = excluded.addresses, version = excluded.version,
           started_at = excluded.started_at, heartbeat_at = now(),
           agents = excluded.agents, connections = excluded.connections`,
        [
          self.id,
          self.tunnelUrl,
          self.adminUrl,
          JSON.stringify(self.addresses),
          self.version,
          self.startedAt,
          agents,
          connections,
        ],
      );
      await pool.query("delete from relays where heartbeat_at < now() - $1 * interval '1 millisecond'", [
        this.#t.pruneMs,
      ]);
      const rows = await pool.query<RelayRow>(
        `select *, heartbeat_at >= now() - $1 * interval '1 millisecond' as live
         from relays order by started_at, id`,
        [this.#t.liveMs],
      );
      this.#relays = rows.rows.map(infoOf);
      if (this.#failing) this.log.info("the relay's heartbeat reaches the database again");
      this.#failing = false;
      this.update(advertisedOf(this.#relays, self));
    } catch (err) {
      if (!this.#failing) {
        this.log.warn({ err }, "the relay's heartbeat cannot reach the database; keeping the set it knows");
      }
      this.#failing = true;
    }
  }
}

/** The setting that holds the cluster secret. */
const CLUSTER_SECRET_SETTING = "cluster_secret";

/**
 * The secret relays authenticate to one another with: drawn by the first relay that starts on
 * the database (256 bits), read by the others. It is kept in the clear, as the relays must send
 * it: whoever reads the database could read the whole configuration anyway.
 */
async function clusterSecret(pool: pg.Pool): Promise<string> {
  await pool.query("insert into settings (name, value) values ($1, $2) on conflict (name) do nothing", [
    CLUSTER_SECRET_SETTING,
    `upcl_${randomBytes(32).toString("base64url")}`,
  ]);
  const r = await pool.query<{ value: string }>("select value from settings where name = $1", [
    CLUSTER_SECRET_SETTING,
  ]);
  const value = r.rows[0]?.value;
  if (value === undefined) throw new Error("the cluster secret is missing from the database");
  return value;
}

function infoOf(r: RelayRow): RelayInfo {
  return {
    id: r.id,
    tunnelUrl: r.tunnel_url,
    adminUrl: r.admin_url,
    addresses: r.addresses,
    version: r.version,
    startedAt: r.started_at.toISOString(),
    heartbeatAt: r.heartbeat_at.toISOString(),
    agents: r.agents,
    connections: r.connections,
    live: r.live,
  };
}
