/**
 * The Underpass tunnel protocol, version 1. One WebSocket (binary messages, no compression)
 * carries a byte stream of frames; message boundaries carry no meaning, so a message may hold
 * several frames and a frame's payload may span messages.
 *
 * Frame layout (all integers big-endian):
 *   0      1              5              9
 *   +------+--------------+--------------+----------------...
 *   | type | stream id u32| length u32   | payload (length bytes)
 *   +------+--------------+--------------+----------------...
 */

/** Tunnel protocol version spoken by this build. */
export const PROTOCOL_VERSION = 1;

/** Versions this build accepts in a hello. */
export const SUPPORTED_VERSIONS: readonly number[] = [1];

/** Relays a RELAYS frame or a welcome names at most; a larger cluster is cut to this many. */
export const MAX_ADVERTISED_RELAYS = 64;

/** Bytes of the frame header: 1 type + 4 stream id + 4 length. */
export const FRAME_HEADER_SIZE = 9;

/** Frame types. */
export const FRAME_TYPE = {
  /** Agent → relay, stream 0: JSON {version, token, agentVersion, capabilities, limits}. */
  HELLO: 0x01,
  /** Relay → agent, stream 0: JSON {version, agentId, location, limits, relayId?, relays?}. */
  WELCOME: 0x02,
  /** Relay → agent: open a stream; kind u8, port u16, timeout ms u32, host length u8, host. */
  OPEN: 0x03,
  /** Agent → relay: result of an OPEN; code u8, port u16, address length u8, address. */
  OPEN_RESULT: 0x04,
  /** Stream bytes, counted against the receiver's window. */
  DATA: 0x05,
  /** Receiver grants more credit; delta u32 in bytes. */
  WINDOW_UPDATE: 0x06,
  /** Sender will send no more data on the stream (half-close); empty payload. */
  FIN: 0x07,
  /** Abort the stream in both directions; code u8, reason UTF-8. */
  RESET: 0x08,
  /** Stream 0: liveness probe; nonce u32. */
  PING: 0x09,
  /** Stream 0: answer to PING with the same nonce u32. */
  PONG: 0x0a,
  /** Stream 0: the sender closes the tunnel; code u8, reason UTF-8. */
  GOAWAY: 0x0b,
  /** Agent → relay, BIND streams: the peer that connected; port u16, address length u8, address. */
  BIND_PEER: 0x0c,
  /**
   * Relay → agent, stream 0, only to an agent whose hello announced the `relays` capability:
   * the live relays of the cluster, sent whenever the set changes; count u16, then per relay
   * id length u8, id (UTF-8), URL length u16, URL (UTF-8).
   */
  RELAYS: 0x0d,
} as const;
export type FrameType = (typeof FRAME_TYPE)[keyof typeof FRAME_TYPE];

/** What an OPEN asks the agent to do. */
export const OPEN_KIND = {
  /** Dial host:port on premises. */
  CONNECT: 0x01,
  /** Listen on premises for one connection from host (RFC 1928 BIND, FTP active mode). */
  BIND: 0x02,
} as const;
export type OpenKind = (typeof OPEN_KIND)[keyof typeof OPEN_KIND];

/** OPEN_RESULT codes; each maps to one SOCKS5 reply (open-codes.ts). */
export const OPEN_CODE = {
  /** The target is connected (CONNECT) or the listener is up (BIND). */
  OK: 0x00,
  /** Anything else went wrong on the agent. */
  GENERAL_FAILURE: 0x01,
  /** The agent's local policy refuses the target. */
  NOT_ALLOWED: 0x02,
  /** The name does not resolve, the host is unreachable, or the dial timed out. */
  HOST_UNREACHABLE: 0x04,
  /** The target refused the connection. */
  CONNECTION_REFUSED: 0x05,
  /** The agent does not serve this kind of OPEN. */
  UNSUPPORTED: 0x07,
} as const;
export type OpenCode = (typeof OPEN_CODE)[keyof typeof OPEN_CODE];

/** RESET codes. */
export const RESET_CODE = {
  /** An internal failure on the sender. */
  INTERNAL: 0x01,
  /** The socket at the sender's end was reset or failed. */
  CONNECTION_RESET: 0x02,
  /** The stream was cancelled on purpose (admin kill, open abandoned, shutdown). */
  CANCELLED: 0x03,
  /** The open or an idle timer ran out. */
  TIMEOUT: 0x04,
} as const;
export type ResetCode = (typeof RESET_CODE)[keyof typeof RESET_CODE];

/** GOAWAY codes: why the sender closes the whole tunnel. */
export const GOAWAY_CODE = {
  /** Orderly shutdown. */
  NORMAL: 0x00,
  /** The peer broke the protocol (bad frame, unknown type, stream misuse). */
  PROTOCOL_ERROR: 0x01,
  /** The hello names a version the relay does not speak. */
  UNSUPPORTED_VERSION: 0x02,
  /** Unknown or revoked agent token. */
  AUTH_FAILED: 0x03,
  /** The peer broke a limit: frame size, open streams, pending opens. */
  LIMIT_EXCEEDED: 0x04,
  /** No frame arrived within the ping timeout. */
  PING_TIMEOUT: 0x05,
  /** The agent was deleted through the admin API. */
  REVOKED: 0x06,
  /** The peer sent data beyond a stream's window. */
  FLOW_CONTROL: 0x07,
  /** No hello arrived in time. */
  HELLO_TIMEOUT: 0x08,
  /** An internal failure on the sender. */
  INTERNAL: 0x09,
  /**
   * Another instance of this agent (its token, another instance id) is connected and the agent
   * is single-instance. Sent only to agents whose hello names an instance id; an older agent
   * gets LIMIT_EXCEEDED with the same reason.
   */
  SECOND_INSTANCE: 0x0a,
} as const;
export type GoAwayCode = (typeof GOAWAY_CODE)[keyof typeof GOAWAY_CODE];

/** Limits and windows; each side announces its own in the hello/welcome. */
export interface TunnelLimits {
  /** Largest DATA payload the receiver accepts, in bytes. */
  readonly maxFramePayload: number;
  /** Largest payload of any other frame, in bytes. */
  readonly maxControlPayload: number;
  /** Streams open at once on one tunnel. */
  readonly maxStreams: number;
  /** OPENs awaiting their result at once on one tunnel. */
  readonly maxPendingOpens: number;
  /**
   * Initial receive window per stream, in bytes: what the peer may send before the first
   * WINDOW_UPDATE. The receiver grows it from there (receive-window.ts).
   */
  readonly initialWindow: number;
}

export const DEFAULT_LIMITS: TunnelLimits = {
  maxFramePayload: 256 * 1024,
  maxControlPayload: 16 * 1024,
  maxStreams: 32_768,
  maxPendingOpens: 1_024,
  // small: an idle or slow stream holds little; a fast one grows its window (WindowTuning)
  initialWindow: 256 * 1024,
};

/** How a session grows its streams' receive windows (receive-window.ts, window-budget.ts). */
export interface WindowTuning {
  /** Largest receive window a stream grows to, in bytes. */
  readonly maxWindow: number;
  /** Growth above the initial windows that the streams of one tunnel may hold, in bytes. */
  readonly tunnelBudget: number;
  /** How often streams whose consumer took nothing halve their growth, in ms. */
  readonly sweepIntervalMs: number;
}

/**
 * 32 MiB fills 50 ms at 640 MiB/s or 100 ms at 320 MiB/s for one stream, about what one Node
 * process moves (QUIC stacks and yamux stop at 6–16 MiB, for paths slower than that); 64 MiB per
 * tunnel lets two streams reach it at once, or eight streams 8 MiB each; idle or non-reading
 * streams give back half their growth every second.
 */
export const DEFAULT_WINDOW_TUNING: WindowTuning = {
  maxWindow: 32 * 1024 * 1024,
  tunnelBudget: 64 * 1024 * 1024,
  sweepIntervalMs: 1_000,
};

/** Growth above the initial windows that every tunnel of one process may hold together, in bytes. */
export const DEFAULT_PROCESS_WINDOW_BUDGET = 256 * 1024 * 1024;

/**
 * Bytes of control frames a session lets wait in user space for a peer that does not read them
 * (control-queue.ts): some 80 000 PONGs (13 bytes) or 25 000 RESETs with a short reason, room
 * for a burst of answers behind a slow link, while a peer flooding PINGs is cut once 1 MiB of
 * PONGs wait for it.
 */
export const DEFAULT_MAX_QUEUED_CONTROL_BYTES = 1024 * 1024;

/** Timers of a session, in milliseconds. */
export interface SessionTimers {
  /** A PING goes out this often. */
  readonly pingIntervalMs: number;
  /** The tunnel is dead when nothing at all arrives for this long (from the last bytes heard). */
  readonly pingTimeoutMs: number;
}

/**
 * A silent peer (stopped process, network dropping packets) is cut 7.5 s after its last bytes,
 * within 10 s on both sides; three ping intervals without a single frame, so one or two PINGs
 * lost to TCP retransmission (200 ms doubling: 200 + 400 + 800 + 1600 ms) do not cut a live
 * tunnel, and each side hears the other's PINGs and the PONGs to its own about every 1.25 s.
 */
export const DEFAULT_TIMERS: SessionTimers = { pingIntervalMs: 2_500, pingTimeoutMs: 7_500 };
