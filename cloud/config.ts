/** `underpass cloud` configuration from the environment (DESIGN.md: the contract). */
import { readFileSync } from "node:fs";
import { isIPv4 } from "node:net";
import { createSecureContext } from "node:tls";
import { z } from "zod";
import { envFlag, parseEnv, parseListen } from "../shared/env.js";
import { ValidationError } from "../shared/errors.js";
import type { Logger } from "../shared/logger.js";
import { hostProblem } from "../shared/net/host.js";
import { DEFAULT_TIMERS } from "../shared/tunnel/constants.js";
import { isWildcard, RELAY_ID } from "./cluster/relay-self.js";
import { boundsEnvShape, boundsFromEnv } from "./limits/bound-variables.js";
import type { ListenAddress, RelayConfig } from "./relay.js";
import { parseDatabaseUrl } from "./store/postgres-url.js";
import { DEFAULT_TLS_RELOAD } from "./tls-reload.js";

const ms = z.coerce.number().int().min(1).max(3_600_000);

const relayEnv = z.object({
  UNDERPASS_TUNNEL_LISTEN: z.string().default("0.0.0.0:8443"),
  UNDERPASS_SOCKS_LISTEN: z.string().default("0.0.0.0:1080"),
  UNDERPASS_ADMIN_LISTEN: z.string().default("127.0.0.1:8081"),
  UNDERPASS_METRICS_LISTEN: z.string().optional(),
  UNDERPASS_DATA_DIR: z.string().min(1).default("./underpass-data"),
  UNDERPASS_ADMIN_TOKEN: z.string().min(16, "use at least 16 characters").optional(),
  UNDERPASS_TLS_CERT: z.string().optional(),
  UNDERPASS_TLS_KEY: z.string().optional(),
  UNDERPASS_ADMIN_TLS_CERT: z.string().optional(),
  UNDERPASS_ADMIN_TLS_KEY: z.string().optional(),
  // renewed certificates: the directories of the TLS files watched (0 to rely on SIGHUP only)
  UNDERPASS_TLS_WATCH: z
    .string()
    .regex(/^(1|true|yes|on|0|false|no|off)$/i, "expected 1 or 0 (true/false, yes/no, on/off)")
    .optional(),
  UNDERPASS_TLS_RELOAD_DEBOUNCE_MS: ms.default(DEFAULT_TLS_RELOAD.debounceMs),
  UNDERPASS_SOCKS_NO_AUTH: z.string().optional(),
  UNDERPASS_SOCKS_NO_AUTH_LOCATION: z.string().default("default"),
  UNDERPASS_DIAL_TIMEOUT_MS: ms.default(10_000),
  UNDERPASS_SOCKS_HANDSHAKE_TIMEOUT_MS: ms.default(10_000),
  UNDERPASS_BIND_TIMEOUT_MS: ms.default(60_000),
  UNDERPASS_FTP_PASV_ADDRESS: z
    .string()
    .refine((v) => isIPv4(v), "must be an IPv4 address")
    .optional(),
  UNDERPASS_PING_INTERVAL_MS: ms.default(DEFAULT_TIMERS.pingIntervalMs),
  UNDERPASS_PING_TIMEOUT_MS: ms.default(DEFAULT_TIMERS.pingTimeoutMs),
  UNDERPASS_DATABASE_URL: z.string().min(1).optional(),
  UNDERPASS_RELAY_ID: z.string().regex(RELAY_ID, "letters, digits, '.', '_' and '-', at most 64").optional(),
  UNDERPASS_RELAY_PUBLIC_URL: z
    .string()
    .regex(/^wss?:\/\/[^/]+(\/.*)?$/, "must be ws://host:port/tunnel or wss://host:port/tunnel")
    .optional(),
  UNDERPASS_RELAY_ADMIN_URL: z
    .string()
    .regex(/^https?:\/\/[^/]+\/?$/, "must be http://host:port or https://host:port")
    .optional(),
  UNDERPASS_RELAY_HEARTBEAT_MS: z.coerce.number().int().min(100).max(60_000).default(1_000),
  UNDERPASS_RELAY_LIVE_MS: z.coerce.number().int().min(500).max(600_000).default(5_000),
  // the bounds on what peers can make the relay hold (cloud/limits/bound-variables.ts:
  // UNDERPASS_SOCKS_PREAUTH_PER_SOURCE, UNDERPASS_SOCKS_PREAUTH_MAX,
  // UNDERPASS_TUNNEL_PREAUTH_PER_SOURCE, UNDERPASS_TUNNEL_PREAUTH_MAX,
  // UNDERPASS_TUNNEL_PREAUTH_TIMEOUT_MS, UNDERPASS_ADMIN_PREAUTH_PER_SOURCE,
  // UNDERPASS_ADMIN_PREAUTH_TIMEOUT_MS, UNDERPASS_SOCKS_CONNECTIONS_PER_CLIENT,
  // UNDERPASS_SOCKS_CONNECTIONS_PER_SOURCE, UNDERPASS_AUTH_FREE_FAILURES,
  // UNDERPASS_AUTH_BACKOFF_MAX_MS, UNDERPASS_ADMIN_AUTH_FAILURES, UNDERPASS_ADMIN_AUTH_WINDOW_MS,
  // UNDERPASS_ADMIN_AUTH_DELAY_MS,
  // UNDERPASS_TUNNELS_PER_AGENT, UNDERPASS_TUNNEL_MAX_STREAMS,
  // UNDERPASS_TUNNEL_MAX_PENDING_OPENS, UNDERPASS_BIND_PER_CLIENT, UNDERPASS_BIND_PER_AGENT,
  // UNDERPASS_BUFFER_BUDGET_BYTES, UNDERPASS_CLIENT_BUFFER_BYTES, UNDERPASS_IDLE_TIMEOUT_MS,
  // UNDERPASS_FTP_IDLE_TIMEOUT_MS, UNDERPASS_LOG_SUMMARY_MS)
  ...boundsEnvShape,
});

export function relayConfigFromEnv(env: NodeJS.ProcessEnv, logger: Logger): RelayConfig {
  const e = parseEnv(relayEnv, env);
  const tls = tlsPair(e.UNDERPASS_TLS_CERT, e.UNDERPASS_TLS_KEY, TUNNEL_TLS);
  const adminTls = tlsPair(e.UNDERPASS_ADMIN_TLS_CERT, e.UNDERPASS_ADMIN_TLS_KEY, ADMIN_TLS);
  const listeners = {
    UNDERPASS_TUNNEL_LISTEN: parseListen(e.UNDERPASS_TUNNEL_LISTEN, "UNDERPASS_TUNNEL_LISTEN"),
    UNDERPASS_SOCKS_LISTEN: parseListen(e.UNDERPASS_SOCKS_LISTEN, "UNDERPASS_SOCKS_LISTEN"),
    UNDERPASS_ADMIN_LISTEN: parseListen(e.UNDERPASS_ADMIN_LISTEN, "UNDERPASS_ADMIN_LISTEN"),
  };
  // a URL the store could not use is a start-up error naming the variable (postgres-url.ts)
  if (e.UNDERPASS_DATABASE_URL) parseDatabaseUrl(e.UNDERPASS_DATABASE_URL);
  return {
    tunnelListen: listeners.UNDERPASS_TUNNEL_LISTEN,
    socksListen: listeners.UNDERPASS_SOCKS_LISTEN,
    adminListen: listeners.UNDERPASS_ADMIN_LISTEN,
    metricsListen:
      e.UNDERPASS_METRICS_LISTEN === undefined
        ? undefined
        : metricsListen(e.UNDERPASS_METRICS_LISTEN, listeners),
    dataDir: e.UNDERPASS_DATA_DIR,
    adminToken: e.UNDERPASS_ADMIN_TOKEN,
    tls,
    adminTls,
    socksNoAuth: envFlag(e.UNDERPASS_SOCKS_NO_AUTH),
    anonymousLocation: e.UNDERPASS_SOCKS_NO_AUTH_LOCATION,
    dialTimeoutMs: e.UNDERPASS_DIAL_TIMEOUT_MS,
    socksHandshakeTimeoutMs: e.UNDERPASS_SOCKS_HANDSHAKE_TIMEOUT_MS,
    bindTimeoutMs: e.UNDERPASS_BIND_TIMEOUT_MS,
    ftpPasvAddress: e.UNDERPASS_FTP_PASV_ADDRESS,
    timers: { pingIntervalMs: e.UNDERPASS_PING_INTERVAL_MS, pingTimeoutMs: e.UNDERPASS_PING_TIMEOUT_MS },
    databaseUrl: e.UNDERPASS_DATABASE_URL,
    relayId: e.UNDERPASS_RELAY_ID,
    publicUrl: e.UNDERPASS_RELAY_PUBLIC_URL,
    adminUrl: e.UNDERPASS_RELAY_ADMIN_URL?.replace(/\/$/, ""),
    membership: membershipTimers(e.UNDERPASS_RELAY_HEARTBEAT_MS, e.UNDERPASS_RELAY_LIVE_MS),
    bounds: boundsFromEnv(e),
    tlsReload: {
      watch: e.UNDERPASS_TLS_WATCH === undefined || envFlag(e.UNDERPASS_TLS_WATCH),
      debounceMs: e.UNDERPASS_TLS_RELOAD_DEBOUNCE_MS,
    },
    logger,
  };
}

/** A relay is live for at least two heartbeats: one late heartbeat does not drop it. */
function membershipTimers(heartbeatMs: number, liveMs: number): { heartbeatMs: number; liveMs: number } {
  if (liveMs < 2 * heartbeatMs) {
    const message = `must be at least twice UNDERPASS_RELAY_HEARTBEAT_MS (${heartbeatMs})`;
    throw new ValidationError(`UNDERPASS_RELAY_LIVE_MS=${liveMs}: ${message}`, [
      { path: "UNDERPASS_RELAY_LIVE_MS", message },
    ]);
  }
  return { heartbeatMs, liveMs };
}

const METRICS_LISTEN = "UNDERPASS_METRICS_LISTEN";

/**
 * UNDERPASS_METRICS_LISTEN, when set: `host:port` whose host is an IP address or a DNS name, on
 * a port no other listener of the relay takes. Either mistake would otherwise stop the relay
 * only once it tries to listen, with a system error that names no variable.
 */
function metricsListen(value: string, others: Readonly<Record<string, ListenAddress>>): ListenAddress {
  const at = parseListen(value, METRICS_LISTEN);
  const problem = hostProblem(at.host);
  if (problem !== undefined) {
    throw new ValidationError(`${METRICS_LISTEN}=${value}: ${problem}`, [
      { path: METRICS_LISTEN, message: problem },
    ]);
  }
  for (const [name, other] of Object.entries(others)) {
    if (
      at.port !== 0 &&
      at.port === other.port &&
      (at.host === other.host || isWildcard(at.host) || isWildcard(other.host))
    ) {
      const message = `port ${at.port} is taken by ${name}`;
      throw new ValidationError(`${METRICS_LISTEN}=${value}: ${message}`, [
        { path: METRICS_LISTEN, message },
      ]);
    }
  }
  return at;
}

/** The variable names of one certificate and key pair. */
interface TlsNames {
  readonly cert: string;
  readonly key: string;
}

const TUNNEL_TLS: TlsNames = { cert: "UNDERPASS_TLS_CERT", key: "UNDERPASS_TLS_KEY" };
const ADMIN_TLS: TlsNames = { cert: "UNDERPASS_ADMIN_TLS_CERT", key: "UNDERPASS_ADMIN_TLS_KEY" };

/** Both files or neither; when both, checked now (checkTlsPair). */
function tlsPair(
  certFile: string | undefined,
  keyFile: string | undefined,
  names: TlsNames,
): { certFile: string; keyFile: string } | undefined {
  if (Boolean(certFile) !== Boolean(keyFile)) {
    const missing = certFile ? names.key : names.cert;
    throw new ValidationError(
      `${names.cert} and ${names.key} go together: set both or neither (${missing} is not set)`,
      [{ path: missing, message: "is required with the other TLS variable" }],
    );
  }
  if (!certFile || !keyFile) return undefined;
  checkTlsPair(certFile, keyFile, names);
  return { certFile, keyFile };
}

/**
 * Reads the certificate and key now, so that a missing file or a key that does not match
 * its certificate is a configuration error naming the variable, before the store is opened
 * or anything listens.
 */
function checkTlsPair(certFile: string, keyFile: string, names: TlsNames): void {
  const read = (file: string, name: string): Buffer => {
    try {
      return readFileSync(file);
    } catch (err) {
      const why = (err as NodeJS.ErrnoException).code ?? String(err);
      throw new ValidationError(`${name}=${file} cannot be read (${why})`, [{ path: name, message: why }]);
    }
  };
  const cert = read(certFile, names.cert);
  const key = read(keyFile, names.key);
  try {
    createSecureContext({ cert, key });
  } catch (err) {
    const why = err instanceof Error ? err.message : String(err);
    throw new ValidationError(`${names.cert} / ${names.key} are not a usable PEM pair: ${why}`, [
      { path: names.cert, message: why },
    ]);
  }
}
