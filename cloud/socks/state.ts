/**
 * The states of one SOCKS connection and the only moves between them (RFC 1928 §3-§6,
 * RFC 1929). `closed` is terminal: refused, failed, timed out, or gone with its splice.
 *
 *   greeting ──▶ credentials ──▶ authenticating ──▶ request ──▶ resolving ──▶ opening ──▶ spliced
 *       └──────────────(no authentication)─────────────▲                         └──▶ bound ──▲
 *   any state ──▶ closed
 */
export type SocksState =
  /** Waiting for VER | NMETHODS | METHODS. */
  | "greeting"
  /** Username/password chosen: waiting for the RFC 1929 request. */
  | "credentials"
  /** The credentials are being checked against the store; later bytes wait. */
  | "authenticating"
  /** Waiting for VER | CMD | RSV | ATYP | DST.ADDR | DST.PORT. */
  | "request"
  /** Looking up the destination: an announced FTP data port, a mapping, or BIND's connection. */
  | "resolving"
  /** OPEN sent on a tunnel; waiting for the agent's OPEN_RESULT. */
  | "opening"
  /** BIND: the first reply is out; waiting for the peer to connect on premises. */
  | "bound"
  /** The success reply is out and bytes flow; the pipe owns the socket from here. */
  | "spliced"
  | "closed";

const MOVES: Readonly<Record<SocksState, readonly SocksState[]>> = {
  greeting: ["credentials", "request", "closed"],
  credentials: ["authenticating", "closed"],
  authenticating: ["request", "closed"],
  request: ["resolving", "closed"],
  resolving: ["opening", "closed"],
  opening: ["spliced", "bound", "closed"],
  bound: ["spliced", "closed"],
  spliced: ["closed"],
  closed: [],
};

/** States in which the client is still in its handshake: the handshake deadline applies. */
export const HANDSHAKE_STATES: ReadonlySet<SocksState> = new Set([
  "greeting",
  "credentials",
  "authenticating",
  "request",
]);

/** States in which a failure is answered with a SOCKS reply (the request was read). */
export const REPLYING_STATES: ReadonlySet<SocksState> = new Set(["request", "resolving", "opening"]);

/**
 * The state after moving from `from` to `to`, or null when `from` is terminal (an await came
 * back after the client went away). A move the machine does not have is a bug: it throws.
 */
export function nextState(from: SocksState, to: SocksState): SocksState | null {
  if (from === "closed") return null;
  if (!MOVES[from].includes(to)) throw new Error(`SOCKS connection cannot move from ${from} to ${to}`);
  return to;
}
