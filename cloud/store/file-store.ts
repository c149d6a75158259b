/**
 * The embedded store: everything in memory, persisted as one JSON file `<dir>/underpass.json`.
 *
 * Every write builds the next data as a copy, writes it to a temporary file in the same
 * directory, fsyncs it, renames it over the real file and fsyncs the directory (POSIX rename is
 * atomic: after a crash the file is either the old or the new version, never a torn one). Only
 * when that succeeded is the copy swapped in, so a failed write leaves memory unchanged. Writes
 * run one at a time through a queue, and each checks its preconditions (unique ids, tokens and
 * usernames; no overlapping mapping) against the data as the writes before it left it, so a
 * check and its write cannot be split by another write. Reads are answered from memory
 * (snapshot.ts).
 */
import { randomBytes } from "node:crypto";
import { mkdir, open as openFile, readdir, readFile, rename, unlink } from "node:fs/promises";
import { join } from "node:path";
import { z } from "zod";
import { ConflictError, NotFoundError, StoreError } from "../../shared/errors.js";
import type { Logger } from "../../shared/logger.js";
import { checkConfig, configSchema, hash } from "./config-check.js";
import { refuseOverlap } from "./overlap.js";
import { ConfigSnapshot, SnapshotReads } from "./snapshot.js";
import type {
  AgentRecord,
  ClientRecord,
  ConfigData,
  MappingRecord,
  Store,
  StoreData,
  UsageNote,
} from "./store.js";

/** Name of the data file inside the data directory. */
export const STORE_FILE = "underpass.json";
/** Temporary files are `underpass.json.<random>.tmp`; leftovers of a crash are removed on open. */
const TMP_PREFIX = `${STORE_FILE}.`;
const TMP_SUFFIX = ".tmp";

export interface FileStoreOptions {
  /** Data directory; created with mode 0700 when missing. */
  readonly dir: string;
  readonly logger: Logger;
}

// ---------------------------------------------------------------------------------------------
// The file format, validated on load

const storeFile = configSchema.extend({
  version: z.literal(1, {
    error: (i) => `unsupported store version ${JSON.stringify(i.input)} (expected 1)`,
  }),
  adminTokenHash: hash.nullable(),
});

function errorMessage(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

function errnoCode(err: unknown): string | undefined {
  return typeof err === "object" && err !== null && "code" in err ? String(err.code) : undefined;
}

// ---------------------------------------------------------------------------------------------

export class FileStore extends SnapshotReads implements Store {
  /** Absolute or relative path of the data file. */
  readonly path: string;
  private readonly dir: string;
  private readonly logger: Logger;
  private state: "new" | "open" | "closed" = "new";
  /** Tail of the write queue; each write starts when the previous one settled. */
  private tail: Promise<unknown> = Promise.resolve();

  constructor(options: FileStoreOptions) {
    super();
    this.dir = options.dir;
    this.path = join(options.dir, STORE_FILE);
    this.logger = options.logger.child({ component: "file-store" });
  }

  async open(): Promise<void> {
    if (this.state !== "new") throw new StoreError(`store ${this.path} was already opened`);
    try {
      await mkdir(this.dir, { recursive: true, mode: 0o700 });
    } catch (err) {
      throw new StoreError(`cannot create the data directory ${this.dir}: ${errorMessage(err)}`, {
        cause: err,
      });
    }
    await this.removeLeftovers();

    let text: string | undefined;
    try {
      text = await readFile(this.path, "utf8");
    } catch (err) {
      if (errnoCode(err) !== "ENOENT") {
        throw new StoreError(`cannot read ${this.path}: ${errorMessage(err)}`, { cause: err });
      }
    }
    if (text === undefined) {
      // Write the empty file now, so that an unwritable data directory shows at start-up.
      await this.persist(this.snapshot.data);
      this.logger.info({ path: this.path }, "created a new store");
    } else {
      this.snapshot = new ConfigSnapshot(parseStoreFile(this.path, text));
      const { agents, clients, mappings } = this.snapshot.data;
      this.logger.info(
        { path: this.path, agents: agents.length, clients: clients.length, mappings: mappings.length },
        "store loaded",
      );
    }
    this.state = "open";
  }

  /** Waits for the writes already queued; writes requested after this reject. */
  async close(): Promise<void> {
    if (this.state === "closed") return;
    this.state = "closed";
    await this.tail.catch(() => undefined);
  }

  // -- writes: durable when they resolve, no change when they reject -------------------------

  setAdminTokenHash(hash: string): Promise<void> {
    return this.write((d) => ({ ...d, adminTokenHash: hash }));
  }

  addAgent(agent: AgentRecord): Promise<void> {
    return this.write((d) => {
      if (this.snapshot.agentsById.has(agent.id)) throw new ConflictError(`agent ${agent.id} already exists`);
      if (this.snapshot.agentsByTokenHash.has(agent.tokenHash)) {
        throw new ConflictError("another agent already has this token");
      }
      return { ...d, agents: [...d.agents, agent] };
    });
  }

  replaceAgent(agent: AgentRecord): Promise<void> {
    return this.write((d) => {
      if (!this.snapshot.agentsById.has(agent.id)) throw new NotFoundError(`no agent ${agent.id}`);
      const holder = this.snapshot.agentsByTokenHash.get(agent.tokenHash);
      if (holder && holder.id !== agent.id) throw new ConflictError("another agent already has this token");
      return { ...d, agents: d.agents.map((a) => (a.id === agent.id ? agent : a)) };
    });
  }

  async deleteAgent(id: string): Promise<boolean> {
    return this.writeDelete((d) => {
      const agents = d.agents.filter((a) => a.id !== id);
      return agents.length === d.agents.length ? undefined : { ...d, agents };
    });
  }

  addClient(client: ClientRecord): Promise<void> {
    return this.write((d) => {
      if (this.snapshot.clientsById.has(client.id))
        throw new ConflictError(`client ${client.id} already exists`);
      if (this.snapshot.clientsByUsername.has(client.username)) {
        throw new ConflictError(`username ${client.username} is taken`);
      }
      return { ...d, clients: [...d.clients, client] };
    });
  }

  replaceClient(client: ClientRecord): Promise<void> {
    return this.write((d) => {
      if (!this.snapshot.clientsById.has(client.id)) throw new NotFoundError(`no client ${client.id}`);
      const holder = this.snapshot.clientsByUsername.get(client.username);
      if (holder && holder.id !== client.id) throw new ConflictError(`username ${client.username} is taken`);
      return { ...d, clients: d.clients.map((c) => (c.id === client.id ? client : c)) };
    });
  }

  async deleteClient(id: string): Promise<boolean> {
    return this.writeDelete((d) => {
      const clients = d.clients.filter((c) => c.id !== id);
      return clients.length === d.clients.length ? undefined : { ...d, clients };
    });
  }

  addMapping(mapping: MappingRecord): Promise<void> {
    return this.write((d) => {
      if (this.snapshot.mappingsById.has(mapping.id))
        throw new ConflictError(`mapping ${mapping.id} already exists`);
      refuseOverlap(this.snapshot.mappingsIn(mapping.location), mapping);
      return { ...d, mappings: [...d.mappings, mapping] };
    });
  }

  replaceMapping(mapping: MappingRecord): Promise<void> {
    return this.write((d) => {
      if (!this.snapshot.mappingsById.has(mapping.id)) throw new NotFoundError(`no mapping ${mapping.id}`);
      refuseOverlap(this.snapshot.mappingsIn(mapping.location), mapping);
      return { ...d, mappings: d.mappings.map((m) => (m.id === mapping.id ? mapping : m)) };
    });
  }

  async deleteMapping(id: string): Promise<boolean> {
    return this.writeDelete((d) => {
      const mappings = d.mappings.filter((m) => m.id !== id);
      return mappings.length === d.mappings.length ? undefined : { ...d, mappings };
    });
  }

  noteUsage(notes: readonly UsageNote[]): Promise<void> {
    return this.write((d) => {
      const agents = new Map<string, UsageNote>();
      const clients = new Map<string, UsageNote>();
      for (const n of notes) (n.kind === "agent" ? agents : clients).set(n.id, n);
      if (
        ![...agents.keys()].some((id) => this.snapshot.agentsById.has(id)) &&
        ![...clients.keys()].some((id) => this.snapshot.clientsById.has(id))
      ) {
        return undefined;
      }
      return {
        ...d,
        agents: d.agents.map((a) => {
          const n = agents.get(a.id);
          return n ? { ...a, lastSeenAt: n.at, lastAddress: n.address } : a;
        }),
        clients: d.clients.map((c) => {
          const n = clients.get(c.id);
          return n ? { ...c, lastUsedAt: n.at, lastAddress: n.address } : c;
        }),
      };
    });
  }

  importConfig(config: ConfigData): Promise<void> {
    return this.write((d) => {
      checkConfig(config);
      return { ...d, agents: config.agents, clients: config.clients, mappings: config.mappings };
    });
  }

  // -- the write path ------------------------------------------------------------------------

  /** `change` runs in the queue against the current data; `undefined` means "nothing to do". */
  private write(change: (current: StoreData) => StoreData | undefined): Promise<void> {
    if (this.state === "new") return Promise.reject(new StoreError(`store ${this.path} is not open`));
    if (this.state === "closed") return Promise.reject(new StoreError(`store ${this.path} is closed`));
    return this.enqueue(async () => {
      const next = change(this.snapshot.data);
      if (next === undefined) return;
      const snapshot = new ConfigSnapshot(next);
      await this.persist(snapshot.data);
      this.snapshot = snapshot;
    });
  }

  private async writeDelete(change: (current: StoreData) => StoreData | undefined): Promise<boolean> {
    let deleted = false;
    await this.write((d) => {
      const next = change(d);
      deleted = next !== undefined;
      return next;
    });
    return deleted;
  }

  private enqueue(job: () => Promise<void>): Promise<void> {
    const run = this.tail.then(job, job);
    this.tail = run.catch(() => undefined);
    return run;
  }

  /** Atomically replace the data file with `data`; on failure the old file is untouched. */
  private async persist(data: StoreData): Promise<void> {
    const tmp = join(this.dir, `${TMP_PREFIX}${randomBytes(6).toString("hex")}${TMP_SUFFIX}`);
    const text = `${JSON.stringify(data, null, 2)}\n`;
    try {
      // 0600: the file holds hashes only, but nobody else needs to read them.
      const file = await openFile(tmp, "wx", 0o600);
      try {
        await file.writeFile(text, "utf8");
        await file.sync();
      } finally {
        await file.close();
      }
      await rename(tmp, this.path);
    } catch (err) {
      await unlink(tmp).catch(() => undefined);
      this.logger.error({ err, path: this.path }, "store write failed; nothing was changed");
      throw new StoreError(`cannot write ${this.path}: ${errorMessage(err)}`, { cause: err });
    }
    await this.syncDir();
  }

  /**
   * Make the rename itself durable. A failure here is only logged: the new file is already in
   * place and will be read on restart, so rejecting would make memory disagree with the disk.
   */
  private async syncDir(): Promise<void> {
    if (process.platform === "win32") return; // directories cannot be opened for fsync there
    try {
      const dir = await openFile(this.dir, "r");
      try {
        await dir.sync();
      } finally {
        await dir.close();
      }
    } catch (err) {
      this.logger.warn(
        { err, dir: this.dir },
        "cannot fsync the data directory; the last write may not survive a power loss",
      );
    }
  }

  /** A temporary file left by a crash was never renamed into place: it holds nothing committed. */
  private async removeLeftovers(): Promise<void> {
    let names: string[];
    try {
      names = await readdir(this.dir);
    } catch (err) {
      throw new StoreError(`cannot list the data directory ${this.dir}: ${errorMessage(err)}`, {
        cause: err,
      });
    }
    for (const n of names) {
      if (n.startsWith(TMP_PREFIX) && n.endsWith(TMP_SUFFIX)) {
        await unlink(join(this.dir, n)).catch((err: unknown) => {
          this.logger.warn({ err, file: n }, "cannot remove a leftover temporary store file");
        });
        this.logger.warn({ file: n }, "removed a temporary store file left by an interrupted write");
      }
    }
  }
}

/** Parse and validate the file's text; a corrupt file is an error, never an empty store. */
export function parseStoreFile(path: string, text: string): StoreData {
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (err) {
    throw new StoreError(
      `${path} is not valid JSON (${errorMessage(err)}); refusing to start over it — restore it from a backup or move it away`,
      { cause: err },
    );
  }
  const parsed = storeFile.safeParse(json);
  if (!parsed.success) {
    const issues = parsed.error.issues
      .slice(0, 5)
      .map((i) => `${i.path.length > 0 ? i.path.join(".") : "(top)"}: ${i.message}`)
      .join("; ");
    throw new StoreError(
      `${path} is corrupt (${issues}); refusing to start over it — restore it from a backup or move it away`,
    );
  }
  return parsed.data;
}
