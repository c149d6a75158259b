/**
 * What makes a configuration whole, for every store: records of the right shape, no two with
 * the same id, token hash or username, and no two mappings of a location that overlap. A file
 * is loaded through it and an import is refused by it before anything is written.
 */
import { z } from "zod";
import { ConflictError } from "../../shared/errors.js";
import { refuseOverlap } from "./overlap.js";
import type { ConfigData, MappingRecord } from "./store.js";

export const hash = z.string().regex(/^[0-9a-f]{64}$/, "expected a SHA-256 hex digest");
const isoTime = z.iso.datetime({ offset: true });
const id = z.string().min(1);
const portRange = z
  .object({ start: z.number().int().min(1).max(65535), end: z.number().int().min(1).max(65535) })
  .refine((r) => r.start <= r.end, "range ends before it starts");

export const agentRecord = z.object({
  id,
  name: z.string(),
  location: z.string().min(1),
  tokenHash: hash,
  createdAt: isoTime,
  lastSeenAt: isoTime.nullable().optional(),
  lastAddress: z.string().nullable().optional(),
  singleInstance: z.literal(true).optional(),
});
export const clientRecord = z.object({
  id,
  name: z.string(),
  location: z.string().min(1),
  username: z.string().min(1).max(255),
  passwordHash: hash,
  createdAt: isoTime,
  lastUsedAt: isoTime.nullable().optional(),
  lastAddress: z.string().nullable().optional(),
});
export const mappingRecord = z.object({
  id,
  virtualHost: z.string().min(1),
  virtualPort: portRange,
  internalHost: z.string().min(1),
  internalPort: portRange,
  location: z.string().min(1),
  protocol: z.enum(["tcp", "ftp"]),
  description: z.string(),
  createdAt: isoTime,
  updatedAt: isoTime,
});

function uniqueBy<T>(key: keyof T & string, what: string) {
  return (items: readonly T[], ctx: z.RefinementCtx) => {
    const seen = new Set<unknown>();
    items.forEach((item, index) => {
      if (seen.has(item[key]))
        ctx.addIssue({ code: "custom", path: [index, key], message: `duplicate ${what}` });
      seen.add(item[key]);
    });
  };
}

/** The configuration's records, each list free of duplicates: what a file and an import must be. */
export const configSchema = z.object({
  agents: z
    .array(agentRecord)
    .superRefine(uniqueBy("id", "agent id"))
    .superRefine(uniqueBy("tokenHash", "token hash")),
  clients: z
    .array(clientRecord)
    .superRefine(uniqueBy("id", "client id"))
    .superRefine(uniqueBy("username", "username")),
  mappings: z.array(mappingRecord).superRefine(uniqueBy("id", "mapping id")),
});

/** Throws ConflictError (or MappingConflictError naming the mapping in the way) when `config` is not whole. */
export function checkConfig(config: ConfigData): void {
  const checked = configSchema.safeParse(config);
  if (!checked.success) {
    const first = checked.error.issues[0];
    throw new ConflictError(
      `the configuration is not consistent: ${first?.path.join(".")}: ${first?.message}`,
    );
  }
  const byLocation = new Map<string, MappingRecord[]>();
  for (const m of config.mappings) {
    const list = byLocation.get(m.location) ?? [];
    refuseOverlap(list, m);
    list.push(m);
    byLocation.set(m.location, list);
  }
}
