/**
 * The environment variable of each bound (README: Security, Configuration), with its range.
 * A value out of its range stops the relay before anything listens, naming the variable.
 */
import { z } from "zod";
import type { RelayBounds } from "./bounds.js";

/** Connections, listeners, failures: 1 to a million. */
const count = z.coerce.number().int().min(1).max(1_000_000);
/** Durations in ms, as every other duration of the relay: 1 ms to one hour. */
const ms = z.coerce.number().int().min(1).max(3_600_000);
/** A timeout that may be off: 0, or 1 ms to one day. */
const msOrOff = z.coerce.number().int().min(0).max(86_400_000);
/** Bytes: 1 MiB to 1 TiB. */
const bytes = z.coerce
  .number()
  .int()
  .min(1024 * 1024)
  .max(2 ** 40);

export const BOUND_VARIABLES = {
  UNDERPASS_SOCKS_PREAUTH_PER_SOURCE: { bound: "socksPreauthPerSource", schema: count },
  UNDERPASS_SOCKS_PREAUTH_MAX: { bound: "socksPreauthTotal", schema: count },
  UNDERPASS_TUNNEL_PREAUTH_PER_SOURCE: { bound: "tunnelPreauthPerSource", schema: count },
  UNDERPASS_TUNNEL_PREAUTH_MAX: { bound: "tunnelPreauthTotal", schema: count },
  UNDERPASS_TUNNEL_PREAUTH_TIMEOUT_MS: { bound: "tunnelPreauthTimeoutMs", schema: ms },
  UNDERPASS_ADMIN_PREAUTH_PER_SOURCE: { bound: "adminPreauthPerSource", schema: count },
  UNDERPASS_ADMIN_PREAUTH_TIMEOUT_MS: { bound: "adminPreauthTimeoutMs", schema: ms },
  UNDERPASS_SOCKS_CONNECTIONS_PER_CLIENT: { bound: "socksConnectionsPerClient", schema: count },
  UNDERPASS_SOCKS_CONNECTIONS_PER_SOURCE: { bound: "socksConnectionsPerSource", schema: count },
  UNDERPASS_AUTH_FREE_FAILURES: { bound: "authFreeFailures", schema: count },
  UNDERPASS_AUTH_BACKOFF_MAX_MS: { bound: "authBackoffMaxMs", schema: ms },
  UNDERPASS_ADMIN_AUTH_FAILURES: { bound: "adminAuthFailures", schema: count },
  UNDERPASS_ADMIN_AUTH_WINDOW_MS: { bound: "adminAuthWindowMs", schema: ms },
  UNDERPASS_ADMIN_AUTH_DELAY_MS: { bound: "adminAuthDelayMs", schema: ms },
  UNDERPASS_TUNNELS_PER_AGENT: { bound: "tunnelsPerAgent", schema: count },
  UNDERPASS_TUNNEL_MAX_STREAMS: { bound: "tunnelMaxStreams", schema: count },
  UNDERPASS_TUNNEL_MAX_PENDING_OPENS: { bound: "tunnelMaxPendingOpens", schema: count },
  UNDERPASS_BIND_PER_CLIENT: { bound: "bindPerClient", schema: count },
  UNDERPASS_BIND_PER_AGENT: { bound: "bindPerAgent", schema: count },
  UNDERPASS_BUFFER_BUDGET_BYTES: { bound: "bufferBudgetBytes", schema: bytes },
  UNDERPASS_CLIENT_BUFFER_BYTES: { bound: "clientBufferBytes", schema: bytes },
  UNDERPASS_IDLE_TIMEOUT_MS: { bound: "idleTimeoutMs", schema: msOrOff },
  UNDERPASS_FTP_IDLE_TIMEOUT_MS: { bound: "ftpIdleTimeoutMs", schema: msOrOff },
  UNDERPASS_LOG_SUMMARY_MS: { bound: "summaryPeriodMs", schema: ms },
} as const satisfies Record<string, { bound: keyof RelayBounds; schema: z.ZodType<number> }>;

export type BoundVariable = keyof typeof BOUND_VARIABLES;

/** The zod shape of every bound's variable, each optional (its default is in bounds.ts). */
export const boundsEnvShape = Object.fromEntries(
  Object.entries(BOUND_VARIABLES).map(([name, v]) => [name, v.schema.optional()]),
) as { [K in BoundVariable]: z.ZodOptional<(typeof BOUND_VARIABLES)[K]["schema"]> };

/** The bounds the parsed environment sets. */
export function boundsFromEnv(env: Partial<Record<BoundVariable, number | undefined>>): Partial<RelayBounds> {
  const out: Partial<Record<keyof RelayBounds, number>> = {};
  for (const [name, v] of Object.entries(BOUND_VARIABLES) as [
    BoundVariable,
    (typeof BOUND_VARIABLES)[BoundVariable],
  ][]) {
    const value = env[name];
    if (value !== undefined) out[v.bound] = value;
  }
  return out;
}
