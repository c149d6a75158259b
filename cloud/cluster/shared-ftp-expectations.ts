/**
 * FTP expectations shared by the relays of a cluster through their database, so that behind a
 * balancer with no affinity a data CONNECT, or a PORT naming a BIND's listener, may land on
 * another relay than the control connection that announced it.
 *
 * - A 227/229's port is written (`ftp_data_expectations`) before the reply reaches the client
 *   (control.ts holds it until `add` resolves): a data CONNECT a moment later on any relay
 *   finds it. Taking it is one `DELETE … RETURNING`, so it serves once in the whole cluster.
 *   The rows of a control connection go when it closes; every row counts only while it is
 *   young (DATA_EXPECTATION_TTL_MS) and its relay's lease runs (relay-lease.ts).
 * - A BIND's listener is written (`ftp_bind_listens`) before the BIND's first reply, so the
 *   PORT that names it passes on the control connection's relay.
 *
 * This relay's own announcements are also kept in memory (expectations.ts), looked up first;
 * the database still decides, so a port taken on another relay is not served again here. When
 * the database is away, a relay serves what it announced itself, as a single relay would.
 */
import type pg from "pg";
import type { Logger } from "../../shared/logger.js";
import { normalizeHost, unmapIPv4 } from "../../shared/net/host.js";
import {
  type DataExpectation,
  FtpDataExpectations,
  type FtpExpectations,
  MAX_PER_OWNER,
} from "../ftp/expectations.js";
import type { MappingRecord } from "../store/store.js";
import { leaseRuns, type RelayLease } from "./relay-lease.js";

interface ExpectationRow {
  readonly owner: string;
  readonly port: number;
  readonly control_id: string;
  readonly hosts: string[];
  readonly mapping_id: string;
  readonly internal_host: string;
  readonly internal_port: number;
  readonly agent_id: string;
  readonly expires_at: Date;
}

export interface SharedFtpExpectationsOptions {
  readonly pool: pg.Pool;
  readonly lease: RelayLease;
  /** The mapping of an expectation another relay wrote (the store's snapshot). */
  readonly mappingOf: (id: string) => Promise<MappingRecord | undefined>;
  readonly logger: Logger;
}

export class SharedFtpExpectations implements FtpExpectations {
  readonly #local = new FtpDataExpectations();
  readonly #pool: pg.Pool;
  readonly #relayId: string;
  readonly #mappingOf: SharedFtpExpectationsOptions["mappingOf"];
  readonly #log: Logger;
  /** Announced here while the database was away: this relay alone can serve them. */
  readonly #unpublished = new Set<string>();
  /** Per control connection, its last write: a removal runs after the writes it follows. */
  readonly #writes = new Map<string, Promise<unknown>>();

  constructor(o: SharedFtpExpectationsOptions) {
    this.#pool = o.pool;
    this.#relayId = o.lease.relayId;
    this.#mappingOf = o.mappingOf;
    this.#log = o.logger.child({ component: "ftp-expectations" });
  }

  add(e: DataExpectation): Promise<void> {
    this.#local.add(e);
    const key = `${e.owner}|${e.port}|${e.controlId}`;
    const written = this.#after(e.controlId, () =>
      this.#pool.query(
        `with up as (
           insert into ftp_data_expectations
             (owner, port, relay_id, control_id, hosts, mapping_id, internal_host, internal_port, agent_id, expires_at)
           values ($1, $2, $3, $4, $5, $6, $7, $8, $9, now() + $10 * interval '1 millisecond')
           on conflict (owner, port) do update set
             relay_id = excluded.relay_id, control_id = excluded.control_id, hosts = excluded.hosts,
             mapping_id = excluded.mapping_id, internal_host = excluded.internal_host,
             internal_port = excluded.internal_port, agent_id = excluded.agent_id,
             expires_at = excluded.expires_at
           returning owner
         )
         delete from ftp_data_expectations
          where owner = $1 and port <> $2 and port not in (
            select port from ftp_data_expectations where owner = $1 and port <> $2
             order by expires_at desc limit ${MAX_PER_OWNER - 1})`,
        [
          e.owner,
          e.port,
          this.#relayId,
          e.controlId,
          [...e.hosts],
          e.mapping.id,
          e.internalHost,
          e.internalPort,
          e.agentId,
          Math.max(0, e.expiresAt - Date.now()),
        ],
      ),
    );
    return written.then(
      () => {
        this.#unpublished.delete(key);
      },
      (err: unknown) => {
        this.#unpublished.add(key);
        throw err;
      },
    );
  }

  async take(
    owner: string,
    host: string,
    port: number,
    ownAddress: string,
  ): Promise<DataExpectation | undefined> {
    const mine = this.#local.take(owner, host, port, ownAddress);
    if (mine) {
      if (this.#unpublished.delete(`${owner}|${port}|${mine.controlId}`)) return mine;
      try {
        const gone = await this.#pool.query(
          "delete from ftp_data_expectations where owner = $1 and port = $2 and control_id = $3 and relay_id = $4",
          [owner, port, mine.controlId, this.#relayId],
        );
        // gone from the database: another relay took it, or announced the port anew (below)
        if (gone.rowCount !== 0) return mine;
      } catch (err) {
        // no other relay can take it either while the database is away
        this.#log.warn(
          { err: String(err), port },
          "could not take a data port in the database; serving it here",
        );
        return mine;
      }
    }
    const h = normalizeHost(unmapIPv4(host));
    const anyHost = h === normalizeHost(unmapIPv4(ownAddress));
    let rows: ExpectationRow[];
    try {
      rows = (
        await this.#pool.query<ExpectationRow>(
          `delete from ftp_data_expectations e
            where owner = $1 and port = $2 and expires_at > now() and ($3 or $4 = any(hosts))
              and ${leaseRuns("e")}
           returning owner, port, control_id, hosts, mapping_id, internal_host, internal_port, agent_id, expires_at`,
          [owner, port, anyHost, h],
        )
      ).rows;
    } catch (err) {
      this.#log.warn({ err: String(err), port }, "could not look up a data port in the database");
      return undefined;
    }
    const row = rows[0];
    if (!row) return undefined;
    const mapping = await this.#mappingOf(row.mapping_id);
    if (!mapping) return undefined;
    return {
      owner: row.owner,
      controlId: row.control_id,
      port: row.port,
      hosts: new Set(row.hosts),
      mapping,
      internalHost: row.internal_host,
      internalPort: row.internal_port,
      agentId: row.agent_id,
      expiresAt: row.expires_at.getTime(),
    };
  }

  dropControl(owner: string, controlId: string): void {
    this.#local.dropControl(owner, controlId);
    // nothing written for it (no PASV/EPSV on this control connection): nothing to remove
    if (!this.#writes.has(controlId)) return;
    for (const key of this.#unpublished) if (key.endsWith(`|${controlId}`)) this.#unpublished.delete(key);
    this.#background(
      this.#after(controlId, () =>
        this.#pool.query("delete from ftp_data_expectations where control_id = $1 and relay_id = $2", [
          controlId,
          this.#relayId,
        ]),
      ),
    );
    this.#forgetWrites(controlId);
  }

  async noteBindListen(owner: string, address: string, port: number): Promise<() => void> {
    const forgetLocal = this.#local.noteBindListen(owner, address, port);
    const a = normalizeHost(unmapIPv4(address));
    const key = `bind:${owner}|${a}|${port}`;
    await this.#after(key, () =>
      this.#pool.query(
        `insert into ftp_bind_listens (owner, address, port, relay_id) values ($1, $2, $3, $4)
         on conflict (owner, address, port) do update set relay_id = excluded.relay_id`,
        [owner, a, port, this.#relayId],
      ),
    ).catch((err: unknown) => {
      this.#log.warn({ err: String(err) }, "could not publish a BIND listener to the other relays");
    });
    return () => {
      forgetLocal();
      this.#background(
        this.#after(key, () =>
          this.#pool.query(
            "delete from ftp_bind_listens where owner = $1 and address = $2 and port = $3 and relay_id = $4",
            [owner, a, port, this.#relayId],
          ),
        ),
      );
      this.#forgetWrites(key);
    };
  }

  async isBindListen(owner: string, address: string, port: number): Promise<boolean> {
    if (this.#local.isBindListen(owner, address, port)) return true;
    try {
      const found = await this.#pool.query(
        `select 1 from ftp_bind_listens b where owner = $1 and address = $2 and port = $3 and ${leaseRuns("b")}`,
        [owner, normalizeHost(unmapIPv4(address)), port],
      );
      return (found.rowCount ?? 0) > 0;
    } catch (err) {
      this.#log.warn({ err: String(err) }, "could not look up a BIND listener in the database");
      return false;
    }
  }

  /** Runs `write` after the earlier writes under `key` (whatever became of them). */
  #after<T>(key: string, write: () => Promise<T>): Promise<T> {
    const next = (this.#writes.get(key) ?? Promise.resolve()).then(write);
    this.#writes.set(
      key,
      next.catch(() => undefined),
    );
    return next;
  }

  /** A removal no one waits for: a failure is logged (the row's lease or age ends it anyway). */
  #background(write: Promise<unknown>): void {
    write.catch((err: unknown) => {
      this.#log.warn({ err: String(err) }, "could not remove an FTP expectation from the database");
    });
  }

  /** The key's chain is dropped once its last write settles (no map entry per closed connection). */
  #forgetWrites(key: string): void {
    const last = this.#writes.get(key);
    void last?.then(() => {
      if (this.#writes.get(key) === last) this.#writes.delete(key);
    });
  }
}
