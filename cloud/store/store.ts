/**
 * The relay's persistent data behind one interface, so that a shared database can replace
 * the embedded file store when several relays serve the same agents. Secrets are kept only
 * as hashes (`tokenHash`, `passwordHash`, SHA-256 hex of high-entropy generated secrets).
 */
import type pg from "pg";
import type { PortRange } from "../../shared/net/port-range.js";
import type { ConfigChangeListener, StoreHealth } from "./changes.js";

export type MappingProtocol = "tcp" | "ftp";

export interface AgentRecord {
  readonly id: string;
  readonly name: string;
  readonly location: string;
  readonly tokenHash: string;
  readonly createdAt: string;
  /** When a tunnel of the agent was last accepted or ended, ISO 8601. */
  readonly lastSeenAt?: string | null;
  /** The source address of that tunnel. */
  readonly lastAddress?: string | null;
  /**
   * Only one instance (agent process) may hold tunnels at once: a hello of another instance is
   * refused while one is connected. Present only when true.
   */
  readonly singleInstance?: true;
}

export interface ClientRecord {
  readonly id: string;
  readonly name: string;
  readonly location: string;
  /** RFC 1929 username, unique across the relay. */
  readonly username: string;
  readonly passwordHash: string;
  readonly createdAt: string;
  /** When the client last authenticated, ISO 8601. */
  readonly lastUsedAt?: string | null;
  /** Its source address then. */
  readonly lastAddress?: string | null;
}

export interface MappingRecord {
  readonly id: string;
  /** Lower-case host name or canonical IP literal the clients ask for. */
  readonly virtualHost: string;
  readonly virtualPort: PortRange;
  readonly internalHost: string;
  readonly internalPort: PortRange;
  readonly location: string;
  readonly protocol: MappingProtocol;
  readonly description: string;
  readonly createdAt: string;
  readonly updatedAt: string;
}

/** What decides where a mapping's connections go: every field but its id, times and description. */
export type MappingRoute = Omit<MappingRecord, "id" | "createdAt" | "updatedAt" | "description">;

/**
 * Whether two versions of a mapping route the same way; connections a change leaves routed as
 * they were keep going (a new description is not routing).
 */
export function sameRoute(a: MappingRoute, b: MappingRoute): boolean {
  return (
    a.virtualHost === b.virtualHost &&
    a.virtualPort.start === b.virtualPort.start &&
    a.virtualPort.end === b.virtualPort.end &&
    a.internalHost === b.internalHost &&
    a.internalPort.start === b.internalPort.start &&
    a.internalPort.end === b.internalPort.end &&
    a.location === b.location &&
    a.protocol === b.protocol
  );
}

/** Everything the store holds. */
export interface StoreData {
  readonly version: 1;
  /** SHA-256 hex of the admin token, set on first start. */
  readonly adminTokenHash: string | null;
  readonly agents: readonly AgentRecord[];
  readonly clients: readonly ClientRecord[];
  readonly mappings: readonly MappingRecord[];
}

/** Where and when an agent or a client was last seen; written in batches, not per connection. */
export interface UsageNote {
  readonly kind: "agent" | "client";
  readonly id: string;
  /** ISO 8601. */
  readonly at: string;
  readonly address: string | null;
}

/** The configuration a backup carries: everything but the admin token. */
export interface ConfigData {
  readonly agents: readonly AgentRecord[];
  readonly clients: readonly ClientRecord[];
  readonly mappings: readonly MappingRecord[];
}

/**
 * Every method is asynchronous, reads too, so that a store that is not in memory (a shared
 * PostgreSQL database) serves behind the same interface. A write is durable when its promise
 * resolves and leaves the data unchanged when it rejects.
 *
 * `addMapping` and `replaceMapping` refuse, with `MappingConflictError` (409 at the admin API),
 * a mapping whose virtual host and ports overlap another mapping of the same location. The
 * check and the write are one atomic step, so two overlapping writes racing each other cannot
 * both succeed.
 */
export interface Store {
  /** Read the data from durable storage; call once before anything else. */
  open(): Promise<void>;
  close(): Promise<void>;

  adminTokenHash(): Promise<string | null>;
  setAdminTokenHash(hash: string): Promise<void>;

  listAgents(): Promise<readonly AgentRecord[]>;
  getAgent(id: string): Promise<AgentRecord | undefined>;
  findAgentByTokenHash(tokenHash: string): Promise<AgentRecord | undefined>;
  addAgent(agent: AgentRecord): Promise<void>;
  /** Replaces an agent's record (a rotated token); NotFoundError when it is gone. */
  replaceAgent(agent: AgentRecord): Promise<void>;
  deleteAgent(id: string): Promise<boolean>;

  listClients(): Promise<readonly ClientRecord[]>;
  findClientByUsername(username: string): Promise<ClientRecord | undefined>;
  addClient(client: ClientRecord): Promise<void>;
  /** Replaces a client's record (a rotated password); NotFoundError when it is gone. */
  replaceClient(client: ClientRecord): Promise<void>;
  deleteClient(id: string): Promise<boolean>;

  listMappings(): Promise<readonly MappingRecord[]>;
  getMapping(id: string): Promise<MappingRecord | undefined>;
  /** Mappings of one location, for access control. */
  mappingsOf(location: string): Promise<readonly MappingRecord[]>;
  addMapping(mapping: MappingRecord): Promise<void>;
  replaceMapping(mapping: MappingRecord): Promise<void>;
  deleteMapping(id: string): Promise<boolean>;

  /** Records last-seen times and addresses; notes for records that are gone are dropped. */
  noteUsage(notes: readonly UsageNote[]): Promise<void>;

  /** The whole configuration, as one consistent picture. */
  exportConfig(): Promise<ConfigData>;
  /**
   * Replaces the whole configuration in one atomic step, after checking it as a whole (unique
   * ids, token hashes and usernames; no overlapping mappings). The admin token stays.
   */
  importConfig(config: ConfigData): Promise<void>;

  /**
   * A store that several relays share tells each of them what the others changed, once its
   * snapshot holds the change; returns the function that stops listening. A store that only
   * one relay uses has nothing to tell and leaves it out.
   */
  onChange?(listener: ConfigChangeListener): () => void;
  /** Whether writes can be taken now; a store without this one is always available. */
  health?(): StoreHealth;
  /**
   * The database behind a store that the relays of a cluster share: the relay keeps its audit
   * trail, its membership and FTP's state across relays there too. Absent over the file store.
   */
  readonly database?: StoreDatabase;
}

/** The PostgreSQL database behind a shared store. */
export interface StoreDatabase {
  /** The store's pool; open the store first. */
  readonly pool: pg.Pool;
  /** Names the store's writes in the change rows. */
  readonly origin: string;
}
