/**
 * How a relay learns, within a second, that another relay changed the configuration. Every
 * write bumps a version in the database and `NOTIFY`s it (the payload is the version number,
 * never the data); this feed wakes on it and runs a catch-up round, which reads what was
 * committed since the version held. A notification can be lost (the listening connection
 * dropped, the server restarted), so:
 *
 * - the listening connection is a dedicated one, not from the pool (a pooled connection would
 *   be handed to a query or closed when idle); when it drops it is dialled again with a capped
 *   backoff, and once it `LISTEN`s again a round runs, catching up on whatever was missed;
 * - a periodic check (default every 5 s) runs a round anyway: a round that finds the version
 *   unchanged costs one small query.
 *
 * Rounds never overlap: one asked for while one runs is run once after it (so a write that
 * committed during a round is still seen).
 */
import pg from "pg";
import type { Logger } from "../../shared/logger.js";

export interface ChangeFeedOptions {
  /** Settings of the listening connection (the pool's, with its own application_name). */
  readonly connection: pg.ClientConfig;
  /** The channel to LISTEN on. */
  readonly channel: string;
  /** One catch-up round: read what changed since the version held and apply it. */
  readonly round: () => Promise<void>;
  /** The version held, to skip a notification of a version already applied. */
  readonly version: () => number;
  /** ms between two checks of the version besides the notifications (default 5000). */
  readonly checkIntervalMs?: number;
  /** Cap of the delay between two dials of a dropped listening connection, ms (default 5000). */
  readonly reconnectMaxMs?: number;
  readonly logger: Logger;
}

/** First delay before dialling a dropped listening connection again, ms; doubles per failure. */
const RECONNECT_BASE_MS = 100;

type FeedState = "new" | "listening" | "reconnecting" | "closed";

export class ChangeFeed {
  readonly #o: ChangeFeedOptions;
  readonly #log: Logger;
  #state: FeedState = "new";
  #client: pg.Client | null = null;
  #reconnectTimer: NodeJS.Timeout | null = null;
  #checkTimer: NodeJS.Timeout | null = null;
  #reconnectDelay = RECONNECT_BASE_MS;
  /** Whether the last round reached the database. */
  #roundOk = false;
  #running: Promise<void> | null = null;
  #queued: Promise<void> | null = null;
  /** Rounds and dials that failed since the last success, for one log line per outage. */
  #failures = 0;

  constructor(o: ChangeFeedOptions) {
    this.#o = o;
    this.#log = o.logger.child({ component: "change-feed" });
  }

  /** True while the listening connection is up and the last round reached the database. */
  get healthy(): boolean {
    return this.#state === "listening" && this.#roundOk;
  }

  /** The server process of the listening connection (`pg_stat_activity.pid`), or null. */
  get listenerPid(): number | null {
    const pid = (this.#client as (pg.Client & { processID?: number }) | null)?.processID;
    return typeof pid === "number" ? pid : null;
  }

  /** Dials the listening connection and loads the configuration; rejects when either fails. */
  async start(): Promise<void> {
    if (this.#state !== "new") throw new Error("the change feed was started already");
    this.#client = await this.#listen();
    this.#state = "listening";
    await this.catchUp();
    const every = this.#o.checkIntervalMs ?? 5_000;
    this.#checkTimer = setInterval(() => {
      this.catchUp().catch(() => undefined); // logged by the round
    }, every);
    this.#checkTimer.unref();
  }

  /** Resolves once a round that started after this call has finished. */
  catchUp(): Promise<void> {
    if (this.#state === "closed") return Promise.resolve();
    if (this.#running === null) {
      this.#running = this.#runRound().finally(() => {
        this.#running = null;
      });
      return this.#running;
    }
    this.#queued ??= this.#running
      .catch(() => undefined)
      .then(() => {
        this.#queued = null;
        return this.catchUp();
      });
    return this.#queued;
  }

  async close(): Promise<void> {
    if (this.#state === "closed") return;
    this.#state = "closed";
    if (this.#checkTimer) clearInterval(this.#checkTimer);
    if (this.#reconnectTimer) clearTimeout(this.#reconnectTimer);
    const client = this.#client;
    this.#client = null;
    await this.#running?.catch(() => undefined);
    await client?.end().catch(() => undefined);
  }

  /** A method, so that the state is read again after an await. */
  #isClosed(): boolean {
    return this.#state === "closed";
  }

  async #runRound(): Promise<void> {
    try {
      await this.#o.round();
      if (!this.#roundOk && this.#failures > 0) this.#log.info("configuration database reachable again");
      this.#roundOk = true;
      this.#failures = 0;
    } catch (err) {
      this.#roundOk = false;
      if (this.#failures++ === 0)
        this.#log.warn({ err }, "cannot catch up with the configuration database; serving what is held");
      throw err;
    }
  }

  /** A new connection that LISTENs; notifications and its failure are wired. */
  async #listen(): Promise<pg.Client> {
    const client = new pg.Client(this.#o.connection);
    client.on("error", (err) => this.#dropped(client, err));
    client.on("end", () => this.#dropped(client, null));
    client.on("notification", (n) => {
      if (n.channel !== this.#o.channel) return;
      const version = Number(n.payload);
      // a payload that is not a number still means "something changed"
      if (Number.isSafeInteger(version) && version <= this.#o.version()) return;
      this.catchUp().catch(() => undefined);
    });
    try {
      await client.connect();
      await client.query(`LISTEN ${pg.escapeIdentifier(this.#o.channel)}`);
    } catch (err) {
      client.removeAllListeners("end");
      await client.end().catch(() => undefined);
      throw err;
    }
    return client;
  }

  #dropped(client: pg.Client, err: Error | null): void {
    if (client !== this.#client || this.#state === "closed") return;
    this.#client = null;
    this.#state = "reconnecting";
    this.#log.warn({ err }, "the listening connection to the configuration database dropped; dialling again");
    client.end().catch(() => undefined);
    this.#scheduleReconnect();
  }

  #scheduleReconnect(): void {
    const delay = this.#reconnectDelay;
    this.#reconnectDelay = Math.min(delay * 2, this.#o.reconnectMaxMs ?? 5_000);
    this.#reconnectTimer = setTimeout(() => void this.#reconnect(), delay);
    this.#reconnectTimer.unref();
  }

  async #reconnect(): Promise<void> {
    this.#reconnectTimer = null;
    if (this.#state === "closed") return;
    let client: pg.Client;
    try {
      client = await this.#listen();
    } catch (err) {
      if (this.#isClosed()) return;
      if (this.#failures++ === 0)
        this.#log.warn({ err }, "cannot reach the configuration database; serving what is held");
      this.#scheduleReconnect();
      return;
    }
    if (this.#isClosed()) {
      await client.end().catch(() => undefined);
      return;
    }
    this.#client = client;
    this.#state = "listening";
    this.#reconnectDelay = RECONNECT_BASE_MS;
    this.#log.info("listening to the configuration database again; catching up");
    // whatever was notified while nobody listened is read now
    this.catchUp().catch(() => undefined);
  }
}
