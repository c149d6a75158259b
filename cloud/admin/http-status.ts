/**
 * The HTTP status the admin API answers with for each error code. Keyed by every code, so a new
 * error cannot be added without saying what an API caller gets.
 */
import type { ErrorCode, UnderpassError } from "../../shared/errors.js";

export const HTTP_STATUS_FOR_ERROR: Readonly<Record<ErrorCode, number>> = {
  UP_ERR_INTERNAL: 500,
  UP_ERR_PROTOCOL: 502,
  UP_ERR_FRAME_TOO_LARGE: 502,
  UP_ERR_FLOW_CONTROL: 502,
  UP_ERR_LIMIT_EXCEEDED: 503,
  UP_ERR_UNSUPPORTED_VERSION: 400,
  UP_ERR_AUTH: 401,
  UP_ERR_TUNNEL_CLOSED: 502,
  UP_ERR_NOT_ALLOWED: 403,
  UP_ERR_NO_AGENT: 503,
  UP_ERR_HOST_UNREACHABLE: 504,
  UP_ERR_CONNECTION_REFUSED: 502,
  UP_ERR_UNSUPPORTED_COMMAND: 400,
  UP_ERR_UNSUPPORTED_ADDRESS_TYPE: 400,
  UP_ERR_SOCKS_HANDSHAKE: 400,
  UP_ERR_VALIDATION: 400,
  UP_ERR_CONFLICT: 409,
  UP_ERR_NOT_FOUND: 404,
  UP_ERR_STORE: 500,
  UP_ERR_FORBIDDEN: 403,
  UP_ERR_RATE_LIMITED: 429,
  UP_ERR_STORE_UNAVAILABLE: 503,
  UP_ERR_SECOND_INSTANCE: 409,
};

/** The HTTP status for any coded error. */
export function httpStatusFor(err: UnderpassError): number {
  return HTTP_STATUS_FOR_ERROR[err.code];
}
