/**
 * The configuration in memory, frozen, with the lookups the SOCKS and tunnel hot paths use.
 * Both stores answer every read from one of these: the file store from what it last wrote, the
 * PostgreSQL store from what its change feed last applied. A new snapshot replaces the old one
 * as a whole, so a reader never sees half a change.
 */
import type { AgentRecord, ClientRecord, ConfigData, MappingRecord, StoreData } from "./store.js";

const NO_MAPPINGS: readonly MappingRecord[] = Object.freeze([]);

/** A record already frozen by an earlier snapshot is shared as it is; others are copied and frozen. */
function frozen<T extends object>(r: T, freeze: (r: T) => T): T {
  return Object.isFrozen(r) ? r : freeze(r);
}

/** Records handed out are frozen: readers share them and must not change them behind the store's back. */
function freezeData(d: StoreData): StoreData {
  return Object.freeze({
    version: d.version,
    adminTokenHash: d.adminTokenHash,
    agents: Object.freeze(d.agents.map((a) => frozen(a, (x) => Object.freeze({ ...x })))),
    clients: Object.freeze(d.clients.map((c) => frozen(c, (x) => Object.freeze({ ...x })))),
    mappings: Object.freeze(
      d.mappings.map((m) =>
        Object.isFrozen(m.virtualPort) && Object.isFrozen(m.internalPort)
          ? frozen(m, (x) => Object.freeze({ ...x }))
          : Object.freeze({
              ...m,
              virtualPort: Object.freeze({ ...m.virtualPort }),
              internalPort: Object.freeze({ ...m.internalPort }),
            }),
      ),
    ),
  });
}

export class ConfigSnapshot {
  readonly data: StoreData;
  readonly agentsById: ReadonlyMap<string, AgentRecord>;
  readonly agentsByTokenHash: ReadonlyMap<string, AgentRecord>;
  readonly clientsById: ReadonlyMap<string, ClientRecord>;
  readonly clientsByUsername: ReadonlyMap<string, ClientRecord>;
  readonly mappingsById: ReadonlyMap<string, MappingRecord>;
  readonly #mappingsByLocation: ReadonlyMap<string, readonly MappingRecord[]>;

  constructor(data: StoreData) {
    const d = freezeData(data);
    this.data = d;
    const byLocation = new Map<string, MappingRecord[]>();
    for (const m of d.mappings) {
      const list = byLocation.get(m.location);
      if (list) list.push(m);
      else byLocation.set(m.location, [m]);
    }
    for (const list of byLocation.values()) Object.freeze(list);
    this.#mappingsByLocation = byLocation;
    this.agentsById = new Map(d.agents.map((a) => [a.id, a]));
    this.agentsByTokenHash = new Map(d.agents.map((a) => [a.tokenHash, a]));
    this.clientsById = new Map(d.clients.map((c) => [c.id, c]));
    this.clientsByUsername = new Map(d.clients.map((c) => [c.username, c]));
    this.mappingsById = new Map(d.mappings.map((m) => [m.id, m]));
  }

  static empty(): ConfigSnapshot {
    return new ConfigSnapshot({ version: 1, adminTokenHash: null, agents: [], clients: [], mappings: [] });
  }

  /** The mappings of one location, in the order they were added. */
  mappingsIn(location: string): readonly MappingRecord[] {
    return this.#mappingsByLocation.get(location) ?? NO_MAPPINGS;
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
