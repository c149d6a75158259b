/**
 * The data connections an FTP-aware mapping has seen announced and will let through, like a
 * NAT's FTP helper: for one client, one port, a short time, once. A data CONNECT matches when
 * it names the announced port and a host the client may use for it: the virtual host of the
 * control connection, the address the relay announced in its rewritten 227, or the relay's
 * own address (what Python's ftplib under proxychains sends).
 *
 * `FtpExpectations` is what the relay code uses; `FtpDataExpectations` below keeps them in this
 * process (one relay, the file store); several relays share them through their database
 * (cluster/shared-ftp-expectations.ts), so that a data CONNECT or a PORT arriving at another
 * relay than the control connection's finds what that one announced.
 */
import { normalizeHost, unmapIPv4 } from "../../shared/net/host.js";
import type { MappingRecord } from "../store/store.js";

export interface DataExpectation {
  /** Who may use it (see `ownerKey`). */
  readonly owner: string;
  /** The live control connection that announced it. */
  readonly controlId: string;
  /** The port the server announced and the client connects to. */
  readonly port: number;
  /** Host names and addresses the client may name, canonical. */
  readonly hosts: ReadonlySet<string>;
  readonly mapping: MappingRecord;
  readonly internalHost: string;
  readonly internalPort: number;
  /** The agent that carries the control connection. */
  readonly agentId: string;
  readonly expiresAt: number;
}

/** How long an announced passive port stays open for its client, in ms. */
export const DATA_EXPECTATION_TTL_MS = 60_000;

/** Most expectations one client may hold at once; the oldest go first. */
export const MAX_PER_OWNER = 64;

/** One key per SOCKS client: its id, or its address when authentication is off. */
export function ownerKey(clientId: string | null, remoteAddress: string): string {
  return clientId ?? `anon:${normalizeHost(unmapIPv4(remoteAddress))}`;
}

/**
 * Where a relay keeps what its FTP control connections announced. Each method answers at once
 * when it is all in this process (no promise to wait for), or through a promise when it is
 * shared with other relays.
 */
export interface FtpExpectations {
  /** Open a data port; resolved once a data CONNECT on any relay finds it. */
  add(e: DataExpectation): Promise<void> | undefined;
  /**
   * The expectation a data CONNECT to `host:port` by `owner` fulfils, removed so it serves once
   * (on every relay). `ownAddress` is the relay address the SOCKS connection came in on.
   */
  take(
    owner: string,
    host: string,
    port: number,
    ownAddress: string,
  ): Promise<DataExpectation | undefined> | DataExpectation | undefined;
  /** Forget what a control connection announced (it closed). */
  dropControl(owner: string, controlId: string): void;
  /**
   * A SOCKS BIND of this client listens at `address:port`: a PORT naming it is no bounce.
   * Resolves (when shared) once every relay knows; the function returned forgets it.
   */
  noteBindListen(owner: string, address: string, port: number): Promise<() => void> | (() => void);
  isBindListen(owner: string, address: string, port: number): Promise<boolean> | boolean;
}

/** The expectations of one relay, in its memory. */
export class FtpDataExpectations implements FtpExpectations {
  /** owner → port → expectation */
  readonly #byOwner = new Map<string, Map<number, DataExpectation>>();
  /** owner → `addr|port` of BIND listeners the client obtained itself (SOCKS BIND). */
  readonly #bindListens = new Map<string, Set<string>>();

  add(e: DataExpectation): undefined {
    let ports = this.#byOwner.get(e.owner);
    if (!ports) this.#byOwner.set(e.owner, (ports = new Map()));
    ports.delete(e.port);
    ports.set(e.port, e);
    const now = Date.now();
    for (const [port, x] of ports) {
      if (ports.size <= MAX_PER_OWNER && x.expiresAt > now) break;
      ports.delete(port);
    }
    return undefined;
  }

  take(owner: string, host: string, port: number, ownAddress: string): DataExpectation | undefined {
    const ports = this.#byOwner.get(owner);
    const e = ports?.get(port);
    if (!ports || !e) return undefined;
    if (e.expiresAt <= Date.now()) {
      ports.delete(port);
      return undefined;
    }
    const h = normalizeHost(unmapIPv4(host));
    if (!e.hosts.has(h) && h !== normalizeHost(unmapIPv4(ownAddress))) return undefined;
    ports.delete(port);
    if (ports.size === 0) this.#byOwner.delete(owner);
    return e;
  }

  dropControl(owner: string, controlId: string): void {
    const ports = this.#byOwner.get(owner);
    if (!ports) return;
    for (const [port, e] of ports) if (e.controlId === controlId) ports.delete(port);
    if (ports.size === 0) this.#byOwner.delete(owner);
  }

  noteBindListen(owner: string, address: string, port: number): () => void {
    const key = `${normalizeHost(unmapIPv4(address))}|${port}`;
    let set = this.#bindListens.get(owner);
    if (!set) this.#bindListens.set(owner, (set = new Set()));
    set.add(key);
    return () => {
      set.delete(key);
      if (set.size === 0 && this.#bindListens.get(owner) === set) this.#bindListens.delete(owner);
    };
  }

  isBindListen(owner: string, address: string, port: number): boolean {
    return this.#bindListens.get(owner)?.has(`${normalizeHost(unmapIPv4(address))}|${port}`) ?? false;
  }
}
