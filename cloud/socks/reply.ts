import type { ErrorCode, UnderpassError } from "../../shared/errors.js";

/** SOCKS5 reply codes, RFC 1928 §6 ("REP" field). */
export const SOCKS5_REPLY = {
  /** succeeded */
  SUCCEEDED: 0x00,
  /** general SOCKS server failure */
  GENERAL_FAILURE: 0x01,
  /** connection not allowed by ruleset */
  NOT_ALLOWED: 0x02,
  /** Network unreachable (Underpass: no agent connected for the location) */
  NETWORK_UNREACHABLE: 0x03,
  /** Host unreachable (the agent cannot resolve or reach the target, or timed out) */
  HOST_UNREACHABLE: 0x04,
  /** Connection refused */
  CONNECTION_REFUSED: 0x05,
  /** TTL expired */
  TTL_EXPIRED: 0x06,
  /** Command not supported */
  COMMAND_NOT_SUPPORTED: 0x07,
  /** Address type not supported */
  ADDRESS_TYPE_NOT_SUPPORTED: 0x08,
} as const;

export type Socks5Reply = (typeof SOCKS5_REPLY)[keyof typeof SOCKS5_REPLY];

/**
 * The reply a SOCKS client sees when an error ends its request. Keyed by every error code, so a
 * new error cannot be added without saying what a SOCKS client gets.
 */
export const SOCKS5_REPLY_FOR_ERROR: Readonly<Record<ErrorCode, Socks5Reply>> = {
  UP_ERR_INTERNAL: SOCKS5_REPLY.GENERAL_FAILURE,
  UP_ERR_PROTOCOL: SOCKS5_REPLY.GENERAL_FAILURE,
  UP_ERR_FRAME_TOO_LARGE: SOCKS5_REPLY.GENERAL_FAILURE,
  UP_ERR_FLOW_CONTROL: SOCKS5_REPLY.GENERAL_FAILURE,
  UP_ERR_LIMIT_EXCEEDED: SOCKS5_REPLY.GENERAL_FAILURE,
  UP_ERR_UNSUPPORTED_VERSION: SOCKS5_REPLY.GENERAL_FAILURE,
  UP_ERR_AUTH: SOCKS5_REPLY.NOT_ALLOWED,
  UP_ERR_TUNNEL_CLOSED: SOCKS5_REPLY.GENERAL_FAILURE,
  UP_ERR_NOT_ALLOWED: SOCKS5_REPLY.NOT_ALLOWED,
  UP_ERR_NO_AGENT: SOCKS5_REPLY.NETWORK_UNREACHABLE,
  UP_ERR_HOST_UNREACHABLE: SOCKS5_REPLY.HOST_UNREACHABLE,
  UP_ERR_CONNECTION_REFUSED: SOCKS5_REPLY.CONNECTION_REFUSED,
  UP_ERR_UNSUPPORTED_COMMAND: SOCKS5_REPLY.COMMAND_NOT_SUPPORTED,
  UP_ERR_UNSUPPORTED_ADDRESS_TYPE: SOCKS5_REPLY.ADDRESS_TYPE_NOT_SUPPORTED,
  UP_ERR_SOCKS_HANDSHAKE: SOCKS5_REPLY.GENERAL_FAILURE,
  UP_ERR_VALIDATION: SOCKS5_REPLY.GENERAL_FAILURE,
  UP_ERR_CONFLICT: SOCKS5_REPLY.GENERAL_FAILURE,
  UP_ERR_NOT_FOUND: SOCKS5_REPLY.GENERAL_FAILURE,
  UP_ERR_STORE: SOCKS5_REPLY.GENERAL_FAILURE,
  UP_ERR_FORBIDDEN: SOCKS5_REPLY.GENERAL_FAILURE,
  UP_ERR_RATE_LIMITED: SOCKS5_REPLY.GENERAL_FAILURE,
  UP_ERR_STORE_UNAVAILABLE: SOCKS5_REPLY.GENERAL_FAILURE,
};

/** The SOCKS reply for any coded error. */
export function socksReplyFor(err: UnderpassError): Socks5Reply {
  return SOCKS5_REPLY_FOR_ERROR[err.code];
}
