/**
 * The relay's bounds on what one peer can make it hold, by name. The names are the values of
 * the `limit` label of `underpass_limit_hits_total`, of the `limit` field of the audit entry
 * `limit.hit` and of the log line written when a bound bites: a fixed set, never a key.
 */
export const LIMIT = {
  /** SOCKS connections of one source address still in their greeting or authentication. */
  SOCKS_PREAUTH_PER_SOURCE: "socks_preauth_per_source",
  /** SOCKS connections of all sources still in their greeting or authentication. */
  SOCKS_PREAUTH_TOTAL: "socks_preauth_total",
  /** A SOCKS client did not finish greeting, authentication and request in time. */
  SOCKS_HANDSHAKE_DEADLINE: "socks_handshake_deadline",
  /** Tunnel-port connections of one source address not yet an admitted tunnel. */
  TUNNEL_PREAUTH_PER_SOURCE: "tunnel_preauth_per_source",
  /** Tunnel-port connections of all sources not yet an admitted tunnel. */
  TUNNEL_PREAUTH_TOTAL: "tunnel_preauth_total",
  /** A tunnel-port connection was not an admitted tunnel in time (upgrade and hello). */
  TUNNEL_PREAUTH_DEADLINE: "tunnel_preauth_deadline",
  /** Admin-port connections of one source address that have not sent a request yet. */
  ADMIN_PREAUTH_PER_SOURCE: "admin_preauth_per_source",
  /** An admin-port connection sent no complete request in time. */
  ADMIN_PREAUTH_DEADLINE: "admin_preauth_deadline",
  /** Metrics-port connections (UNDERPASS_METRICS_LISTEN) of one source that have not sent a request yet. */
  METRICS_PREAUTH_PER_SOURCE: "metrics_preauth_per_source",
  /** A metrics-port connection sent no complete request in time. */
  METRICS_PREAUTH_DEADLINE: "metrics_preauth_deadline",
  /** Authenticated SOCKS connections of one client. */
  SOCKS_CONNECTIONS_PER_CLIENT: "socks_connections_per_client",
  /** Authenticated SOCKS connections of one source address. */
  SOCKS_CONNECTIONS_PER_SOURCE: "socks_connections_per_source",
  /** Failed RFC 1929 authentications of a source address or a username: answers delayed. */
  SOCKS_AUTH_BACKOFF: "socks_auth_backoff",
  /** Failed agent hellos of a source address or a token: answers delayed. */
  AGENT_HELLO_BACKOFF: "agent_hello_backoff",
  /** Failed admin authentications of a source address: answered 429. */
  ADMIN_AUTH_PER_SOURCE: "admin_auth_per_source",
  /** Failed admin authentications presenting one secret (a token or session id): answered 429. */
  ADMIN_AUTH_PER_SECRET: "admin_auth_per_secret",
  /** 429s of the admin API held for their delay, in all: more go out without it. */
  ADMIN_AUTH_HELD: "admin_auth_held",
  /** Live tunnels of one agent. */
  TUNNELS_PER_AGENT: "tunnels_per_agent",
  /** Streams the relay keeps open on one tunnel. */
  TUNNEL_STREAMS: "tunnel_streams",
  /** OPENs waiting for their OPEN_RESULT on one tunnel. */
  TUNNEL_PENDING_OPENS: "tunnel_pending_opens",
  /** BIND listeners on premises (SOCKS BIND, FTP active mode) asked for by one client. */
  BIND_PER_CLIENT: "bind_listeners_per_client",
  /** BIND listeners on premises held on one agent. */
  BIND_PER_AGENT: "bind_listeners_per_agent",
  /** Bytes the relay may be made to hold for clients, over the whole process. */
  BUFFER_BUDGET: "buffer_budget",
  /** Bytes the relay may be made to hold for one client. */
  CLIENT_BUFFER_BUDGET: "client_buffer_budget",
  /** A carried connection moved no byte for the idle timeout. */
  IDLE_TIMEOUT: "idle_timeout",
} as const;

export type LimitName = (typeof LIMIT)[keyof typeof LIMIT];

/** Every limit name, for counters shown from 0. */
export const LIMIT_NAMES: readonly LimitName[] = Object.values(LIMIT);
