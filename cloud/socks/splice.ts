/**
 * The last stage of every carried connection (SOCKS CONNECT, BIND's peer, FTP active-mode
 * data): listed among the live connections, published as opened, spliced socket to stream
 * (through a filter for an FTP control channel) and, once both sides are done, taken off the
 * list and published as closed with the bytes each way. One object per connection: it is the
 * list entry and the pipe's options at once.
 */
import type { Socket } from "node:net";
import type { UnderpassError } from "../../shared/errors.js";
import type { Logger } from "../../shared/logger.js";
import { type PipeFilter, type PipeOptions, pipeSocketStream } from "../../shared/net/pipe.js";
import type { MuxStream } from "../../shared/tunnel/mux-stream.js";
import type { ConnectionGrant, RelayEvents } from "../events.js";
import type { BufferReservation } from "../limits/buffer-budget.js";
import type { MappingRecord } from "../store/store.js";
import type { Tunnel } from "../tunnel/registry.js";
import type { Principal } from "./authenticate.js";
import type { LiveConnection, LiveConnections } from "./connections.js";

export interface SpliceDeps {
  readonly connections: LiveConnections;
  readonly events: RelayEvents;
  readonly logger: Logger;
}

/** What is carried, between whom. */
export interface Carriage {
  readonly grant: ConnectionGrant;
  readonly who: Principal;
  readonly mapping: MappingRecord;
  /** The destination as the client named it (BIND: its connection's). */
  readonly virtualHost: string;
  readonly virtualPort: number;
  /** The far end on premises (BIND: the peer that connected). */
  readonly internalHost: string;
  readonly internalPort: number;
  readonly tunnel: Tunnel;
  readonly stream: MuxStream;
  readonly socket: Socket;
  /** The client's end, as `socket.remoteAddress`/`remotePort` (active mode: where it was dialled). */
  readonly remoteAddress: string;
  readonly remotePort: number;
  /** From the complete request to the success reply, in ms; null where no request preceded. */
  readonly openMs: number | null;
  /** Its place in the buffer budget (cloud/limits/buffer-budget.ts), given back at its close. */
  readonly reservation: BufferReservation;
  /** What the connection counts under (admission.ts), given back at its close; none for a BIND's peer. */
  readonly admission?: { closed(): void };
}

/** A filter that is told when its connection is over. */
export interface SpliceFilter extends PipeFilter {
  closed(): void;
}

/** Start carrying; `early` are the bytes the client sent after its request. */
export function splice(
  deps: SpliceDeps,
  c: Carriage,
  early: Buffer,
  filterFor: ((connectionId: string) => SpliceFilter) | null = null,
): LiveConnection {
  const carried = new CarriedConnection(deps, c, early, filterFor);
  deps.connections.add(carried);
  carried.published(c);
  // before the pipe: the stream's early bytes are credited through the budget too
  c.reservation.attach(c.stream);
  pipeSocketStream(c.socket, c.stream, carried);
  carried.early = undefined; // sent: not kept for the connection's life
  return carried;
}

class CarriedConnection implements LiveConnection, PipeOptions {
  readonly id: string;
  readonly kind: "connect" | "bind";
  readonly clientId: string | null;
  readonly clientName: string | null;
  readonly mappingId: string;
  readonly location: string;
  readonly virtualHost: string;
  readonly virtualPort: number;
  readonly internalHost: string;
  readonly internalPort: number;
  readonly agentId: string;
  readonly #startedMs = Date.now();
  readonly #remoteHost: string;
  readonly #remotePort: number;
  readonly stream: MuxStream;
  readonly socket: Socket;
  early: Buffer | undefined;
  readonly filter: SpliceFilter | undefined;
  readonly ftpControl: boolean;
  readonly #deps: SpliceDeps;
  readonly #grant: ConnectionGrant;
  readonly #reservation: BufferReservation;
  readonly #admission: { closed(): void } | undefined;

  constructor(
    deps: SpliceDeps,
    c: Carriage,
    early: Buffer,
    filterFor: ((connectionId: string) => SpliceFilter) | null,
  ) {
    this.#deps = deps;
    this.#grant = c.grant;
    this.#reservation = c.reservation;
    this.#admission = c.admission;
    this.id = deps.connections.newId();
    this.kind = c.grant === "bind" || c.grant === "ftp-active-data" ? "bind" : "connect";
    this.clientId = c.who.clientId;
    this.clientName = c.who.clientName;
    this.mappingId = c.mapping.id;
    this.location = c.mapping.location;
    this.virtualHost = c.virtualHost;
    this.virtualPort = c.virtualPort;
    this.internalHost = c.internalHost;
    this.internalPort = c.internalPort;
    this.agentId = c.tunnel.agentId;
    this.#remoteHost = c.remoteAddress;
    this.#remotePort = c.remotePort;
    this.stream = c.stream;
    this.socket = c.socket;
    this.early = early;
    this.filter = filterFor?.(this.id);
    this.ftpControl = c.grant === "connect" && c.mapping.protocol === "ftp";
  }

  get remoteAddress(): string {
    return `${this.#remoteHost}:${this.#remotePort}`;
  }
  get startedAt(): Date {
    return new Date(this.#startedMs);
  }

  published(c: Carriage): void {
    const opened = this.#deps.events.socksOpened;
    if (!opened.active) return;
    opened.publish({
      relayId: opened.relayId,
      connectionId: this.id,
      grant: c.grant,
      remoteAddress: c.remoteAddress,
      remotePort: c.remotePort,
      clientId: this.clientId,
      clientName: this.clientName,
      location: this.location,
      mappingId: this.mappingId,
      virtualHost: this.virtualHost,
      virtualPort: this.virtualPort,
      internalHost: this.internalHost,
      internalPort: this.internalPort,
      agentId: this.agentId,
      tunnelId: c.tunnel.id,
      streamId: this.stream.id,
      openMs: c.openMs,
    });
  }

  onClose(outcome: { error: UnderpassError | null; localError: Error | null }): void {
    this.#deps.connections.remove(this.id);
    this.#reservation.release();
    this.#admission?.closed();
    this.filter?.closed();
    const broke = outcome.error ?? outcome.localError;
    if (broke) this.#deps.logger.debug({ connectionId: this.id, err: broke.message }, "connection broke");
    const closed = this.#deps.events.socksClosed;
    if (!closed.active) return;
    closed.publish({
      relayId: closed.relayId,
      connectionId: this.id,
      grant: this.#grant,
      location: this.location,
      mappingId: this.mappingId,
      agentId: this.agentId,
      bytesUp: this.stream.bytesOut,
      bytesDown: this.stream.bytesIn,
      durationMs: Date.now() - this.#startedMs,
      error: outcome.error?.code ?? null,
      clientError: outcome.localError?.message ?? null,
    });
  }
}
