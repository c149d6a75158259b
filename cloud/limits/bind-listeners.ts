/**
 * Listeners on premises (SOCKS BIND, FTP active mode) held at once, per client and per agent.
 * Each holds a port and a descriptor on the agent's host and an entry on the relay until its
 * peer connects, it times out, or its client goes away.
 */
import { LimitExceededError } from "../../shared/errors.js";
import type { RelayBounds } from "./bounds.js";
import { KeyedCounter } from "./keyed-counter.js";
import type { LimitHits } from "./limit-hits.js";
import { LIMIT } from "./limit-names.js";

export class BindListeners {
  readonly #perClient: KeyedCounter;
  readonly #perAgent: KeyedCounter;
  readonly #hits: LimitHits;

  constructor(bounds: Pick<RelayBounds, "bindPerClient" | "bindPerAgent">, hits: LimitHits) {
    this.#perClient = new KeyedCounter(bounds.bindPerClient);
    this.#perAgent = new KeyedCounter(bounds.bindPerAgent);
    this.#hits = hits;
  }

  /**
   * One listener for `client` (its id, or its source address without authentication) on
   * `agentId`: the function that gives it back (once), or the refusal.
   */
  take(client: string, agentId: string): (() => void) | LimitExceededError {
    if (!this.#perClient.tryAcquire(client)) {
      const max = this.#perClient.max;
      this.#hits.hit(LIMIT.BIND_PER_CLIENT, client, max, `BIND: ${client} holds ${max} listeners; refused`);
      return new LimitExceededError(`the client holds ${max} BIND listeners, the relay's limit`);
    }
    if (!this.#perAgent.tryAcquire(agentId)) {
      this.#perClient.release(client);
      const max = this.#perAgent.max;
      this.#hits.hit(
        LIMIT.BIND_PER_AGENT,
        agentId,
        max,
        `BIND: agent ${agentId} holds ${max} listeners; refused`,
      );
      return new LimitExceededError(`the agent holds ${max} BIND listeners, the relay's limit`);
    }
    let given = false;
    return () => {
      if (given) return;
      given = true;
      this.#perClient.release(client);
      this.#perAgent.release(agentId);
    };
  }

  /** Listeners held now by `client`, and on `agentId`. */
  held(client: string, agentId: string): { client: number; agent: number } {
    return { client: this.#perClient.count(client), agent: this.#perAgent.count(agentId) };
  }
}
