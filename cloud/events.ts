/**
 * What happens in the relay, published once as `node:diagnostics_channel` messages: the life of
 * each SOCKS connection, the FTP control channel's decisions, the agents' tunnels and the admin
 * API's refused tokens. Metrics, the audit log and live views subscribe; the data path only
 * publishes.
 *
 * No subscriber, no cost: a publisher checks `active` before it builds a message. Bytes are
 * counted by the stream itself and published once, when the connection closes.
 *
 * The channels are process-wide (diagnostics_channel names are global) and several relays may
 * share a process (tests do), so every message names its relay and `RelayChannel.subscribe`
 * hears its own relay only. A tool outside the relay may subscribe by name and see them all.
 */
import { randomBytes } from "node:crypto";
import { type Channel, channel, subscribe, unsubscribe } from "node:diagnostics_channel";
import type { ErrorCode } from "../shared/errors.js";
import type { GoAwayCode } from "../shared/tunnel/constants.js";
import type { LimitName } from "./limits/limit-names.js";
import type { Socks5Reply } from "./socks/reply.js";

/** Every message says which relay of the process published it. */
export interface RelayMessage {
  readonly relayId: string;
}

// ---- SOCKS ---------------------------------------------------------------------------------

/** The client's end of a SOCKS connection, as the relay's socket sees it. */
export interface SocksPeer extends RelayMessage {
  readonly remoteAddress: string;
  readonly remotePort: number;
}

/** A TCP connection reached the SOCKS endpoint. */
export interface SocksAccepted extends SocksPeer {
  /** The relay address it reached. */
  readonly localAddress: string;
  readonly localPort: number;
}

/** The client passed method selection and, with a password, RFC 1929 authentication. */
export interface SocksAuthenticated extends SocksPeer {
  readonly method: "password" | "none";
  /** Null for a client without credentials (`UNDERPASS_SOCKS_NO_AUTH`). */
  readonly clientId: string | null;
  readonly clientName: string | null;
  readonly location: string;
}

/** RFC 1929 credentials did not match a client. The password never travels in a message. */
export interface SocksAuthFailed extends SocksPeer {
  readonly username: string;
}

/** The request was read: the handshake (greeting, authentication, request) is over. */
export interface SocksRequested extends SocksPeer {
  /** CMD of the request (RFC 1928 §4): 0x01 CONNECT, 0x02 BIND, 0x03 UDP ASSOCIATE. */
  readonly command: number;
  readonly clientId: string | null;
  readonly location: string;
  /** The destination as the client asked for it. */
  readonly host: string;
  readonly port: number;
  /** From the accepted TCP connection to the complete request, in ms. */
  readonly handshakeMs: number;
}

/** A request no mapping covers (CONNECT), or a BIND with no live connection to belong to. */
export interface SocksDenied extends SocksPeer {
  readonly command: "connect" | "bind";
  readonly clientId: string | null;
  readonly clientName: string | null;
  readonly location: string;
  /** The destination as the client asked for it. */
  readonly host: string;
  readonly port: number;
  /** Up to three mappings nearest to what was asked, `virtualHost:ports` (CONNECT only). */
  readonly nearest: readonly string[];
}

/** A request ended with a failure reply (the denial above included); the client is closed. */
export interface SocksRefused extends SocksPeer {
  readonly reply: Socks5Reply;
  /** The client's location (a reply is only sent once the client authenticated). */
  readonly location: string;
  readonly code: ErrorCode;
  readonly message: string;
}

/** BIND: the agent listens on premises; the first reply names `listen` (`address:port`). */
export interface SocksBindListening extends RelayMessage {
  readonly clientId: string | null;
  readonly clientName: string | null;
  readonly location: string;
  readonly virtualHost: string;
  readonly listen: string;
  readonly agentId: string;
  readonly tunnelId: string;
}

/**
 * How a live connection was granted: `connect` by a mapping, `ftp-data` as a passive port an
 * FTP-aware control connection announced, `bind` as a SOCKS BIND's peer, `ftp-active-data` as
 * an active-mode data connection the relay dialled back (no SOCKS reply of its own).
 */
export type ConnectionGrant = "connect" | "ftp-data" | "bind" | "ftp-active-data";

/** Bytes flow: the success reply went out (for BIND, the second one). */
export interface SocksOpened extends SocksPeer {
  readonly connectionId: string;
  readonly grant: ConnectionGrant;
  readonly clientId: string | null;
  readonly clientName: string | null;
  readonly location: string;
  readonly mappingId: string;
  readonly virtualHost: string;
  readonly virtualPort: number;
  readonly internalHost: string;
  readonly internalPort: number;
  readonly agentId: string;
  readonly tunnelId: string;
  readonly streamId: number;
  /** From the complete request to the success reply, in ms (agent's dial included); null for BIND's peer and dial-backs. */
  readonly openMs: number | null;
}

/** A live connection ended, cleanly or not. */
export interface SocksClosed extends RelayMessage {
  readonly connectionId: string;
  readonly grant: ConnectionGrant;
  readonly location: string;
  readonly mappingId: string;
  readonly agentId: string;
  /** Bytes from the client towards the internal target. */
  readonly bytesUp: number;
  /** Bytes from the internal target towards the client. */
  readonly bytesDown: number;
  readonly durationMs: number;
  /** What broke it on the premises side or in the tunnel (a stream reset); else null. */
  readonly error: ErrorCode | null;
  /** The client's socket failed (`read ECONNRESET`); else null. */
  readonly clientError: string | null;
}

// ---- FTP control channel -------------------------------------------------------------------

/** A 227/229 reply announced a passive port; a 227 was rewritten to name `announced`. */
export interface FtpPassiveRewrite extends RelayMessage {
  readonly connectionId: string;
  readonly port: number;
  /** The IPv4 address the rewritten 227 names; null for a 229 (no address). */
  readonly announced: string | null;
  /** The client asked for it (PASV/EPSV): the port is let through for it. */
  readonly solicited: boolean;
}

/** Active mode: the server reached the agent's listener and the relay dialled the client back. */
export interface FtpActiveDial extends RelayMessage {
  /** The control connection. */
  readonly connectionId: string;
  /** The data connection, once connected. */
  readonly dataConnectionId: string | null;
  readonly clientName: string | null;
  /** The client's own address its PORT/EPRT named, `address:port`. */
  readonly dialBack: string;
  /** The FTP server's end of the data connection on premises. */
  readonly peer: string;
  readonly outcome: "connected" | "failed";
  readonly error: string | null;
}

/** A PORT/EPRT named an address other than the client's own: refused as an FTP bounce. */
export interface FtpBounceRefused extends RelayMessage {
  readonly connectionId: string;
  readonly clientName: string | null;
  readonly verb: "PORT" | "EPRT";
  /** The address the command named, `host:port`. */
  readonly named: string;
  readonly clientAddress: string;
}

// ---- tunnels -------------------------------------------------------------------------------

/** An agent's tunnel passed the hello and joined the registry. */
export interface TunnelConnected extends RelayMessage {
  readonly tunnelId: string;
  readonly agentId: string;
  readonly agentName: string;
  readonly location: string;
  readonly remote: string;
  readonly agentVersion: string;
  /** From the hello; null for an agent that does not send them. */
  readonly hostName: string | null;
  readonly instanceId: string | null;
}

/** A tunnel was refused at the hello (no hello in time, bad hello, version, token). */
export interface TunnelRejected extends RelayMessage {
  readonly tunnelId: string;
  readonly remote: string;
  readonly code: ErrorCode;
  readonly goaway: GoAwayCode;
  readonly reason: string;
}

/** An established tunnel went away. */
export interface TunnelDisconnected extends RelayMessage {
  readonly tunnelId: string;
  readonly agentId: string;
  readonly location: string;
  readonly goaway: GoAwayCode;
  readonly reason: string;
  /** The agent said GOAWAY or the WebSocket closed under us, rather than this relay closing it. */
  readonly byPeer: boolean;
  readonly durationMs: number;
}

/** Where one instance of an agent is connected from (cloud/tunnel/registry.ts `AgentLink`). */
export interface InstanceSeen {
  readonly tunnelId: string;
  readonly remote: string;
  readonly hostName: string | null;
  readonly instanceId: string | null;
}

/**
 * A hello of an agent came from another instance (another instance id, or for an agent that
 * sends none another host) than the tunnels the agent already holds here: its token is in two
 * places. A single-instance agent's second instance is refused.
 */
export interface TunnelSecondInstance extends RelayMessage {
  readonly agentId: string;
  readonly agentName: string;
  readonly location: string;
  /** The new tunnel. */
  readonly tunnel: InstanceSeen;
  /** The instances already connected, the oldest tunnel of each. */
  readonly connected: readonly InstanceSeen[];
  /** The agent is single-instance: the new tunnel got GOAWAY SECOND_INSTANCE. */
  readonly refused: boolean;
}

/** A PONG answered the relay's latest PING. */
export interface TunnelRoundTrip extends RelayMessage {
  readonly tunnelId: string;
  readonly agentId: string;
  readonly rttMs: number;
}

/**
 * An OPEN on a tunnel was answered: OPEN_RESULT came back, or the open failed without one (the
 * tunnel went away, the dial timed out). The admin API's reachability check is not published.
 */
export interface TunnelOpenResult extends RelayMessage {
  readonly tunnelId: string;
  readonly agentId: string;
  readonly location: string;
  /** CONNECT dials on premises; BIND listens there (SOCKS BIND, FTP active mode). */
  readonly kind: "connect" | "bind";
  /** From the OPEN sent to its answer or failure, in ms. */
  readonly openMs: number;
  /** Why it failed; null when the agent connected (CONNECT) or listens (BIND). */
  readonly code: ErrorCode | null;
}

// ---- admin API -----------------------------------------------------------------------------

/** A request to the admin API without a valid bearer token or session (answered 401, or 429 over the bound). */
export interface AdminAuthFailed extends RelayMessage {
  readonly remoteAddress: string;
  /** No or a malformed Authorization header, a token that is not the admin token, or an ended console session. */
  readonly reason: "missing" | "invalid" | "session";
  /** Id of the secret presented (cloud/admin/auth-limit.ts `secretId`, never the secret); null when none was. */
  readonly secretId: string | null;
  /** Over the bound on failed authentications: answered 429 rather than 401. */
  readonly limited: boolean;
}

// ---- TLS -------------------------------------------------------------------------------------

/** The relay's TLS listeners: the tunnel (`wss`) and the admin API (HTTPS). */
export type TlsListenerName = "tunnel" | "admin";
/** What made the relay read its certificates again (cloud/tls-reload.ts). */
export type TlsReloadTrigger = "sighup" | "watch" | "call";

/** A listener's certificate and key were read again: swapped in, or refused and kept. */
export interface TlsReloaded extends RelayMessage {
  readonly listener: TlsListenerName;
  readonly trigger: TlsReloadTrigger;
  /** The new pair serves new connections; false: it could not be used, the old one stays. */
  readonly ok: boolean;
  /** SHA-256 fingerprint of the certificate now served (ok only), `AA:BB:…`. */
  readonly fingerprint: string | null;
  /** Why the new pair was refused (not ok only). */
  readonly error: string | null;
}

// ---- bounds -------------------------------------------------------------------------------

/** A bound on what one peer can make the relay hold bit (cloud/limits/limit-names.ts). */
export interface LimitHit extends RelayMessage {
  readonly limit: LimitName;
  /** Who hit it: a source address, a client, agent or tunnel id, a username (never a metric label). */
  readonly key: string;
  /** The bound, in its unit (connections, listeners, bytes, ms). */
  readonly max: number;
  /** What was refused or closed, in words. */
  readonly detail: string;
}

// ---- the channels --------------------------------------------------------------------------

/** Channel names, stable: tools outside the relay subscribe by them. */
export const CHANNEL = {
  socksAccepted: "underpass:socks:accepted",
  socksAuthenticated: "underpass:socks:authenticated",
  socksAuthFailed: "underpass:socks:auth-failed",
  socksRequested: "underpass:socks:requested",
  socksDenied: "underpass:socks:denied",
  socksRefused: "underpass:socks:refused",
  socksBindListening: "underpass:socks:bind-listening",
  socksOpened: "underpass:socks:opened",
  socksClosed: "underpass:socks:closed",
  ftpPassiveRewrite: "underpass:ftp:passive-rewrite",
  ftpActiveDial: "underpass:ftp:active-dial",
  ftpBounceRefused: "underpass:ftp:bounce-refused",
  tunnelConnected: "underpass:tunnel:connected",
  tunnelRejected: "underpass:tunnel:rejected",
  tunnelDisconnected: "underpass:tunnel:disconnected",
  tunnelSecondInstance: "underpass:tunnel:second-instance",
  tunnelRoundTrip: "underpass:tunnel:round-trip",
  tunnelOpenResult: "underpass:tunnel:open-result",
  adminAuthFailed: "underpass:admin:auth-failed",
  tlsReloaded: "underpass:tls:reloaded",
  limitHit: "underpass:limit:hit",
} as const;

/** The message type of each channel. */
export interface EventMessages {
  socksAccepted: SocksAccepted;
  socksAuthenticated: SocksAuthenticated;
  socksAuthFailed: SocksAuthFailed;
  socksRequested: SocksRequested;
  socksDenied: SocksDenied;
  socksRefused: SocksRefused;
  socksBindListening: SocksBindListening;
  socksOpened: SocksOpened;
  socksClosed: SocksClosed;
  ftpPassiveRewrite: FtpPassiveRewrite;
  ftpActiveDial: FtpActiveDial;
  ftpBounceRefused: FtpBounceRefused;
  tunnelConnected: TunnelConnected;
  tunnelRejected: TunnelRejected;
  tunnelDisconnected: TunnelDisconnected;
  tunnelSecondInstance: TunnelSecondInstance;
  tunnelRoundTrip: TunnelRoundTrip;
  tunnelOpenResult: TunnelOpenResult;
  adminAuthFailed: AdminAuthFailed;
  tlsReloaded: TlsReloaded;
  limitHit: LimitHit;
}
export type EventKey = keyof typeof CHANNEL;

/**
 * Held here for the life of the process: diagnostics_channel keeps channels weakly, and a
 * channel object that is collected forgets its `hasSubscribers`.
 */
const CHANNELS = Object.fromEntries(
  Object.entries(CHANNEL).map(([key, name]) => [key, channel(name)]),
) as Record<EventKey, Channel>;

/** One channel as one relay publishes to it and hears it. */
export class RelayChannel<T extends RelayMessage> {
  readonly name: string;
  readonly relayId: string;
  readonly #channel: Channel;

  constructor(key: EventKey, relayId: string) {
    this.name = CHANNEL[key];
    this.relayId = relayId;
    this.#channel = CHANNELS[key];
  }

  /** Someone listens: only then build and publish a message. */
  get active(): boolean {
    return this.#channel.hasSubscribers;
  }

  publish(message: T): void {
    this.#channel.publish(message);
  }

  /** Hear this relay's messages; returns what unsubscribes. */
  subscribe(onMessage: (message: T) => void): () => void {
    const relayId = this.relayId;
    const listener = (message: unknown): void => {
      if ((message as T).relayId === relayId) onMessage(message as T);
    };
    subscribe(this.name, listener);
    return () => {
      unsubscribe(this.name, listener);
    };
  }
}

/** Every channel, seen from one relay. */
export type RelayEvents = { readonly relayId: string } & {
  readonly [K in EventKey]: RelayChannel<EventMessages[K]>;
};

export function newRelayId(): string {
  return `rl_${randomBytes(6).toString("hex")}`;
}

export function relayEvents(relayId: string = newRelayId()): RelayEvents {
  const channels = Object.fromEntries(
    (Object.keys(CHANNEL) as EventKey[]).map((key) => [key, new RelayChannel(key, relayId)]),
  );
  return { relayId, ...channels } as RelayEvents;
}
