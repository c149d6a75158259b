/**
 * The relay's SOCKS5 endpoint (RFC 1928, RFC 1929): one listener, and for each client a
 * ClientConnection (client-connection.ts) that takes it through the stages.
 */
import { createServer, type Server } from "node:net";
import type { Logger } from "../../shared/logger.js";
import type { RelayEvents } from "../events.js";
import type { FtpContext } from "../ftp/control.js";
import type { FtpExpectations } from "../ftp/expectations.js";
import type { BindListeners } from "../limits/bind-listeners.js";
import type { BufferBudget } from "../limits/buffer-budget.js";
import type { SocksGuards } from "../limits/socks-guards.js";
import type { Store } from "../store/store.js";
import type { BindPeers } from "../tunnel/bind-peers.js";
import type { AgentRegistry } from "../tunnel/registry.js";
import type { AuthPolicy } from "./authenticate.js";
import type { RemoteBindControls } from "./bind-controls.js";
import { ClientConnection } from "./client-connection.js";
import type { LiveConnections } from "./connections.js";
import type { SpliceDeps } from "./splice.js";

export interface SocksServerOptions extends AuthPolicy {
  readonly store: Store;
  readonly registry: AgentRegistry;
  readonly connections: LiveConnections;
  readonly events: RelayEvents;
  readonly logger: Logger;
  /** The whole greeting/auth/request exchange must finish within this, in ms. */
  readonly handshakeTimeoutMs: number;
  /** How long the agent may take to reach the internal target, in ms. */
  readonly dialTimeoutMs: number;
  /** How long a BIND listener on premises waits for its peer, in ms. */
  readonly bindTimeoutMs: number;
  readonly bindPeers: BindPeers;
  /** The control connections other relays carry, for a BIND that lands here (none: one relay). */
  readonly bindControls: RemoteBindControls;
  /** Data ports announced on FTP-aware control connections. */
  readonly ftpExpectations: FtpExpectations;
  /** IPv4 address announced in rewritten 227 replies; by default the relay address the client reached. */
  readonly ftpPasvAddress?: string | undefined;
  /** Bounds before and after authentication (cloud/limits/socks-guards.ts). */
  readonly guards: SocksGuards;
  /** Listeners on premises per client and per agent. */
  readonly bindListeners: BindListeners;
  /** Bytes held for clients that have not read them, per client and in all. */
  readonly budget: BufferBudget;
}

/** What every connection of one endpoint shares. */
export interface SocksShared {
  readonly o: SocksServerOptions;
  readonly splice: SpliceDeps;
  readonly ftp: FtpContext;
}

export function createSocksServer(options: SocksServerOptions): Server {
  const spliceDeps: SpliceDeps = {
    connections: options.connections,
    events: options.events,
    logger: options.logger,
  };
  const shared: SocksShared = {
    o: options,
    splice: spliceDeps,
    ftp: {
      expectations: options.ftpExpectations,
      bindPeers: options.bindPeers,
      splice: spliceDeps,
      dialTimeoutMs: options.dialTimeoutMs,
      bindTimeoutMs: options.bindTimeoutMs,
      pasvAddress: options.ftpPasvAddress,
      bindListeners: options.bindListeners,
      budget: options.budget,
    },
  };
  return createServer({ allowHalfOpen: true, noDelay: true }, (socket) => {
    // over a bound before authentication: closed before a byte is read
    const slot = options.guards.preauth.admit(socket);
    if (slot) new ClientConnection(socket, shared, slot).start();
  });
}
