/**
 * The configuration in memory, frozen, with the lookups the SOCKS and tunnel hot paths use.
 * Both stores answer every read from one of these: the file store from what it last wrote, the
 * PostgreSQL store from what its change feed last applied. A new snapshot replaces the old one
 * as a whole, so a reader never sees half a change; the file store derives the next one from
 * the last and what its write changed (`withChanges`), the PostgreSQL store builds it afresh.
 */
import { applyChanges, type JournalChange } from "./journal.js";
import type { AgentRecord, ClientRecord, ConfigData, MappingRecord, StoreData } from "./store.js";

const NO_MAPPINGS: readonly MappingRecord[] = Object.freeze([]);

/** Records handed out are frozen: readers share them and must not change them behind the store's back. */
function freezeAgent(a: AgentRecord): AgentRecord {
  return Object.isFrozen(a) ? a : Object.freeze({ ...a });
}

function freezeClient(c: ClientRecord): ClientRecord {
  return Object.isFrozen(c) ? c : Object.freeze({ ...c });
}

function freezeMapping(m: MappingRecord): MappingRecord {
  if (Object.isFrozen(m) && Object.isFrozen(m.virtualPort) && Object.isFrozen(m.internalPort)) return m;
  return Object.freeze({
    ...m,
    virtualPort: Object.freeze({ ...m.virtualPort }),
    internalPort: Object.freeze({ ...m.internalPort }),
  });
}

/** A record already frozen by an earlier snapshot is shared as it is; others are copied and frozen. */
function freezeData(d: StoreData): StoreData {
  return Object.freeze({
    version: d.version,
    adminTokenHash: d.adminTokenHash,
    agents: Object.freeze(d.agents.map(freezeAgent)),
    clients: Object.freeze(d.clients.map(freezeClient)),
    mappings: Object.freeze(d.mappings.map(freezeMapping)),
  });
}

/** The lookups of a snapshot, which `withChanges` hands on to the next one. */
interface Indexes {
  readonly agentsById: Map<string, AgentRecord>;
  readonly agentsByTokenHash: Map<string, AgentRecord>;
  readonly clientsById: Map<string, ClientRecord>;
  readonly clientsByUsername: Map<string, ClientRecord>;
  readonly mappingsById: Map<string, MappingRecord>;
  readonly mappingsByLocation: Map<string, readonly MappingRecord[]>;
  /** By location and lower-case virtual host (`hostKey`), in the order of all mappings. */
  readonly mappingsByHost: Map<string, readonly MappingRecord[]>;
}

function hostKey(location: string, virtualHost: string): string {
  return `${location}\u0000${virtualHost.toLowerCase()}`;
}

/** Group `mappings` by `key`, each group frozen, in their order. */
function groupBy(
  mappings: readonly MappingRecord[],
  key: (m: MappingRecord) => string,
): Map<string, readonly MappingRecord[]> {
  const groups = new Map<string, MappingRecord[]>();
  for (const m of mappings) {
    const k = key(m);
    const list = groups.get(k);
    if (list) list.push(m);
    else groups.set(k, [m]);
  }
  for (const list of groups.values()) Object.freeze(list);
  return groups;
}

function buildIndexes(d: StoreData): Indexes {
  return {
    agentsById: new Map(d.agents.map((a) => [a.id, a])),
    agentsByTokenHash: new Map(d.agents.map((a) => [a.tokenHash, a])),
    clientsById: new Map(d.clients.map((c) => [c.id, c])),
    clientsByUsername: new Map(d.clients.map((c) => [c.username, c])),
    mappingsById: new Map(d.mappings.map((m) => [m.id, m])),
    mappingsByLocation: groupBy(d.mappings, (m) => m.location),
    mappingsByHost: groupBy(d.mappings, (m) => hostKey(m.location, m.virtualHost)),
  };
}

/** More changes than this at once (a batch of last-seen notes) build the next snapshot afresh. */
const INCREMENTAL_CHANGES = 16;

/**
 * One put (`record`) or delete (`change.id`) on a list and its indexes: by id, and by the
 * record's other unique key when it has one. The list is copied, the indexes are changed.
 */
function apply<T extends { readonly id: string }>(
  list: readonly T[],
  byId: Map<string, T>,
  byKey: Map<string, T> | null,
  key: ((r: T) => string) | null,
  change: { readonly id: string } | { readonly record: { readonly id: string } },
  record: T | null,
): { list: readonly T[]; old: T | undefined } {
  const old = byId.get("id" in change ? change.id : change.record.id);
  if (old && byKey && key && byKey.get(key(old)) === old) byKey.delete(key(old));
  if (record === null) {
    if (old === undefined) return { list, old };
    byId.delete(old.id);
    return { list: list.filter((r) => r !== old), old };
  }
  byId.set(record.id, record);
  if (byKey && key) byKey.set(key(record), record);
  const at = old === undefined ? -1 : list.indexOf(old);
  if (at === -1) return { list: [...list, record], old };
  const copy = list.slice();
  copy[at] = record;
  return { list: copy, old };
}

/**
 * A grouping of the mappings (by location, by host) kept in step with puts and deletes, each
 * group in the order of all mappings: a new record goes at the end, a replaced one stays where
 * it was, and a group a replaced record moved into is regrouped from all mappings at the end.
 */
class Grouping {
  readonly #groups: Map<string, readonly MappingRecord[]>;
  readonly #key: (m: MappingRecord) => string;
  readonly #moved = new Set<string>();

  constructor(groups: Map<string, readonly MappingRecord[]>, key: (m: MappingRecord) => string) {
    this.#groups = groups;
    this.#key = key;
  }

  change(old: MappingRecord | undefined, record: MappingRecord | null): void {
    const to = record ? this.#key(record) : null;
    if (old) {
      const from = this.#key(old);
      const list = this.#groups.get(from) ?? [];
      if (record && to === from) {
        this.#set(
          from,
          list.map((m) => (m === old ? record : m)),
        );
        return;
      }
      this.#set(
        from,
        list.filter((m) => m !== old),
      );
    }
    if (record && to !== null) {
      if (old) this.#moved.add(to);
      else this.#set(to, [...(this.#groups.get(to) ?? []), record]);
    }
  }

  /** Regroups the groups a replaced record moved into, from `all` in its order. */
  finish(all: readonly MappingRecord[]): void {
    for (const k of this.#moved) {
      this.#set(
        k,
        all.filter((m) => this.#key(m) === k),
      );
    }
  }

  #set(key: string, list: readonly MappingRecord[]): void {
    if (list.length > 0) this.#groups.set(key, Object.freeze(list));
    else this.#groups.delete(key);
  }
}

export class ConfigSnapshot {
  readonly data: StoreData;
  readonly agentsById: ReadonlyMap<string, AgentRecord>;
  readonly agentsByTokenHash: ReadonlyMap<string, AgentRecord>;
  readonly clientsById: ReadonlyMap<string, ClientRecord>;
  readonly clientsByUsername: ReadonlyMap<string, ClientRecord>;
  readonly mappingsById: ReadonlyMap<string, MappingRecord>;
  readonly #indexes: Indexes;
  /** Its indexes went to the next snapshot (`withChanges`). */
  #handedOn = false;

  /** `indexes` only from `withChanges`, for data it froze itself. */
  constructor(data: StoreData, indexes?: Indexes) {
    const d = indexes ? data : freezeData(data);
    this.data = d;
    const ix = indexes ?? buildIndexes(d);
    this.#indexes = ix;
    this.agentsById = ix.agentsById;
    this.agentsByTokenHash = ix.agentsByTokenHash;
    this.clientsById = ix.clientsById;
    this.clientsByUsername = ix.clientsByUsername;
    this.mappingsById = ix.mappingsById;
  }

  /**
   * The next snapshot: this one with `changes` applied, costing what changed (and a copy of the
   * lists it touches) rather than a rebuild of every index. It takes this snapshot's indexes
   * over and changes them, so this snapshot must not be read afterwards: for a store that keeps
   * one snapshot and swaps it, right after its write is durable.
   */
  withChanges(changes: readonly JournalChange[]): ConfigSnapshot {
    if (changes.length > INCREMENTAL_CHANGES || changes.some((c) => c.op === "import")) {
      return new ConfigSnapshot(applyChanges(this.data, changes));
    }
    if (this.#handedOn) throw new Error("this snapshot's indexes were handed on: derive from the newest one");
    this.#handedOn = true;
    const ix = this.#indexes;
    let { adminTokenHash, agents, clients, mappings } = this.data;
    const byLocation = new Grouping(ix.mappingsByLocation, (m) => m.location);
    const byHost = new Grouping(ix.mappingsByHost, (m) => hostKey(m.location, m.virtualHost));
    for (const c of changes) {
      if (c.op === "admin") {
        adminTokenHash = c.adminTokenHash;
      } else if (c.op === "import") {
        throw new Error("an import builds the snapshot afresh"); // taken care of above
      } else if (c.entity === "agents") {
        const record = c.op === "put" ? freezeAgent(c.record) : null;
        agents = apply(agents, ix.agentsById, ix.agentsByTokenHash, (a) => a.tokenHash, c, record).list;
      } else if (c.entity === "clients") {
        const record = c.op === "put" ? freezeClient(c.record) : null;
        clients = apply(clients, ix.clientsById, ix.clientsByUsername, (r) => r.username, c, record).list;
      } else {
        const record = c.op === "put" ? freezeMapping(c.record) : null;
        const done = apply(mappings, ix.mappingsById, null, null, c, record);
        mappings = done.list;
        byLocation.change(done.old, record);
        byHost.change(done.old, record);
      }
    }
    byLocation.finish(mappings);
    byHost.finish(mappings);
    const data: StoreData = Object.freeze({
      version: this.data.version,
      adminTokenHash,
      agents: Object.freeze(agents),
      clients: Object.freeze(clients),
      mappings: Object.freeze(mappings),
    });
    return new ConfigSnapshot(data, ix);
  }

  static empty(): ConfigSnapshot {
    return new ConfigSnapshot({ version: 1, adminTokenHash: null, agents: [], clients: [], mappings: [] });
  }

  /** The mappings of one location, in the order they were added. */
  mappingsIn(location: string): readonly MappingRecord[] {
    return this.#indexes.mappingsByLocation.get(location) ?? NO_MAPPINGS;
  }

  /** The mappings of one location whose virtual host is `virtualHost`, whatever its case, in the order they were added. */
  mappingsOnHost(location: string, virtualHost: string): readonly MappingRecord[] {
    return this.#indexes.mappingsByHost.get(hostKey(location, virtualHost)) ?? NO_MAPPINGS;
  }
}

/**
 * The read half of the `Store` interface, answered at once from the current snapshot: what
 * both stores share. A subclass swaps `snapshot` whenever its data changes.
 */
export abstract class SnapshotReads {
  protected snapshot: ConfigSnapshot = ConfigSnapshot.empty();

  async adminTokenHash(): Promise<string | null> {
    return this.snapshot.data.adminTokenHash;
  }

  async listAgents(): Promise<readonly AgentRecord[]> {
    return this.snapshot.data.agents;
  }

  async getAgent(id: string): Promise<AgentRecord | undefined> {
    return this.snapshot.agentsById.get(id);
  }

  async findAgentByTokenHash(tokenHash: string): Promise<AgentRecord | undefined> {
    return this.snapshot.agentsByTokenHash.get(tokenHash);
  }

  async listClients(): Promise<readonly ClientRecord[]> {
    return this.snapshot.data.clients;
  }

  async findClientByUsername(username: string): Promise<ClientRecord | undefined> {
    return this.snapshot.clientsByUsername.get(username);
  }

  async listMappings(): Promise<readonly MappingRecord[]> {
    return this.snapshot.data.mappings;
  }

  async getMapping(id: string): Promise<MappingRecord | undefined> {
    return this.snapshot.mappingsById.get(id);
  }

  async mappingsOf(location: string): Promise<readonly MappingRecord[]> {
    return this.snapshot.mappingsIn(location);
  }

  async exportConfig(): Promise<ConfigData> {
    const { agents, clients, mappings } = this.snapshot.data;
    return { agents, clients, mappings };
  }
}
