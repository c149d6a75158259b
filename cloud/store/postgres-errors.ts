/**
 * What a failure of the database driver means to a caller: the database is not there (stopped,
 * unreachable, restarting, a read-only standby after a failover) — `StoreUnavailableError`,
 * 503, try again — or anything else — `StoreError`, 500, logged in full.
 */
import { StoreError, StoreUnavailableError, UnderpassError } from "../../shared/errors.js";

/** SQLSTATEs (PostgreSQL appendix A) that say the server cannot take the request now. */
const UNAVAILABLE_SQLSTATES = new Set([
  "57P01", // admin_shutdown: the server is stopping
  "57P02", // crash_shutdown
  "57P03", // cannot_connect_now: starting up or shutting down
  "53300", // too_many_connections
  "25006", // read_only_sql_transaction: a standby, e.g. during a failover
]);

/** Socket errors of the operating system on the way to the server. */
const UNAVAILABLE_ERRNO = new Set([
  "ECONNREFUSED",
  "ECONNRESET",
  "ETIMEDOUT",
  "EHOSTUNREACH",
  "ENETUNREACH",
  "ENOTFOUND",
  "EAI_AGAIN",
  "EPIPE",
]);

/** The messages of pg's connection failures, which carry no code (pg 8, client.js and pg-pool). */
const PG_CONNECTION_FAILURE =
  /connection terminated|timeout exceeded when trying to connect|encountered a connection error|query read timeout|does not support SSL/i;

function codeOf(err: unknown): string | undefined {
  return typeof err === "object" && err !== null && "code" in err && typeof err.code === "string"
    ? err.code
    : undefined;
}

/** The SQLSTATE of a server error, or undefined for anything else. */
export function sqlState(err: unknown): string | undefined {
  const code = codeOf(err);
  return code !== undefined && /^[0-9A-Z]{5}$/.test(code) ? code : undefined;
}

/** A transaction the server aborted to break a deadlock or a serialisation conflict: run it again. */
export function isRetryable(err: unknown): boolean {
  const state = sqlState(err);
  return state === "40P01" || state === "40001";
}

/** The constraint a server error names (unique, exclusion, check). */
export function constraintOf(err: unknown): string | undefined {
  return typeof err === "object" && err !== null && "constraint" in err && typeof err.constraint === "string"
    ? err.constraint
    : undefined;
}

/**
 * Whether the failure is about reaching the server rather than about the request: a socket
 * error, a connection exception (class 08), a server going down, or one of pg's own errors
 * that carry no code (connection terminated, connect timeout, no TLS on the server).
 */
export function isUnavailable(err: unknown): boolean {
  if (err instanceof StoreUnavailableError) return true;
  if (err instanceof UnderpassError) return false;
  const state = sqlState(err);
  if (state !== undefined) return state.startsWith("08") || UNAVAILABLE_SQLSTATES.has(state);
  const code = codeOf(err);
  if (code !== undefined && UNAVAILABLE_ERRNO.has(code)) return true;
  // pg's own connection failures are plain Errors without a code
  return err instanceof Error && code === undefined && PG_CONNECTION_FAILURE.test(err.message);
}

function messageOf(err: unknown): string {
  if (err instanceof AggregateError && err.errors.length > 0) return messageOf(err.errors[0]);
  const code = codeOf(err);
  const text = err instanceof Error ? err.message : String(err);
  return code !== undefined && !text.includes(code) ? `${code}: ${text}` : text;
}

/**
 * The coded error for a driver failure while doing `what` against `target` (which names the
 * database without its password). Coded errors pass through as they are.
 */
export function storeErrorOf(err: unknown, what: string, target: string): UnderpassError {
  if (err instanceof UnderpassError) return err;
  if (isUnavailable(err)) {
    return new StoreUnavailableError(
      `the configuration database ${target} cannot be reached (${messageOf(err)}); ${what} was not done`,
      { cause: err },
    );
  }
  return new StoreError(`${what} failed in the database ${target}: ${messageOf(err)}`, { cause: err });
}
