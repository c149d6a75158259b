/**
 * Live CONNECTs written to the database (`ftp_bind_controls`) so that a SOCKS BIND that lands
 * on another relay finds the control connection it belongs to. Written from the relay's own
 * events (a connection opened, closed) and so off the data path: a CONNECT's reply never waits
 * for the database. A BIND follows its control connection by several round trips (greeting,
 * login, TYPE); `find` may still look twice more, briefly, for one written a moment too late.
 * Rows count while their relay's lease runs (relay-lease.ts).
 */
import type pg from "pg";
import type { Logger } from "../../shared/logger.js";
import { normalizeHost, unmapIPv4 } from "../../shared/net/host.js";
import type { RelayEvents, SocksClosed, SocksOpened } from "../events.js";
import type { BindControl, RemoteBindControls } from "../socks/bind-controls.js";
import { leaseRuns, type RelayLease } from "./relay-lease.js";

/** Looks of `find` after the first, and the pause before each, in ms. */
const FIND_RETRIES = [100, 300] as const;
/**
 * Writes of this table waiting for the database at most: past it (the database slow or away) a
 * connection is not published, and only a BIND on another relay misses it.
 */
const MAX_PENDING_WRITES = 1_000;
/** How often a BIND waiting on another relay's control connection checks it is still there, in ms. */
const GONE_POLL_MS = 2_000;

interface ControlRow {
  readonly connection_id: string;
  readonly location: string;
  readonly mapping_id: string;
  readonly virtual_host: string;
  readonly virtual_port: number;
  readonly internal_host: string;
  readonly internal_port: number;
  readonly agent_id: string;
}

export class SharedBindControls implements RemoteBindControls {
  readonly #pool: pg.Pool;
  readonly #relayId: string;
  readonly #log: Logger;
  /** Live connections by id: what was published, and its last write, which a delete waits for. */
  readonly #written = new Map<string, { readonly opened: SocksOpened; write: Promise<void> }>();
  readonly #stop: Array<() => void> = [];
  /** Inserts and deletes not yet answered. */
  #pending = 0;
  /** Connections not published because too many writes were pending. */
  #skipped = 0;

  constructor(o: { pool: pg.Pool; lease: RelayLease; events: RelayEvents; logger: Logger }) {
    this.#pool = o.pool;
    this.#relayId = o.lease.relayId;
    this.#log = o.logger.child({ component: "bind-controls" });
    this.#stop.push(
      o.events.socksOpened.subscribe((m) => this.#opened(m)),
      o.events.socksClosed.subscribe((m) => this.#closed(m)),
      o.lease.onLapse(() => {
        for (const w of this.#written.values()) w.write = w.write.then(() => this.#insert(w.opened));
      }),
    );
  }

  #opened(m: SocksOpened): void {
    if (m.grant !== "connect") return;
    if (this.#pending >= MAX_PENDING_WRITES) {
      if (this.#skipped++ % MAX_PENDING_WRITES === 0) {
        this.#log.warn(
          { pending: this.#pending, skipped: this.#skipped },
          "the database lags: connections are not published for BINDs on other relays",
        );
      }
      return;
    }
    this.#written.set(m.connectionId, { opened: m, write: this.#insert(m) });
  }

  #insert(m: SocksOpened): Promise<void> {
    return this.#write(
      `insert into ftp_bind_controls (connection_id, relay_id, client_id, remote_host, mapping_id, location,
         virtual_host, virtual_port, internal_host, internal_port, agent_id)
       values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) on conflict (connection_id) do nothing`,
      [
        m.connectionId,
        this.#relayId,
        m.clientId,
        normalizeHost(unmapIPv4(m.remoteAddress)),
        m.mappingId,
        m.location,
        normalizeHost(m.virtualHost),
        m.virtualPort,
        m.internalHost,
        m.internalPort,
        m.agentId,
      ],
      "could not publish a connection for BINDs on other relays",
    );
  }

  #closed(m: SocksClosed): void {
    const written = this.#written.get(m.connectionId);
    if (!written) return;
    this.#written.delete(m.connectionId);
    void written.write.then(() =>
      this.#write(
        "delete from ftp_bind_controls where connection_id = $1",
        [m.connectionId],
        "could not remove a closed connection; its relay's lease ends it",
      ),
    );
  }

  /** One write, counted while pending; a failure is logged with `failed`, never thrown. */
  #write(sql: string, values: unknown[], failed: string): Promise<void> {
    this.#pending++;
    return this.#pool.query(sql, values).then(
      () => {
        this.#pending--;
      },
      (err: unknown) => {
        this.#pending--;
        this.#log.warn({ err: String(err) }, failed);
      },
    );
  }

  async find(
    clientId: string | null,
    remoteAddress: string,
    host: string,
    patient: boolean,
  ): Promise<BindControl | undefined> {
    for (let i = 0; ; i++) {
      const found = await this.#findOnce(
        clientId,
        normalizeHost(unmapIPv4(remoteAddress)),
        normalizeHost(host),
      );
      const pause = patient ? FIND_RETRIES[i] : undefined;
      if (found || pause === undefined) return found;
      await new Promise((resolve) => setTimeout(resolve, pause));
    }
  }

  async #findOnce(
    clientId: string | null,
    remoteHost: string,
    host: string,
  ): Promise<BindControl | undefined> {
    let row: ControlRow | undefined;
    try {
      row = (
        await this.#pool.query<ControlRow>(
          `select connection_id, location, mapping_id, virtual_host, virtual_port, internal_host, internal_port, agent_id
             from ftp_bind_controls c
            where relay_id <> $1
              and (case when $2::text is null then client_id is null and remote_host = $3 else client_id = $2 end)
              and ${leaseRuns("c")}
            order by virtual_host = $4 desc, started_at desc
            limit 1`,
          [this.#relayId, clientId, remoteHost, host],
        )
      ).rows[0];
    } catch (err) {
      this.#log.warn({ err: String(err) }, "could not look for a BIND's connection on other relays");
      return undefined;
    }
    if (!row) return undefined;
    return {
      id: row.connection_id,
      location: row.location,
      mappingId: row.mapping_id,
      virtualHost: row.virtual_host,
      virtualPort: row.virtual_port,
      internalHost: row.internal_host,
      internalPort: row.internal_port,
      agentId: row.agent_id,
    };
  }

  whenGone(control: BindControl, gone: () => void): () => void {
    let checking = false;
    let over = false;
    const timer = setInterval(() => {
      if (checking || over) return;
      checking = true;
      this.#pool
        .query(`select 1 from ftp_bind_controls c where connection_id = $1 and ${leaseRuns("c")}`, [
          control.id,
        ])
        .then(
          (r) => {
            if (r.rowCount === 0 && !over) {
              over = true;
              clearInterval(timer);
              gone();
            }
          },
          // the database away says nothing about the connection: keep waiting (the BIND's own timeout bounds it)
          () => undefined,
        )
        .finally(() => {
          checking = false;
        });
    }, GONE_POLL_MS);
    timer.unref();
    return () => {
      over = true;
      clearInterval(timer);
    };
  }

  close(): void {
    for (const stop of this.#stop.splice(0)) stop();
  }
}
