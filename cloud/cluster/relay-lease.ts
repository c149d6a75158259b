/**
 * This relay's lease in the database (`ftp_relay_leases`): what it published for other relays
 * (FTP data ports, BIND listeners, BIND controls) counts only while the lease runs. The relay
 * renews it every third of its length; a relay that crashes stops renewing, and within one
 * lease everything it published stops counting, with no one to clean up after it. Rows of dead
 * leases are swept by whichever relay renews next. A relay that lost the database for longer
 * than a lease finds its lease run out when it is back: it removes its own rows (some may
 * stand for connections that ended meanwhile) and has what is still live published again.
 */
import type pg from "pg";
import type { Logger } from "../../shared/logger.js";

/** How long a lease runs without renewal, in ms. */
export const LEASE_MS = 15_000;

/** SQL that holds for a row of `table` whose relay's lease still runs. */
export function leaseRuns(table: string): string {
  return `exists (select 1 from ftp_relay_leases l where l.relay_id = ${table}.relay_id and l.alive_until > now())`;
}

/** Tables whose rows name the relay that published them. */
const PUBLISHED = ["ftp_data_expectations", "ftp_bind_listens", "ftp_bind_controls"] as const;

export class RelayLease {
  readonly relayId: string;
  readonly #pool: pg.Pool;
  readonly #log: Logger;
  readonly #leaseMs: number;
  #timer: NodeJS.Timeout | null = null;
  #renewing: Promise<void> | null = null;
  #closed = false;
  /** The lease was taken once: a renewal that finds it run out is a lapse. */
  #held = false;
  readonly #onLapse = new Set<() => void>();

  constructor(o: { pool: pg.Pool; relayId: string; logger: Logger; leaseMs?: number }) {
    this.#pool = o.pool;
    this.relayId = o.relayId;
    this.#log = o.logger.child({ component: "relay-lease", relayId: o.relayId });
    this.#leaseMs = o.leaseMs ?? LEASE_MS;
  }

  /** Takes the lease (an error when the database cannot be reached), then keeps renewing it. */
  async open(): Promise<void> {
    await this.#renew();
    this.#timer = setInterval(
      () => {
        this.#renewing ??= this.#renew()
          .catch((err: unknown) => this.#log.warn({ err: String(err) }, "could not renew the relay's lease"))
          .finally(() => {
            this.#renewing = null;
          });
      },
      Math.max(100, Math.floor(this.#leaseMs / 3)),
    );
    this.#timer.unref();
  }

  /**
   * Call `listener` after a renewal that found the lease run out (the database was away for
   * longer than a lease): this relay's rows were removed, and what is still live must be
   * published again. Returns what stops listening.
   */
  onLapse(listener: () => void): () => void {
    this.#onLapse.add(listener);
    return () => this.#onLapse.delete(listener);
  }

  async #renew(): Promise<void> {
    if (this.#closed) return;
    const held = await this.#pool.query<{ runs: boolean }>(
      "select alive_until > now() as runs from ftp_relay_leases where relay_id = $1",
      [this.relayId],
    );
    const lapsed = this.#held && held.rows[0]?.runs !== true;
    if (lapsed) {
      // a row written before the lapse may stand for what ended meanwhile (its delete failed):
      // none of them may count again
      for (const table of PUBLISHED) {
        await this.#pool.query(`delete from ${table} where relay_id = $1`, [this.relayId]);
      }
    }
    await this.#pool.query(
      `insert into ftp_relay_leases (relay_id, alive_until) values ($1, now() + $2 * interval '1 millisecond')
       on conflict (relay_id) do update set alive_until = excluded.alive_until`,
      [this.relayId, this.#leaseMs],
    );
    this.#held = true;
    if (lapsed) {
      this.#log.warn("the relay's lease had run out; what it shares with other relays is published again");
      for (const listener of this.#onLapse) listener();
    }
    // what relays whose lease ran out left behind
    for (const table of PUBLISHED) {
      await this.#pool.query(`delete from ${table} where not ${leaseRuns(table)}`);
    }
    // data ports that were never used (they no longer count either)
    await this.#pool.query("delete from ftp_data_expectations where expires_at < now()");
    await this.#pool.query("delete from ftp_relay_leases where alive_until < now() - interval '1 hour'");
  }

  /** Ends the lease and removes what this relay published; a database that is away is let be. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    if (this.#timer) clearInterval(this.#timer);
    await this.#renewing;
    try {
      for (const table of PUBLISHED)
        await this.#pool.query(`delete from ${table} where relay_id = $1`, [this.relayId]);
      await this.#pool.query("delete from ftp_relay_leases where relay_id = $1", [this.relayId]);
    } catch (err) {
      this.#log.warn({ err: String(err) }, "could not end the relay's lease; it runs out by itself");
    }
  }
}
