/**
 * The embedded store: everything in memory, persisted as a snapshot `<dir>/underpass.json` and
 * a journal `<dir>/underpass.journal` beside it.
 *
 * A write appends one record (its changes, numbered) to the journal and fsyncs it before it
 * resolves: it costs what changed, not the whole configuration. Only when that succeeded is the
 * new data swapped in, so a failed write leaves memory unchanged. When the journal outgrows the
 * snapshot (and at least `journalLimit` bytes), a compaction writes the whole data as a new
 * snapshot — to a temporary file in the same directory, fsynced, renamed over the old one, the
 * directory fsynced (POSIX rename is atomic) — and only then empties the journal. The snapshot
 * names the last change it holds, so load replays only the journal records after it: a crash
 * between the rename and the truncation applies nothing twice, one before the rename reads the
 * old snapshot and the whole journal. A crash in an append leaves a torn last record, which load
 * detects (newline, checksum) and drops: that write was never acknowledged.
 *
 * Writes run one at a time through a queue, compactions between them, and each write checks its
 * preconditions (unique ids, tokens and usernames; no overlapping mapping) against the data as
 * the writes before it left it, so a check and its write cannot be split by another write.
 * Reads are answered from memory (snapshot.ts).
 */
import { mkdir } from "node:fs/promises";
import { join } from "node:path";
import { ConflictError, NotFoundError, StoreError } from "../../shared/errors.js";
import type { Logger } from "../../shared/logger.js";
import { checkConfig } from "./config-check.js";
import { errorMessage } from "./fs-errors.js";
import { applyChanges, type JournalChange, recordsAfter } from "./journal.js";
import { JournalFile } from "./journal-file.js";
import { refuseOverlap } from "./overlap.js";
import { ConfigSnapshot, SnapshotReads } from "./snapshot.js";
import { parseStoreFile, SnapshotFile, type StoreFile, snapshotText } from "./snapshot-file.js";
import type { AgentRecord, ClientRecord, ConfigData, MappingRecord, Store, UsageNote } from "./store.js";

export { STORE_FILE } from "./snapshot-file.js";
/** Name of the journal inside the data directory. */
export const JOURNAL_FILE = "underpass.journal";
/** The journal is compacted once it is larger than the snapshot and than this, in bytes (1 MiB). */
const DEFAULT_JOURNAL_LIMIT = 1024 * 1024;

export interface FileStoreOptions {
  /** Data directory; created with mode 0700 when missing. */
  readonly dir: string;
  readonly logger: Logger;
  /**
   * Compact once the journal holds more than this many bytes and more than the snapshot does
   * (default 1 MiB); a smaller bound compacts more often.
   */
  readonly journalLimit?: number;
}

export class FileStore extends SnapshotReads implements Store {
  /** Absolute or relative path of the snapshot file. */
  readonly path: string;
  private readonly dir: string;
  private readonly logger: Logger;
  private readonly snapshotFile: SnapshotFile;
  private readonly journal: JournalFile;
  private readonly journalLimit: number;
  private state: "new" | "open" | "closed" = "new";
  /** Tail of the write queue; each write starts when the previous one settled. */
  private tail: Promise<unknown> = Promise.resolve();
  /** The number of the last change the data in memory holds. */
  private sequence = 0;
  /** Bytes of the snapshot file on disk. */
  private snapshotBytes = 0;
  /** A compaction is queued behind the writes in flight. */
  private compactionQueued = false;
  /** After a failed compaction, the journal size at which to try again. */
  private retryCompactionAt = 0;

  constructor(options: FileStoreOptions) {
    super();
    this.dir = options.dir;
    this.logger = options.logger.child({ component: "file-store" });
    this.snapshotFile = new SnapshotFile(options.dir, this.logger);
    this.path = this.snapshotFile.path;
    this.journal = new JournalFile(join(options.dir, JOURNAL_FILE), this.logger, () =>
      this.snapshotFile.syncDir(),
    );
    this.journalLimit = options.journalLimit ?? DEFAULT_JOURNAL_LIMIT;
  }

  /** Path of the journal file. */
  get journalPath(): string {
    return this.journal.path;
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
    await this.snapshotFile.removeLeftovers();
    const text = await this.snapshotFile.read();
    const base: StoreFile =
      text === undefined ? { data: this.snapshot.data, sequence: 0 } : parseStoreFile(this.path, text);
    this.snapshotBytes = text === undefined ? 0 : Buffer.byteLength(text, "utf8");
    const pending = recordsAfter(base.sequence, await this.journal.load());
    if (typeof pending === "string") {
      throw new StoreError(
        `${this.journal.path} does not follow on from ${this.path} (snapshot at change ${base.sequence}, ${pending}); ` +
          "refusing to start over it — restore the data directory from a backup or move it away",
      );
    }
    let data = base.data;
    try {
      data = applyChanges(
        base.data,
        pending.flatMap((r) => r.changes),
      );
    } catch (err) {
      throw new StoreError(`cannot replay ${this.journal.path} over ${this.path}: ${errorMessage(err)}`, {
        cause: err,
      });
    }
    this.snapshot = new ConfigSnapshot(data);
    this.sequence = pending.at(-1)?.seq ?? base.sequence;
    if (text === undefined) {
      // Write the snapshot now, so that an unwritable data directory shows at start-up.
      await this.compactNow();
      if (pending.length === 0) this.logger.info({ path: this.path }, "created a new store");
      else
        this.logger.warn(
          { path: this.path, replayed: pending.length },
          "the snapshot was missing: rebuilt it from the journal",
        );
    } else {
      const { agents, clients, mappings } = this.snapshot.data;
      this.logger.info(
        {
          path: this.path,
          agents: agents.length,
          clients: clients.length,
          mappings: mappings.length,
          sequence: this.sequence,
          replayed: pending.length,
        },
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

  /**
   * Writes the data as a new snapshot and empties the journal, after the writes already queued;
   * writes asked for meanwhile wait for it. The store does this by itself when the journal grows.
   */
  compact(): Promise<void> {
    if (this.state !== "open") return Promise.reject(new StoreError(`store ${this.path} is not open`));
    return this.enqueue(async () => {
      await this.compactNow();
    });
  }

  // -- writes: durable when they resolve, no change when they reject -------------------------

  setAdminTokenHash(hash: string): Promise<void> {
    return this.write(() => [{ op: "admin", adminTokenHash: hash }]);
  }

  addAgent(agent: AgentRecord): Promise<void> {
    return this.write((s) => {
      if (s.agentsById.has(agent.id)) throw new ConflictError(`agent ${agent.id} already exists`);
      if (s.agentsByTokenHash.has(agent.tokenHash)) {
        throw new ConflictError("another agent already has this token");
      }
      return [{ op: "put", entity: "agents", record: agent }];
    });
  }

  replaceAgent(agent: AgentRecord): Promise<void> {
    return this.write((s) => {
      if (!s.agentsById.has(agent.id)) throw new NotFoundError(`no agent ${agent.id}`);
      const holder = s.agentsByTokenHash.get(agent.tokenHash);
      if (holder && holder.id !== agent.id) throw new ConflictError("another agent already has this token");
      return [{ op: "put", entity: "agents", record: agent }];
    });
  }

  deleteAgent(id: string): Promise<boolean> {
    return this.writeDelete("agents", id, (s) => s.agentsById.has(id));
  }

  addClient(client: ClientRecord): Promise<void> {
    return this.write((s) => {
      if (s.clientsById.has(client.id)) throw new ConflictError(`client ${client.id} already exists`);
      if (s.clientsByUsername.has(client.username)) {
        throw new ConflictError(`username ${client.username} is taken`);
      }
      return [{ op: "put", entity: "clients", record: client }];
    });
  }

  replaceClient(client: ClientRecord): Promise<void> {
    return this.write((s) => {
      if (!s.clientsById.has(client.id)) throw new NotFoundError(`no client ${client.id}`);
      const holder = s.clientsByUsername.get(client.username);
      if (holder && holder.id !== client.id) throw new ConflictError(`username ${client.username} is taken`);
      return [{ op: "put", entity: "clients", record: client }];
    });
  }

  deleteClient(id: string): Promise<boolean> {
    return this.writeDelete("clients", id, (s) => s.clientsById.has(id));
  }

  addMapping(mapping: MappingRecord): Promise<void> {
    return this.write((s) => {
      if (s.mappingsById.has(mapping.id)) throw new ConflictError(`mapping ${mapping.id} already exists`);
      refuseOverlap(s.mappingsOnHost(mapping.location, mapping.virtualHost), mapping);
      return [{ op: "put", entity: "mappings", record: mapping }];
    });
  }

  replaceMapping(mapping: MappingRecord): Promise<void> {
    return this.write((s) => {
      if (!s.mappingsById.has(mapping.id)) throw new NotFoundError(`no mapping ${mapping.id}`);
      refuseOverlap(s.mappingsOnHost(mapping.location, mapping.virtualHost), mapping);
      return [{ op: "put", entity: "mappings", record: mapping }];
    });
  }

  deleteMapping(id: string): Promise<boolean> {
    return this.writeDelete("mappings", id, (s) => s.mappingsById.has(id));
  }

  noteUsage(notes: readonly UsageNote[]): Promise<void> {
    return this.write((s) => {
      const latest = new Map<string, UsageNote>();
      for (const n of notes) latest.set(`${n.kind}:${n.id}`, n);
      const changes = [...latest.values()].flatMap((n): JournalChange[] => {
        const a = n.kind === "agent" ? s.agentsById.get(n.id) : undefined;
        if (a)
          return [
            { op: "put", entity: "agents", record: { ...a, lastSeenAt: n.at, lastAddress: n.address } },
          ];
        const c = n.kind === "client" ? s.clientsById.get(n.id) : undefined;
        if (c)
          return [
            { op: "put", entity: "clients", record: { ...c, lastUsedAt: n.at, lastAddress: n.address } },
          ];
        return [];
      });
      return changes.length > 0 ? changes : undefined;
    });
  }

  importConfig(config: ConfigData): Promise<void> {
    return this.write(() => {
      checkConfig(config);
      const { agents, clients, mappings } = config;
      return [{ op: "import", config: { agents, clients, mappings } }];
    });
  }

  // -- the write path ------------------------------------------------------------------------

  /** `change` runs in the queue against the current data; `undefined` means "nothing to do". */
  private write(change: (current: ConfigSnapshot) => JournalChange[] | undefined): Promise<void> {
    if (this.state === "new") return Promise.reject(new StoreError(`store ${this.path} is not open`));
    if (this.state === "closed") return Promise.reject(new StoreError(`store ${this.path} is closed`));
    return this.enqueue(async () => {
      const changes = change(this.snapshot);
      if (changes === undefined) return;
      const seq = this.sequence + 1;
      try {
        await this.journal.append({ seq, changes });
      } catch (err) {
        this.logger.error({ err, path: this.journal.path }, "store write failed; nothing was changed");
        throw err;
      }
      // Durable now: the change goes into memory at once, in this same turn, for every reader.
      this.sequence = seq;
      this.snapshot = this.snapshot.withChanges(changes);
      this.compactWhenDue();
    });
  }

  private async writeDelete(
    entity: "agents" | "clients" | "mappings",
    id: string,
    present: (current: ConfigSnapshot) => boolean,
  ): Promise<boolean> {
    let deleted = false;
    await this.write((s) => {
      deleted = present(s);
      return deleted ? [{ op: "delete", entity, id }] : undefined;
    });
    return deleted;
  }

  private enqueue(job: () => Promise<void>): Promise<void> {
    const run = this.tail.then(job, job);
    this.tail = run.catch(() => undefined);
    return run;
  }

  /** Queues a compaction behind the write that made the journal outgrow its bound. */
  private compactWhenDue(): void {
    const size = this.journal.size;
    if (
      this.compactionQueued ||
      size <= Math.max(this.journalLimit, this.snapshotBytes, this.retryCompactionAt)
    ) {
      return;
    }
    this.compactionQueued = true;
    void this.enqueue(async () => {
      this.compactionQueued = false;
      let done = false;
      try {
        done = await this.compactNow();
      } catch (err) {
        this.logger.warn({ err, path: this.path }, "store compaction failed; the journal keeps every change");
      }
      // Else the journal still holds every change: try again once it has grown by another bound.
      this.retryCompactionAt = done ? 0 : this.journal.size + this.journalLimit;
    });
  }

  /**
   * The data in memory as a new snapshot, then an empty journal. Runs in the queue: nothing is
   * appended meanwhile. Until the rename is durable the old snapshot and the whole journal are
   * what a restart reads; after it, the new snapshot, which names the last change it holds, so
   * the journal's records are skipped even when the truncation never happened.
   */
  private async compactNow(): Promise<boolean> {
    const text = snapshotText(this.snapshot.data, this.sequence);
    await this.snapshotFile.replace(text);
    this.snapshotBytes = Buffer.byteLength(text, "utf8");
    if (!(await this.snapshotFile.syncDir())) {
      // The rename may not survive a power loss: keep the journal, which the old snapshot needs.
      return false;
    }
    await this.journal.clear();
    this.logger.debug(
      { path: this.path, sequence: this.sequence, bytes: this.snapshotBytes },
      "store compacted",
    );
    return true;
  }
}
