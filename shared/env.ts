/** Helpers to read environment variables through zod, with errors that name the variable. */
import type { z } from "zod";
import { ValidationError } from "./errors.js";

/** `host:port`, `[v6]:port` or `:port`, as in UNDERPASS_*_LISTEN. */
export function parseListen(value: string, name: string): { host: string; port: number } {
  const m = /^(?:\[([^\]]+)\]|([^:]*)):(\d{1,5})$/.exec(value.trim());
  const port = m ? Number(m[3]) : Number.NaN;
  if (!m || port > 65535) {
    throw new ValidationError(`${name}=${value} is not host:port`, [
      { path: name, message: "expected host:port" },
    ]);
  }
  return { host: m[1] ?? (m[2] || "0.0.0.0"), port };
}

/** Parse `env` with `schema`, turning issues into one ValidationError that names each variable. */
export function parseEnv<T extends z.ZodType>(schema: T, env: NodeJS.ProcessEnv): z.output<T> {
  const r = schema.safeParse(env);
  if (r.success) return r.data;
  const issues = r.error.issues.map((i) => ({ path: i.path.join("."), message: i.message }));
  throw new ValidationError(
    `invalid configuration: ${issues.map((i) => `${i.path}: ${i.message}`).join("; ")}`,
    issues,
  );
}

/** "1", "true", "yes", "on" (any case) are true. */
export function envFlag(value: string | undefined): boolean {
  return value !== undefined && /^(1|true|yes|on)$/i.test(value.trim());
}
