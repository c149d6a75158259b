/** `underpass cloud` configuration from the environment (DESIGN.md: the contract). */
import { readFileSync } from "node:fs";
import { isIPv4 } from "node:net";
import { createSecureContext } from "node:tls";
import { z } from "zod";
import { envFlag, parseEnv, parseListen } from "../shared/env.js";
import { ValidationError } from "../shared/errors.js";
import type { Logger } from "../shared/logger.js";
import type { RelayConfig } from "./relay.js";
import { parseDatabaseUrl } from "./store/postgres-url.js";

const ms = z.coerce.number().int().min(1).max(3_600_000);

const relayEnv = z.object({
  UNDERPASS_TUNNEL_LISTEN: z.string().default("0.0.0.0:8443"),
  UNDERPASS_SOCKS_LISTEN: z.string().default("0.0.0.0:1080"),
  UNDERPASS_ADMIN_LISTEN: z.string().default("127.0.0.1:8081"),
  UNDERPASS_DATA_DIR: z.string().min(1).default("./underpass-data"),
  UNDERPASS_ADMIN_TOKEN: z.string().min(16, "use at least 16 characters").optional(),
  UNDERPASS_TLS_CERT: z.string().optional(),
  UNDERPASS_TLS_KEY: z.string().optional(),
  UNDERPASS_SOCKS_NO_AUTH: z.string().optional(),
  UNDERPASS_SOCKS_NO_AUTH_LOCATION: z.string().default("default"),
  UNDERPASS_DIAL_TIMEOUT_MS: ms.default(10_000),
  UNDERPASS_SOCKS_HANDSHAKE_TIMEOUT_MS: ms.default(10_000),
  UNDERPASS_BIND_TIMEOUT_MS: ms.default(60_000),
  UNDERPASS_FTP_PASV_ADDRESS: z
    .string()
    .refine((v) => isIPv4(v), "must be an IPv4 address")
    .optional(),
  UNDERPASS_PING_INTERVAL_MS: ms.default(5_000),
  UNDERPASS_PING_TIMEOUT_MS: ms.default(15_000),
  UNDERPASS_DATABASE_URL: z.string().min(1).optional(),
});

export function relayConfigFromEnv(env: NodeJS.ProcessEnv, logger: Logger): RelayConfig {
  const e = parseEnv(relayEnv, env);
  if (Boolean(e.UNDERPASS_TLS_CERT) !== Boolean(e.UNDERPASS_TLS_KEY)) {
    const missing = e.UNDERPASS_TLS_CERT ? "UNDERPASS_TLS_KEY" : "UNDERPASS_TLS_CERT";
    throw new ValidationError(
      `UNDERPASS_TLS_CERT and UNDERPASS_TLS_KEY go together: set both or neither (${missing} is not set)`,
      [{ path: missing, message: "is required with the other TLS variable" }],
    );
  }
  if (e.UNDERPASS_TLS_CERT && e.UNDERPASS_TLS_KEY) checkTlsPair(e.UNDERPASS_TLS_CERT, e.UNDERPASS_TLS_KEY);
  // a URL the store could not use is a start-up error naming the variable (postgres-url.ts)
  if (e.UNDERPASS_DATABASE_URL) parseDatabaseUrl(e.UNDERPASS_DATABASE_URL);
  return {
    tunnelListen: parseListen(e.UNDERPASS_TUNNEL_LISTEN, "UNDERPASS_TUNNEL_LISTEN"),
    socksListen: parseListen(e.UNDERPASS_SOCKS_LISTEN, "UNDERPASS_SOCKS_LISTEN"),
    adminListen: parseListen(e.UNDERPASS_ADMIN_LISTEN, "UNDERPASS_ADMIN_LISTEN"),
    dataDir: e.UNDERPASS_DATA_DIR,
    adminToken: e.UNDERPASS_ADMIN_TOKEN,
    tls:
      e.UNDERPASS_TLS_CERT && e.UNDERPASS_TLS_KEY
        ? { certFile: e.UNDERPASS_TLS_CERT, keyFile: e.UNDERPASS_TLS_KEY }
        : undefined,
    socksNoAuth: envFlag(e.UNDERPASS_SOCKS_NO_AUTH),
    anonymousLocation: e.UNDERPASS_SOCKS_NO_AUTH_LOCATION,
    dialTimeoutMs: e.UNDERPASS_DIAL_TIMEOUT_MS,
    socksHandshakeTimeoutMs: e.UNDERPASS_SOCKS_HANDSHAKE_TIMEOUT_MS,
    bindTimeoutMs: e.UNDERPASS_BIND_TIMEOUT_MS,
    ftpPasvAddress: e.UNDERPASS_FTP_PASV_ADDRESS,
    timers: { pingIntervalMs: e.UNDERPASS_PING_INTERVAL_MS, pingTimeoutMs: e.UNDERPASS_PING_TIMEOUT_MS },
    databaseUrl: e.UNDERPASS_DATABASE_URL,
    logger,
  };
}

/**
 * Reads the certificate and key now, so that a missing file or a key that does not match
 * its certificate is a configuration error naming the variable, before the store is opened
 * or anything listens.
 */
function checkTlsPair(certFile: string, keyFile: string): void {
  const read = (file: string, name: string): Buffer => {
    try {
      return readFileSync(file);
    } catch (err) {
      const why = (err as NodeJS.ErrnoException).code ?? String(err);
      throw new ValidationError(`${name}=${file} cannot be read (${why})`, [{ path: name, message: why }]);
    }
  };
  const cert = read(certFile, "UNDERPASS_TLS_CERT");
  const key = read(keyFile, "UNDERPASS_TLS_KEY");
  try {
    createSecureContext({ cert, key });
  } catch (err) {
    const why = err instanceof Error ? err.message : String(err);
    throw new ValidationError(`UNDERPASS_TLS_CERT / UNDERPASS_TLS_KEY are not a usable PEM pair: ${why}`, [
      { path: "UNDERPASS_TLS_CERT", message: why },
    ]);
  }
}
