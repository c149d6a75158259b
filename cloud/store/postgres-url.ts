/**
 * `UNDERPASS_DATABASE_URL` → what `pg` needs. The URL is read here, not by `pg`'s own parser,
 * so that the TLS modes mean what libpq says they mean (pg 8 treats `require` as `verify-full`
 * and warns) and a mode the driver cannot honour is refused rather than guessed at:
 *
 * | URL asks for                           | TLS | server certificate checked                  |
 * |----------------------------------------|-----|---------------------------------------------|
 * | nothing, `sslmode=disable`, `ssl=false`| no  | —                                           |
 * | `sslmode=require`                      | yes | no (with `sslrootcert`: chain, as verify-ca) |
 * | `sslmode=verify-ca`                    | yes | chain (system CAs or `sslrootcert`)          |
 * | `sslmode=verify-full`, `ssl=true`      | yes | chain and host name                          |
 *
 * `prefer` and `allow` are refused: they fall back to plain text, which `pg` cannot do.
 * `sslrootcert`, `sslcert` and `sslkey` name PEM files; `connect_timeout` is in seconds
 * (libpq), `application_name` is passed on. The password never reaches a message.
 */
import { readFileSync } from "node:fs";
import type { ConnectionOptions } from "node:tls";
import type { PoolConfig } from "pg";
import { ValidationError } from "../../shared/errors.js";

export type TlsMode = "disable" | "require" | "verify-ca" | "verify-full";

export interface DatabaseTarget {
  readonly host: string;
  readonly port: number;
  readonly database: string;
  readonly user: string;
  readonly password: string | undefined;
  readonly tls: TlsMode;
  readonly rootCertFile: string | undefined;
  readonly certFile: string | undefined;
  readonly keyFile: string | undefined;
  /** ms; undefined: the store's default. */
  readonly connectTimeoutMs: number | undefined;
  readonly applicationName: string | undefined;
}

const VARIABLE = "UNDERPASS_DATABASE_URL";
const KNOWN_PARAMETERS = new Set([
  "sslmode",
  "ssl",
  "sslrootcert",
  "sslcert",
  "sslkey",
  "connect_timeout",
  "application_name",
]);

function refuse(message: string): never {
  throw new ValidationError(`${VARIABLE}: ${message}`, [{ path: VARIABLE, message }]);
}

function tlsModeOf(params: URLSearchParams): TlsMode {
  const sslmode = params.get("sslmode");
  const ssl = params.get("ssl");
  if (sslmode !== null) {
    if (
      sslmode === "disable" ||
      sslmode === "require" ||
      sslmode === "verify-ca" ||
      sslmode === "verify-full"
    )
      return sslmode;
    if (sslmode === "prefer" || sslmode === "allow")
      refuse(
        `sslmode=${sslmode} may fall back to an unencrypted connection, which the driver cannot do; use disable, require, verify-ca or verify-full`,
      );
    refuse(`unknown sslmode "${sslmode}"; use disable, require, verify-ca or verify-full`);
  }
  if (ssl === null || ssl === "false" || ssl === "0") return "disable";
  if (ssl === "true" || ssl === "1") return "verify-full";
  return refuse(`ssl=${ssl} is neither true nor false`);
}

/** Reads and checks the URL (no file is read yet); a ValidationError names what is wrong. */
export function parseDatabaseUrl(text: string): DatabaseTarget {
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    return refuse("not a URL; expected postgres://user:password@host:5432/database");
  }
  if (url.protocol !== "postgres:" && url.protocol !== "postgresql:")
    refuse(`the scheme is ${url.protocol.replace(/:$/, "")}; expected postgres:// or postgresql://`);
  for (const name of url.searchParams.keys())
    if (!KNOWN_PARAMETERS.has(name))
      refuse(`unsupported parameter "${name}"; known: ${[...KNOWN_PARAMETERS].join(", ")}`);
  const host = decodeURIComponent(url.hostname).replace(/^\[(.+)\]$/, "$1");
  if (host === "") refuse("no host name");
  const database = decodeURIComponent(url.pathname.replace(/^\//, ""));
  if (database === "" || database.includes("/"))
    refuse("name one database as the path: postgres://…/underpass");
  const user = decodeURIComponent(url.username);
  if (user === "") refuse("no user name: postgres://user@host/database");
  const port = url.port === "" ? 5432 : Number(url.port);
  const timeout = url.searchParams.get("connect_timeout");
  let connectTimeoutMs: number | undefined;
  if (timeout !== null) {
    const seconds = Number(timeout);
    if (!Number.isInteger(seconds) || seconds < 1 || seconds > 3600)
      refuse("connect_timeout is a number of seconds, 1 to 3600");
    connectTimeoutMs = seconds * 1000;
  }
  const tls = tlsModeOf(url.searchParams);
  const file = (name: string): string | undefined => url.searchParams.get(name) ?? undefined;
  if (tls === "disable" && (file("sslrootcert") || file("sslcert") || file("sslkey")))
    refuse("sslrootcert, sslcert and sslkey need TLS: add sslmode=verify-full (or require, verify-ca)");
  return {
    host,
    port,
    database,
    user,
    password: url.password === "" ? undefined : decodeURIComponent(url.password),
    tls,
    rootCertFile: file("sslrootcert"),
    certFile: file("sslcert"),
    keyFile: file("sslkey"),
    connectTimeoutMs,
    applicationName: url.searchParams.get("application_name") ?? undefined,
  };
}

/** `user@host:port/database (TLS verify-full)`: where the store connects, without the password. */
export function describeTarget(t: DatabaseTarget): string {
  const host = t.host.includes(":") ? `[${t.host}]` : t.host;
  return `${t.user}@${host}:${t.port}/${t.database} (${t.tls === "disable" ? "no TLS" : `TLS ${t.tls}`})`;
}

function readPem(file: string, parameter: string): string {
  try {
    return readFileSync(file, "utf8");
  } catch (err) {
    const why = (err as NodeJS.ErrnoException).code ?? String(err);
    return refuse(`${parameter}=${file} cannot be read (${why})`);
  }
}

/** Node's TLS options for the mode; files named in the URL are read now. */
function tlsOptions(t: DatabaseTarget): ConnectionOptions | false {
  if (t.tls === "disable") return false;
  const o: ConnectionOptions = {
    ...(t.rootCertFile ? { ca: readPem(t.rootCertFile, "sslrootcert") } : {}),
    ...(t.certFile ? { cert: readPem(t.certFile, "sslcert") } : {}),
    ...(t.keyFile ? { key: readPem(t.keyFile, "sslkey") } : {}),
  };
  const chainOnly = t.tls === "verify-ca" || (t.tls === "require" && t.rootCertFile !== undefined);
  if (t.tls === "require" && t.rootCertFile === undefined) return { ...o, rejectUnauthorized: false };
  // libpq's verify-ca: the chain is checked, the name in the certificate is not
  if (chainOnly) return { ...o, rejectUnauthorized: true, checkServerIdentity: () => undefined };
  return { ...o, rejectUnauthorized: true };
}

/** The connection settings for a pg Pool or Client. */
export function connectionConfig(t: DatabaseTarget, defaults: { connectTimeoutMs: number }): PoolConfig {
  return {
    host: t.host,
    port: t.port,
    database: t.database,
    user: t.user,
    ...(t.password === undefined ? {} : { password: t.password }),
    ssl: tlsOptions(t),
    connectionTimeoutMillis: t.connectTimeoutMs ?? defaults.connectTimeoutMs,
    application_name: t.applicationName ?? "underpass",
    // a dead peer behind a silent network shows within about a minute, not two hours
    keepAlive: true,
    keepAliveInitialDelayMillis: 10_000,
  };
}
