/** Live SOCKS streams, for `GET/DELETE /v1/connections` and for cutting off revoked access. */
import { randomBytes } from "node:crypto";
import type { Socket } from "node:net";
import { normalizeHost } from "../../shared/net/host.js";
import { abortSocket } from "../../shared/net/socket-abort.js";
import { RESET_CODE, type ResetCode } from "../../shared/tunnel/constants.js";
import type { MuxStream } from "../../shared/tunnel/mux-stream.js";

export interface LiveConnection
  extends Omit<ConnectionInfo, "bytesUp" | "bytesDown" | "startedAt" | "ageMs"> {
  readonly startedAt: Date;
  readonly stream: MuxStream;
  readonly socket: Socket;
  /** The control connection of an `"ftp"` mapping: idle while its transfers run (idle-sweep.ts). */
  readonly ftpControl?: boolean;
}

export interface ConnectionInfo {
  readonly id: string;
  readonly kind: "connect" | "bind" | "check";
  readonly clientId: string | null;
  readonly clientName: string | null;
  readonly mappingId: string;
  readonly location: string;
  readonly virtualHost: string;
  readonly virtualPort: number;
  readonly internalHost: string;
  readonly internalPort: number;
  readonly agentId: string;
  readonly remoteAddress: string;
  /** Bytes from the client towards the internal target. */
  readonly bytesUp: number;
  /** Bytes from the internal target towards the client. */
  readonly bytesDown: number;
  readonly startedAt: string;
  readonly ageMs: number;
}

/**
 * A connection past its authentication and before its splice (resolving, opening, a BIND
 * waiting for its peer): revoking its client or its mapping must reach it as well as the live
 * ones, or an OPEN still pending when the client is deleted would complete with `0x00`.
 */
export interface PendingAccess {
  readonly clientId: string | null;
  /** Set once the destination resolved to a mapping. */
  readonly mappingId: string | null;
  /** The client or the mapping that allowed it was deleted or changed: refuse it now. */
  revoke(reason: string): void;
}

export class LiveConnections {
  readonly #live = new Map<string, LiveConnection>();
  readonly #pending = new Set<PendingAccess>();
  /** Who waits for a live connection to go (a BIND for its control connection), by id. */
  readonly #watchers = new Map<string, Set<() => void>>();
  /** Bumped by every revocation: a connection that saw it move re-checks before its reply. */
  #revision = 0;

  newId(): string {
    return `cn_${randomBytes(8).toString("hex")}`;
  }

  add(c: LiveConnection): void {
    this.#live.set(c.id, c);
  }

  /** Off the list (its bytes are published when its splice closes: cloud/socks/splice.ts). */
  remove(id: string): void {
    if (!this.#live.delete(id)) return;
    const watchers = this.#watchers.get(id);
    if (!watchers) return;
    this.#watchers.delete(id);
    for (const gone of watchers) gone();
  }

  /** Call `gone` once when the live connection `id` leaves the list; returns what cancels. */
  whenGone(id: string, gone: () => void): () => void {
    if (!this.#live.has(id)) {
      queueMicrotask(gone);
      return () => {};
    }
    let set = this.#watchers.get(id);
    if (!set) this.#watchers.set(id, (set = new Set()));
    set.add(gone);
    return () => {
      set.delete(gone);
      if (set.size === 0 && this.#watchers.get(id) === set) this.#watchers.delete(id);
    };
  }

  /** Follow a connection until its splice (or its end); returns what stops following it. */
  watch(access: PendingAccess): () => void {
    this.#pending.add(access);
    return () => {
      this.#pending.delete(access);
    };
  }

  /** Changes with every revocation (killByClient, killByMapping). */
  get revision(): number {
    return this.#revision;
  }

  /** Connections between authentication and splice. */
  get pendingCount(): number {
    return this.#pending.size;
  }

  get size(): number {
    return this.#live.size;
  }

  /** Bytes carried so far by the connections still live. */
  liveBytes(): { up: number; down: number } {
    let up = 0;
    let down = 0;
    for (const c of this.#live.values()) {
      up += c.stream.bytesOut;
      down += c.stream.bytesIn;
    }
    return { up, down };
  }

  /** Each live connection's location and bytes so far, up and down (metrics, when scraped). */
  eachLiveBytes(visit: (location: string, up: number, down: number) => void): void {
    for (const c of this.#live.values()) visit(c.location, c.stream.bytesOut, c.stream.bytesIn);
  }

  /**
   * The live CONNECT a BIND of this client belongs to: its newest to `host` when there is
   * one, else its newest of all. A client is its id, or its address when authentication is off.
   */
  controlFor(clientId: string | null, remoteAddress: string, host: string): LiveConnection | undefined {
    const wanted = normalizeHost(host);
    let newest: LiveConnection | undefined;
    let newestToHost: LiveConnection | undefined;
    for (const c of this.#live.values()) {
      if (c.kind !== "connect") continue;
      if (
        clientId !== null
          ? c.clientId !== clientId
          : c.clientId !== null || hostOf(c.remoteAddress) !== remoteAddress
      ) {
        continue;
      }
      if (!newest || c.startedAt >= newest.startedAt) newest = c;
      if (
        normalizeHost(c.virtualHost) === wanted &&
        (!newestToHost || c.startedAt >= newestToHost.startedAt)
      ) {
        newestToHost = c;
      }
    }
    return newestToHost ?? newest;
  }

  list(): ConnectionInfo[] {
    const now = Date.now();
    return [...this.#live.values()].map((c) => ({
      id: c.id,
      kind: c.kind,
      clientId: c.clientId,
      clientName: c.clientName,
      mappingId: c.mappingId,
      location: c.location,
      virtualHost: c.virtualHost,
      virtualPort: c.virtualPort,
      internalHost: c.internalHost,
      internalPort: c.internalPort,
      agentId: c.agentId,
      remoteAddress: c.remoteAddress,
      bytesUp: c.stream.bytesOut,
      bytesDown: c.stream.bytesIn,
      startedAt: c.startedAt.toISOString(),
      ageMs: now - c.startedAt.getTime(),
    }));
  }

  kill(id: string): boolean {
    const c = this.#live.get(id);
    if (!c) return false;
    this.#cut(c, "connection closed by an administrator");
    return true;
  }

  /** Reset a connection that carried nothing for too long (RESET `TIMEOUT`). */
  expire(c: LiveConnection, reason: string): void {
    if (this.#live.get(c.id) !== c) return;
    this.#cut(c, reason, RESET_CODE.TIMEOUT);
  }

  /** Every live connection, for a sweep. */
  each(visit: (c: LiveConnection) => void): void {
    for (const c of [...this.#live.values()]) visit(c);
  }

  killByMapping(mappingId: string): number {
    return this.#killWhere((c) => c.mappingId === mappingId, "mapping changed or deleted");
  }

  killByClient(clientId: string): number {
    return this.#killWhere((c) => c.clientId === clientId, "client deleted");
  }

  #killWhere(
    pred: (c: { clientId: string | null; mappingId: string | null }) => boolean,
    reason: string,
  ): number {
    this.#revision++;
    let n = 0;
    for (const p of [...this.#pending]) {
      if (pred(p)) {
        this.#pending.delete(p);
        p.revoke(reason);
        n++;
      }
    }
    for (const c of [...this.#live.values()]) {
      if (pred(c)) {
        this.#cut(c, reason);
        n++;
      }
    }
    return n;
  }

  #cut(c: LiveConnection, reason: string, code: ResetCode = RESET_CODE.CANCELLED): void {
    this.remove(c.id);
    c.stream.reset(code, reason);
    abortSocket(c.socket);
  }
}

/** The host of `host:port` (an IPv6 host keeps its colons). */
function hostOf(address: string): string {
  return address.slice(0, address.lastIndexOf(":"));
}
