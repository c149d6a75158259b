/**
 * Revocation that reaches a connection still being set up. A SOCKS connection is followed
 * (`LiveConnections.watch`) from its authentication to its splice, so that deleting or
 * rotating its client, or deleting or changing its mapping, refuses it at once, whatever it
 * waits for. The store lookups before it was followed (credentials, mapping) could have raced
 * with such a change: when any revocation happened since the connection began, it checks again
 * before its success reply, while followed, so no change can fall between the two.
 *
 * A refused connection gets `0x02` (not allowed by ruleset): the rule that allowed it is gone,
 * as for a client that asks for a destination no mapping covers.
 */
import { AuthError } from "../../shared/errors.js";
import type { MappingRecord, Store } from "../store/store.js";
import { type AuthPolicy, authenticate, type Principal } from "./authenticate.js";
import type { Credentials } from "./codec.js";
import type { LiveConnections, PendingAccess } from "./connections.js";

/**
 * Whether `credentials` still name `who` and `mapping` still leads where it was granted (a
 * change of its description alone does not count, as it resets no connection). Without
 * credentials (authentication off) only the mapping counts.
 */
export async function stillAllowed(
  store: Store,
  policy: AuthPolicy,
  credentials: Credentials | null,
  who: Principal,
  mapping: MappingRecord,
): Promise<boolean> {
  if (credentials !== null) {
    const again = await authenticate(store, policy, credentials);
    if (again instanceof AuthError || again.clientId !== who.clientId) return false;
  }
  const now = await store.getMapping(mapping.id);
  return now !== undefined && sameTarget(now, mapping);
}

function sameTarget(a: MappingRecord, b: MappingRecord): boolean {
  return (
    a.location === b.location &&
    a.virtualHost === b.virtualHost &&
    a.protocol === b.protocol &&
    a.internalHost === b.internalHost &&
    a.virtualPort.start === b.virtualPort.start &&
    a.virtualPort.end === b.virtualPort.end &&
    a.internalPort.start === b.internalPort.start &&
    a.internalPort.end === b.internalPort.end
  );
}

/** One connection followed for revocation from its authentication to its splice. */
export class AccessWatch implements PendingAccess {
  clientId: string | null = null;
  mappingId: string | null = null;
  readonly #connections: LiveConnections;
  readonly #onRevoked: (reason: string) => void;
  /** `LiveConnections.revision` when the connection began, before any store lookup. */
  readonly #revision: number;
  /** Kept until the splice, to check them again after a revocation; then dropped. */
  #credentials: Credentials | null = null;
  #unwatch: (() => void) | null = null;

  constructor(connections: LiveConnections, onRevoked: (reason: string) => void) {
    this.#connections = connections;
    this.#onRevoked = onRevoked;
    this.#revision = connections.revision;
  }

  /** Authenticated: followed from now on. */
  follow(who: Principal, credentials: Credentials | null): void {
    this.clientId = who.clientId;
    this.#credentials = credentials;
    this.#unwatch = this.#connections.watch(this);
  }

  revoke(reason: string): void {
    this.#unwatch = null;
    this.#credentials = null;
    this.#onRevoked(reason);
  }

  /**
   * Before a success reply: true unless a revocation happened since the connection began and
   * its credentials or `mapping` no longer hold.
   */
  async stillAllowed(
    store: Store,
    policy: AuthPolicy,
    who: Principal,
    mapping: MappingRecord,
  ): Promise<boolean> {
    this.mappingId = mapping.id;
    if (this.#connections.revision === this.#revision) return true;
    return stillAllowed(store, policy, this.#credentials, who, mapping);
  }

  /** Spliced (now a live connection, which revocation reaches there) or closed. */
  stop(): void {
    this.#unwatch?.();
    this.#unwatch = null;
    this.#credentials = null;
  }
}
