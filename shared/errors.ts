/**
 * Every failure Underpass reports has a class with a stable `UP_ERR_*` code and its wire
 * mappings: the SOCKS5 reply a client sees (RFC 1928 §6), the tunnel code that carries it
 * between agent and relay, and the HTTP status of the admin API. Check with `instanceof`.
 */
import { SOCKS5_REPLY, type Socks5Reply } from "./socks5-reply.js";

export interface ErrorSpec {
  /** Stable code, documented in the README's error table. */
  readonly code: string;
  /** What the user should understand from it. */
  readonly description: string;
  /** SOCKS5 reply code sent to a client when this error ends a SOCKS request. */
  readonly socksReply: Socks5Reply;
  /** HTTP status when the admin API answers with this error. */
  readonly httpStatus: number;
}

export class UnderpassError extends Error {
  static readonly spec: ErrorSpec = {
    code: "UP_ERR_INTERNAL",
    description: "An unexpected internal failure.",
    socksReply: SOCKS5_REPLY.GENERAL_FAILURE,
    httpStatus: 500,
  };

  readonly code: string;
  readonly socksReply: Socks5Reply;
  readonly httpStatus: number;

  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    const spec = (this.constructor as typeof UnderpassError).spec;
    this.name = this.constructor.name;
    this.code = spec.code;
    this.socksReply = spec.socksReply;
    this.httpStatus = spec.httpStatus;
  }
}

function defineError(spec: ErrorSpec) {
  return class extends UnderpassError {
    static override readonly spec = spec;
  };
}

const G = SOCKS5_REPLY.GENERAL_FAILURE;

/** The peer broke the tunnel protocol: bad frame, unknown type, wrong stream, bad hello. */
export class ProtocolError extends defineError({
  code: "UP_ERR_PROTOCOL",
  description: "The tunnel peer sent bytes that break the Underpass tunnel protocol.",
  socksReply: G,
  httpStatus: 502,
}) {}

/** A frame announced a payload larger than the negotiated maximum. */
export class FrameTooLargeError extends defineError({
  code: "UP_ERR_FRAME_TOO_LARGE",
  description: "A tunnel frame is larger than the limit; the tunnel is cut off.",
  socksReply: G,
  httpStatus: 502,
}) {}

/** The peer sent more stream data than the receive window allowed. */
export class FlowControlError extends defineError({
  code: "UP_ERR_FLOW_CONTROL",
  description: "A peer sent data beyond the stream's receive window; the tunnel is cut off.",
  socksReply: G,
  httpStatus: 502,
}) {}

/** The peer opened more streams, or more pending opens, than the limits allow. */
export class LimitExceededError extends defineError({
  code: "UP_ERR_LIMIT_EXCEEDED",
  description: "Too many open streams or pending opens on one tunnel.",
  socksReply: G,
  httpStatus: 503,
}) {}

/** The hello named a protocol version this side does not speak. */
export class UnsupportedVersionError extends defineError({
  code: "UP_ERR_UNSUPPORTED_VERSION",
  description: "The agent speaks a tunnel protocol version the relay does not support.",
  socksReply: G,
  httpStatus: 400,
}) {}

/** Bad or revoked agent token, bad SOCKS credentials, bad admin token. */
export class AuthError extends defineError({
  code: "UP_ERR_AUTH",
  description: "Authentication failed: unknown or revoked token, or wrong credentials.",
  socksReply: SOCKS5_REPLY.NOT_ALLOWED,
  httpStatus: 401,
}) {}

/** The tunnel went away (closed, ping timeout, agent revoked) while a stream used it. */
export class TunnelClosedError extends defineError({
  code: "UP_ERR_TUNNEL_CLOSED",
  description: "The tunnel carrying the stream closed; the stream is reset.",
  socksReply: G,
  httpStatus: 502,
}) {}

/** The destination is not covered by any mapping of the client's location, or the agent's local policy refuses it. */
export class NotAllowedError extends defineError({
  code: "UP_ERR_NOT_ALLOWED",
  description:
    "No mapping of the client's location covers host:port, or the agent's local policy refuses it.",
  socksReply: SOCKS5_REPLY.NOT_ALLOWED,
  httpStatus: 403,
}) {}

/** No agent of the mapping's location has a live tunnel. */
export class NoAgentError extends defineError({
  code: "UP_ERR_NO_AGENT",
  description: "No agent is connected for the location of the mapping.",
  socksReply: SOCKS5_REPLY.NETWORK_UNREACHABLE,
  httpStatus: 503,
}) {}

/** The agent could not resolve or reach the internal host, or the dial timed out. */
export class HostUnreachableError extends defineError({
  code: "UP_ERR_HOST_UNREACHABLE",
  description: "The agent cannot resolve or reach the internal host, or the dial timed out.",
  socksReply: SOCKS5_REPLY.HOST_UNREACHABLE,
  httpStatus: 504,
}) {}

/** The internal target actively refused the connection. */
export class ConnectionRefusedError extends defineError({
  code: "UP_ERR_CONNECTION_REFUSED",
  description: "The internal target refused the connection.",
  socksReply: SOCKS5_REPLY.CONNECTION_REFUSED,
  httpStatus: 502,
}) {}

/** A SOCKS command the relay does not serve (UDP ASSOCIATE, or BIND where it is off). */
export class UnsupportedCommandError extends defineError({
  code: "UP_ERR_UNSUPPORTED_COMMAND",
  description: "The SOCKS command is not supported.",
  socksReply: SOCKS5_REPLY.COMMAND_NOT_SUPPORTED,
  httpStatus: 400,
}) {}

/** A SOCKS address type other than IPv4, domain name and IPv6. */
export class UnsupportedAddressTypeError extends defineError({
  code: "UP_ERR_UNSUPPORTED_ADDRESS_TYPE",
  description: "The SOCKS address type is not supported.",
  socksReply: SOCKS5_REPLY.ADDRESS_TYPE_NOT_SUPPORTED,
  httpStatus: 400,
}) {}

/** A SOCKS client broke RFC 1928/1929 or did not finish its handshake in time. */
export class SocksHandshakeError extends defineError({
  code: "UP_ERR_SOCKS_HANDSHAKE",
  description: "The SOCKS client sent a malformed handshake or did not finish it in time.",
  socksReply: G,
  httpStatus: 400,
}) {}

/** An admin API body, CLI flag or environment variable failed validation. */
export class ValidationError extends defineError({
  code: "UP_ERR_VALIDATION",
  description: "Input failed validation; the answer lists each issue.",
  socksReply: G,
  httpStatus: 400,
}) {
  readonly issues: ReadonlyArray<{ path: string; message: string }>;
  constructor(message: string, issues: ReadonlyArray<{ path: string; message: string }> = []) {
    super(message);
    this.issues = issues;
  }
}

/** A new or changed mapping overlaps an existing one. */
export class ConflictError extends defineError({
  code: "UP_ERR_CONFLICT",
  description: "The mapping overlaps an existing mapping of the same location.",
  socksReply: G,
  httpStatus: 409,
}) {}

/** The admin API was asked for an id that does not exist. */
export class NotFoundError extends defineError({
  code: "UP_ERR_NOT_FOUND",
  description: "No such agent, client, mapping or connection.",
  socksReply: G,
  httpStatus: 404,
}) {}

/** The store could not read or write its data. */
export class StoreError extends defineError({
  code: "UP_ERR_STORE",
  description: "The store could not read or write its data; nothing was changed.",
  socksReply: G,
  httpStatus: 500,
}) {}

/** Every error class, for the README table and for code lookups. */
export const ERROR_CLASSES = [
  UnderpassError,
  ProtocolError,
  FrameTooLargeError,
  FlowControlError,
  LimitExceededError,
  UnsupportedVersionError,
  AuthError,
  TunnelClosedError,
  NotAllowedError,
  NoAgentError,
  HostUnreachableError,
  ConnectionRefusedError,
  UnsupportedCommandError,
  UnsupportedAddressTypeError,
  SocksHandshakeError,
  ValidationError,
  ConflictError,
  NotFoundError,
  StoreError,
] as const;

/** Wrap anything thrown into an UnderpassError, keeping coded ones as they are. */
export function toUnderpassError(err: unknown): UnderpassError {
  if (err instanceof UnderpassError) return err;
  const message = err instanceof Error ? err.message : String(err);
  return new UnderpassError(message, { cause: err });
}
