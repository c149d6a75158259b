/**
 * Bounds on connections that have not proved who they are yet, on one listening port: so many
 * per source address and in all, each with a deadline. A silent peer otherwise holds a
 * descriptor for as long as the protocol waits (an HTTP server waits for headers for minutes),
 * and enough of them fill the process's descriptor table for everyone.
 *
 * `admit` is called on the server's `connection` event, before the protocol reads a byte: a
 * connection over a bound is closed at once. The protocol calls `admitted()` once the peer
 * authenticated; a failed authentication may `holdUntil()` a time, and the slot then stays
 * taken until then even if the peer hangs up (a tarpit a peer cannot leave early to retry).
 */
import type { Socket } from "node:net";
import { KeyedCounter } from "./keyed-counter.js";
import type { LimitHits } from "./limit-hits.js";
import type { LimitName } from "./limit-names.js";
import { sourceKey } from "./source-key.js";

export interface PreauthGuardOptions {
  /** Connections of one source key (source-key.ts) before authentication, at once. */
  readonly perSource: number;
  /** Connections of all sources before authentication, at once. */
  readonly total: number;
  /** A connection still before authentication after this is closed, in ms; 0 for none here. */
  readonly deadlineMs: number;
  readonly names: {
    readonly perSource: LimitName;
    readonly total: LimitName;
    readonly deadline: LimitName | null;
  };
  readonly hits: LimitHits;
  /** The port in words, for log lines ("SOCKS", "tunnel", "admin"). */
  readonly what: string;
}

export class PreauthGuard {
  readonly #o: PreauthGuardOptions;
  readonly #bySource: KeyedCounter;
  /** Live slots by the connection's `address|port`, for a protocol that sees another socket object (TLS). */
  readonly #byPeer = new Map<string, PreauthSlot>();
  #total = 0;

  constructor(options: PreauthGuardOptions) {
    this.#o = options;
    this.#bySource = new KeyedCounter(options.perSource);
  }

  /** Connections counted now (before authentication, or held by a tarpit). */
  get held(): number {
    return this.#total;
  }

  /** Count a new connection, or close it and return null when a bound is reached. */
  admit(socket: Socket): PreauthSlot | null {
    const o = this.#o;
    const key = sourceKey(socket.remoteAddress);
    if (this.#total >= o.total) {
      o.hits.hit(
        o.names.total,
        key,
        o.total,
        `${o.what}: ${o.total} connections before authentication; closed`,
      );
      socket.destroy();
      return null;
    }
    if (!this.#bySource.tryAcquire(key)) {
      o.hits.hit(
        o.names.perSource,
        key,
        o.perSource,
        `${o.what}: ${key} holds ${o.perSource} connections before authentication; closed`,
      );
      socket.destroy();
      return null;
    }
    this.#total++;
    const peer = peerKey(socket);
    const slot = new PreauthSlot(this, socket, key, peer);
    this.#byPeer.set(peer, slot);
    socket.once("close", slot.onSocketClose);
    if (o.deadlineMs > 0) slot.startDeadline(o.deadlineMs);
    return slot;
  }

  /** The slot of the connection `socket` is carried on (the same TCP peer). */
  slotOf(socket: {
    readonly remoteAddress?: string | undefined;
    readonly remotePort?: number | undefined;
  }): PreauthSlot | undefined {
    return this.#byPeer.get(peerKey(socket));
  }

  /** @internal the slot no longer needs to be found by its peer. */
  forget(peer: string, slot: PreauthSlot): void {
    if (this.#byPeer.get(peer) === slot) this.#byPeer.delete(peer);
  }

  /** @internal the slot is given back. */
  release(key: string): void {
    this.#total--;
    this.#bySource.release(key);
  }

  /** @internal a deadline ran out. */
  expired(key: string, socket: Socket): void {
    const o = this.#o;
    if (o.names.deadline) {
      o.hits.hit(
        o.names.deadline,
        key,
        o.deadlineMs,
        `${o.what}: no authentication within ${o.deadlineMs} ms; closed`,
      );
    }
    socket.destroy();
  }
}

function peerKey(s: {
  readonly remoteAddress?: string | undefined;
  readonly remotePort?: number | undefined;
}): string {
  return `${s.remoteAddress ?? ""}|${s.remotePort ?? 0}`;
}

/** One connection's place under its guard's bounds. */
export class PreauthSlot {
  readonly #guard: PreauthGuard;
  readonly #socket: Socket;
  readonly #key: string;
  readonly #peer: string;
  #timer: NodeJS.Timeout | null = null;
  /** Counted until the socket closes (`pre-auth`), no more (`released`), or until `#holdUntil`. */
  #state: "pre-auth" | "released" | "held" = "pre-auth";
  #holdUntil = 0;

  constructor(guard: PreauthGuard, socket: Socket, key: string, peer: string) {
    this.#guard = guard;
    this.#socket = socket;
    this.#key = key;
    this.#peer = peer;
  }

  /** @internal the socket's close listener while the slot counts. */
  readonly onSocketClose = (): void => {
    this.#guard.forget(this.#peer, this);
    this.socketClosed();
  };

  /** The source key the connection counts under. */
  get key(): string {
    return this.#key;
  }

  /** The peer authenticated: it no longer counts here and the deadline is off. */
  admitted(): void {
    this.#stopDeadline();
    // nothing more to do at its close: the slot and its listener go now, not with the socket
    this.#guard.forget(this.#peer, this);
    this.#socket.off("close", this.onSocketClose);
    if (this.#state === "released") return;
    this.#release();
  }

  /**
   * A failed authentication is answered later: the slot stays taken until `at` (Date.now() ms)
   * even if the peer hangs up before, so that hanging up does not buy a faster retry.
   */
  holdUntil(at: number): void {
    if (this.#state === "released") return;
    this.#state = "held";
    this.#holdUntil = Math.max(this.#holdUntil, at);
  }

  /** @internal */
  startDeadline(ms: number): void {
    this.#timer = setTimeout(() => {
      this.#timer = null;
      if (this.#state === "pre-auth") this.#guard.expired(this.#key, this.#socket);
    }, ms);
    this.#timer.unref();
  }

  /** @internal the connection closed. */
  socketClosed(): void {
    this.#stopDeadline();
    if (this.#state === "released") return;
    const left = this.#state === "held" ? this.#holdUntil - Date.now() : 0;
    if (left <= 0) return this.#release();
    setTimeout(() => this.#release(), left).unref();
  }

  #release(): void {
    if (this.#state === "released") return;
    this.#state = "released";
    this.#guard.release(this.#key);
  }

  #stopDeadline(): void {
    if (this.#timer) clearTimeout(this.#timer);
    this.#timer = null;
  }
}
