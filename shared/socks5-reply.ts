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
