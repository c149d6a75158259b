/**
 * What changed in the configuration, as a store that several relays share tells each of them,
 * so that a relay can act on a change another relay made (close an agent's tunnels, reset a
 * client's or a mapping's connections). A change compares a record as this relay held it with
 * the record as it is now; changes to when and where a record was last seen are not changes.
 */
import type { AgentRecord, ClientRecord, MappingRecord, StoreData } from "./store.js";

export type ChangeKind = "created" | "changed" | "deleted" | "rotated";

interface ChangeOf<E extends string, R> {
  readonly entity: E;
  readonly id: string;
  /** `rotated`: the token (agent) or password (client) is another one. */
  readonly kind: ChangeKind;
  /** As this relay held it; null when it is new. */
  readonly before: R | null;
  /** As it is now; null when it is gone. */
  readonly after: R | null;
  /** Made through this very store (its relay has already acted on it). */
  readonly local: boolean;
}

export type ConfigChange =
  | ChangeOf<"agent", AgentRecord>
  | ChangeOf<"client", ClientRecord>
  | ChangeOf<"mapping", MappingRecord>;

/** The changes one catch-up applied, all at once: the snapshot already holds them. */
export interface ConfigChangeBatch {
  /** The configuration version the snapshot is at now. */
  readonly version: number;
  readonly changes: readonly ConfigChange[];
}

export type ConfigChangeListener = (batch: ConfigChangeBatch) => void;

/** Whether the store can take writes now; reads are answered from memory either way. */
export interface StoreHealth {
  readonly state: "available" | "unavailable";
  /** The configuration version held in memory. */
  readonly version: number;
}

type Keyed = { readonly id: string };

/** JSON with the keys of every object sorted, so that two equal records give the same text. */
function canonical(v: unknown): string {
  if (v === null || typeof v !== "object") return JSON.stringify(v) ?? "null";
  const o = v as Record<string, unknown>;
  const keys = Object.keys(o)
    .filter((k) => o[k] !== undefined)
    .sort();
  return `{${keys.map((k) => `${JSON.stringify(k)}:${canonical(o[k])}`).join(",")}}`;
}

/** The fields that make a record's configuration, without when and where it was last seen. */
function configOf(r: object): string {
  const { lastSeenAt: _s, lastUsedAt: _u, lastAddress: _a, ...rest } = r as Record<string, unknown>;
  return canonical(rest);
}

function kindOf<R extends Keyed>(
  before: R | null,
  after: R | null,
  secret: keyof R | null,
): ChangeKind | null {
  if (before === null) return after === null ? null : "created";
  if (after === null) return "deleted";
  if (secret !== null && before[secret] !== after[secret]) return "rotated";
  if (configOf(before) !== configOf(after)) return "changed";
  return null;
}

function diffList<E extends ConfigChange["entity"], R extends Keyed>(
  entity: E,
  before: readonly R[],
  after: readonly R[],
  secret: keyof R | null,
  isLocal: (entity: E, id: string) => boolean,
  only: ((entity: E, id: string) => boolean) | null,
  out: ConfigChange[],
): void {
  const old = new Map(before.map((r) => [r.id, r]));
  const next = new Map(after.map((r) => [r.id, r]));
  for (const id of new Set([...old.keys(), ...next.keys()])) {
    if (only !== null && !only(entity, id)) continue;
    const b = old.get(id) ?? null;
    const a = next.get(id) ?? null;
    const kind = kindOf(b, a, secret);
    if (kind === null) continue;
    out.push({ entity, id, kind, before: b, after: a, local: isLocal(entity, id) } as ConfigChange);
  }
}

/**
 * The changes between two pictures of the configuration, agents first, then clients, then
 * mappings. `isLocal` says whether every write that touched a record came from this store;
 * `only`, when known, which records may differ at all (the others are not compared).
 */
export function diffConfig(
  before: StoreData,
  after: StoreData,
  isLocal: (entity: ConfigChange["entity"], id: string) => boolean,
  only: ((entity: ConfigChange["entity"], id: string) => boolean) | null = null,
): ConfigChange[] {
  const out: ConfigChange[] = [];
  diffList<"agent", AgentRecord>("agent", before.agents, after.agents, "tokenHash", isLocal, only, out);
  diffList<"client", ClientRecord>(
    "client",
    before.clients,
    after.clients,
    "passwordHash",
    isLocal,
    only,
    out,
  );
  diffList<"mapping", MappingRecord>("mapping", before.mappings, after.mappings, null, isLocal, only, out);
  return out;
}
