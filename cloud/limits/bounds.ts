/**
 * The relay's bounds on what peers can make it hold (README: Security), with their defaults.
 * Each is read from an `UNDERPASS_*` variable by cloud/config.ts; tests pass their own.
 * The defaults are generous for a legitimate peer and small against a hostile one.
 */

export interface RelayBounds {
  /** SOCKS connections of one source address in greeting or authentication at once. */
  readonly socksPreauthPerSource: number;
  /** SOCKS connections of all sources in greeting or authentication at once. */
  readonly socksPreauthTotal: number;
  /** Tunnel-port connections of one source address not yet an admitted tunnel. */
  readonly tunnelPreauthPerSource: number;
  /** Tunnel-port connections of all sources not yet an admitted tunnel. */
  readonly tunnelPreauthTotal: number;
  /** From a tunnel-port TCP connection to its admitted hello (TLS, upgrade, hello), in ms. */
  readonly tunnelPreauthTimeoutMs: number;
  /** Admin-port connections of one source address that have not sent a request yet. */
  readonly adminPreauthPerSource: number;
  /** From an admin-port TCP connection to its first complete request, in ms. */
  readonly adminPreauthTimeoutMs: number;
  /** Authenticated SOCKS connections of one client at once (any command, any state). */
  readonly socksConnectionsPerClient: number;
  /** Authenticated SOCKS connections of one source address at once. */
  readonly socksConnectionsPerSource: number;
  /** Failed authentications of a source or an identity answered at once; later ones wait. */
  readonly authFreeFailures: number;
  /** Longest wait before a failed authentication is answered, in ms. */
  readonly authBackoffMaxMs: number;
  /** Failed admin authentications of a source, or with one secret, in a window before they get 429. */
  readonly adminAuthFailures: number;
  /** That window, in ms; a failure over the bound starts it again. */
  readonly adminAuthWindowMs: number;
  /** How long a 429 for a failed admin authentication waits before it is answered, in ms. */
  readonly adminAuthDelayMs: number;
  /** Live tunnels of one agent on this relay. */
  readonly tunnelsPerAgent: number;
  /** Streams the relay keeps open on one tunnel, whatever the agent announced. */
  readonly tunnelMaxStreams: number;
  /** OPENs the relay keeps waiting for an OPEN_RESULT on one tunnel, whatever the agent announced. */
  readonly tunnelMaxPendingOpens: number;
  /** BIND listeners on premises (SOCKS BIND, FTP active mode) one client holds at once. */
  readonly bindPerClient: number;
  /** BIND listeners on premises one agent holds for this relay at once. */
  readonly bindPerAgent: number;
  /** Bytes held for clients over the whole process: data in flight towards them, in bytes. */
  readonly bufferBudgetBytes: number;
  /** Bytes held for one client (or one source address without authentication), in bytes. */
  readonly clientBufferBytes: number;
  /** A carried connection that moves no byte for this long is reset, in ms; 0 never. */
  readonly idleTimeoutMs: number;
  /** The same for the control connections of `"ftp"` mappings, in ms; 0 (the default) never. */
  readonly ftpIdleTimeoutMs: number;
  /** Period of the summary lines that stand for rate-limited log and audit lines, in ms. */
  readonly summaryPeriodMs: number;
}

export const DEFAULT_BOUNDS: RelayBounds = {
  socksPreauthPerSource: 128,
  socksPreauthTotal: 4096,
  tunnelPreauthPerSource: 32,
  tunnelPreauthTotal: 1024,
  tunnelPreauthTimeoutMs: 20_000,
  adminPreauthPerSource: 64,
  adminPreauthTimeoutMs: 10_000,
  socksConnectionsPerClient: 4096,
  socksConnectionsPerSource: 8192,
  authFreeFailures: 5,
  authBackoffMaxMs: 10_000,
  adminAuthFailures: 10,
  adminAuthWindowMs: 60_000,
  adminAuthDelayMs: 1000,
  tunnelsPerAgent: 128,
  tunnelMaxStreams: 32_768,
  tunnelMaxPendingOpens: 1024,
  bindPerClient: 64,
  bindPerAgent: 512,
  bufferBudgetBytes: 256 * 1024 * 1024,
  clientBufferBytes: 128 * 1024 * 1024,
  idleTimeoutMs: 3_600_000,
  ftpIdleTimeoutMs: 0,
  summaryPeriodMs: 60_000,
};

/** The defaults with what a caller set. */
export function relayBounds(over: Partial<RelayBounds> | undefined): RelayBounds {
  return { ...DEFAULT_BOUNDS, ...over };
}
