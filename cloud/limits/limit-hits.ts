/**
 * Where a bound that bites is told: one `limitHit` event (metrics and the audit trail follow
 * it) and a warning line, rate-limited per limit so that a peer repeating the offence cannot
 * flood the log (the first line at once, then one summary per period with the count).
 */
import type { Logger } from "../../shared/logger.js";
import type { RelayEvents } from "../events.js";
import type { LimitName } from "./limit-names.js";
import { RateLimited } from "./rate-limited.js";

export class LimitHits {
  readonly #events: Pick<RelayEvents, "limitHit">;
  readonly #log: Logger;
  readonly #lines: RateLimited<LimitName>;

  constructor(events: Pick<RelayEvents, "limitHit">, log: Logger, periodMs: number) {
    this.#events = events;
    this.#log = log;
    this.#lines = new RateLimited({ periodMs }, (limit, suppressed, ms) =>
      log.warn({ limit, suppressed, periodMs: ms }, `${limit}: ${suppressed} more hits in ${ms} ms`),
    );
  }

  /** `key` bit `limit` (whose bound is `max`): `detail` says what was refused or closed. */
  hit(limit: LimitName, key: string, max: number, detail: string): void {
    const ch = this.#events.limitHit;
    if (ch.active) ch.publish({ relayId: ch.relayId, limit, key, max, detail });
    this.#lines.note(limit, () => this.#log.warn({ limit, key, max }, detail));
  }

  close(): void {
    this.#lines.close();
  }
}
