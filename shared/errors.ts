/**
 * Every failure Underpass reports has a class with a stable `UP_ERR_*` code. What it becomes on
 * a wire lives at that edge, keyed by the code: the SOCKS5 reply in cloud/socks/reply.ts, the
 * HTTP status in cloud/admin/http-status.ts, the tunnel's OPEN_RESULT code in
 * shared/tunnel/open-codes.ts. Check with `instanceof`.
 */

export interface ErrorSpec<C extends string = string> {
  /** Stable code, documented in the README's error table. */
  readonly code: C;
  /** What the user should understand from it. */
  readonly description: string;
}

export class UnderpassError extends Error {
  static readonly spec: ErrorSpec = {
    code: "UP_ERR_INTERNAL",
    description: "An unexpected internal failure.",
  };

  readonly code: ErrorCode;

  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    const spec = (this.constructor as typeof UnderpassError).spec;
    this.name = this.constructor.name;
    this.code = spec.code as ErrorCode;
  }
}

function defineError<const C extends string>(spec: ErrorSpec<C>) {
  return class extends UnderpassError {
    static override readonly spec = spec;
  };
}

/** The peer broke the tunnel protocol: bad frame, unknown type, wrong stream, bad hello. */
export class ProtocolError extends defineError({
  code: "UP_ERR_PROTOCOL",
  description: "The tunnel peer sent bytes that break the Underpass tunnel protocol.",
}) {}

/** A frame announced a payload larger than the negotiated maximum. */
export class FrameTooLargeError extends defineError({
  code: "UP_ERR_FRAME_TOO_LARGE",
  description: "A tunnel frame is larger than the limit; the tunnel is cut off.",
}) {}

/** The peer sent more stream data than the receive window allowed. */
export class FlowControlError extends defineError({
  code: "UP_ERR_FLOW_CONTROL",
  description: "A peer sent data beyond the stream's receive window; the tunnel is cut off.",
}) {}

/** The peer opened more streams, or more pending opens, than the limits allow. */
export class LimitExceededError extends defineError({
  code: "UP_ERR_LIMIT_EXCEEDED",
  description: "Too many open streams or pending opens on one tunnel.",
}) {}

/** The hello named a protocol version this side does not speak. */
export class UnsupportedVersionError extends defineError({
  code: "UP_ERR_UNSUPPORTED_VERSION",
  description: "The agent speaks a tunnel protocol version the relay does not support.",
}) {}

/** Bad or revoked agent token, bad SOCKS credentials, bad admin token. */
export class AuthError extends defineError({
  code: "UP_ERR_AUTH",
  description: "Authentication failed: unknown or revoked token, or wrong credentials.",
}) {}

/** The tunnel went away (closed, ping timeout, agent revoked) while a stream used it. */
export class TunnelClosedError extends defineError({
  code: "UP_ERR_TUNNEL_CLOSED",
  description: "The tunnel carrying the stream closed; the stream is reset.",
}) {}

/** The destination is not covered by any mapping of the client's location, or the agent's local policy refuses it. */
export class NotAllowedError extends defineError({
  code: "UP_ERR_NOT_ALLOWED",
  description:
    "No mapping of the client's location covers host:port, or the agent's local policy refuses it.",
}) {}

/** No agent of the mapping's location has a live tunnel. */
export class NoAgentError extends defineError({
  code: "UP_ERR_NO_AGENT",
  description: "No agent is connected for the location of the mapping.",
}) {}

/** The agent could not resolve or reach the internal host, or the dial timed out. */
export class HostUnreachableError extends defineError({
  code: "UP_ERR_HOST_UNREACHABLE",
  description: "The agent cannot resolve or reach the internal host, or the dial timed out.",
}) {}

/** The internal target actively refused the connection. */
export class ConnectionRefusedError extends defineError({
  code: "UP_ERR_CONNECTION_REFUSED",
  description: "The internal target refused the connection.",
}) {}

/** A SOCKS command the relay does not serve (UDP ASSOCIATE, or BIND where it is off). */
export class UnsupportedCommandError extends defineError({
  code: "UP_ERR_UNSUPPORTED_COMMAND",
  description: "The SOCKS command is not supported.",
}) {}

/** A SOCKS address type other than IPv4, domain name and IPv6. */
export class UnsupportedAddressTypeError extends defineError({
  code: "UP_ERR_UNSUPPORTED_ADDRESS_TYPE",
  description: "The SOCKS address type is not supported.",
}) {}

/** A SOCKS client broke RFC 1928/1929 or did not finish its handshake in time. */
export class SocksHandshakeError extends defineError({
  code: "UP_ERR_SOCKS_HANDSHAKE",
  description: "The SOCKS client sent a malformed handshake or did not finish it in time.",
}) {}

/** An admin API body, CLI flag or environment variable failed validation. */
export class ValidationError extends defineError({
  code: "UP_ERR_VALIDATION",
  description: "Input failed validation; the answer lists each issue.",
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
}) {}

/** The admin API was asked for an id that does not exist. */
export class NotFoundError extends defineError({
  code: "UP_ERR_NOT_FOUND",
  description: "No such agent, client, mapping or connection.",
}) {}

/** The store could not read or write its data. */
export class StoreError extends defineError({
  code: "UP_ERR_STORE",
  description: "The store could not read or write its data; nothing was changed.",
}) {}

/** A console session's change without its CSRF proof, or from another origin. */
export class ForbiddenError extends defineError({
  code: "UP_ERR_FORBIDDEN",
  description:
    "A change made with a console session cookie lacks the session's CSRF token or comes from another origin.",
}) {}

/**
 * Too many failed admin authentications or console sign-ins from one source address, or with
 * one token; retry after the answer's Retry-After.
 */
export class RateLimitedError extends defineError({
  code: "UP_ERR_RATE_LIMITED",
  description:
    "Too many failed authentications from this address or with this token; retry after the time the answer gives.",
}) {
  /** Seconds until the next attempt is considered (the HTTP Retry-After, RFC 9110 §10.2.3). */
  readonly retryAfterSeconds: number;
  constructor(message: string, retryAfterSeconds: number) {
    super(message);
    this.retryAfterSeconds = retryAfterSeconds;
  }
}

/**
 * The shared configuration database cannot be reached (stopped, unreachable, refusing
 * connections). Changes are refused until it is back; relays keep serving the configuration
 * they hold.
 */
export class StoreUnavailableError extends defineError({
  code: "UP_ERR_STORE_UNAVAILABLE",
  description:
    "The configuration database cannot be reached; nothing was changed. Relays keep serving the configuration they hold; try again once it is back.",
}) {}

/** A single-instance agent's token presented by a second instance while the first is connected. */
export class SecondInstanceError extends defineError({
  code: "UP_ERR_SECOND_INSTANCE",
  description:
    "Another instance of this single-instance agent is connected; this one is refused until that one leaves.",
}) {}

/** The coded subclasses; UnderpassError itself is UP_ERR_INTERNAL. */
const CODED_ERROR_CLASSES = [
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
  ForbiddenError,
  RateLimitedError,
  StoreUnavailableError,
  SecondInstanceError,
] as const;

/** Every error class, for the README table and for code lookups. */
export const ERROR_CLASSES = [UnderpassError, ...CODED_ERROR_CLASSES] as const;

/** Every stable error code: the key of each edge's wire mapping. */
export type ErrorCode = "UP_ERR_INTERNAL" | (typeof CODED_ERROR_CLASSES)[number]["spec"]["code"];

/**
 * `make()` with no stack captured: for errors that are an expected answer (a local policy's
 * refusal), whose stack tells nothing and whose capture is most of what they cost: ~18 µs of
 * the ~24 µs an agent spends on an OPEN it refuses, measured under a flood of them.
 */
export function withoutStack<T>(make: () => T): T {
  const limit = Error.stackTraceLimit;
  Error.stackTraceLimit = 0;
  try {
    return make();
  } finally {
    Error.stackTraceLimit = limit;
  }
}

/** Wrap anything thrown into an UnderpassError, keeping coded ones as they are. */
export function toUnderpassError(err: unknown): UnderpassError {
  if (err instanceof UnderpassError) return err;
  const message = err instanceof Error ? err.message : String(err);
  return new UnderpassError(message, { cause: err });
}
