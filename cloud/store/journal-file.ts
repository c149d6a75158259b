/**
 * The journal on disk: records appended and fsynced one write at a time, read back whole on
 * load, emptied once a snapshot holds them. The byte format is journal.ts's.
 *
 * The file is opened for each append rather than held open, so a data directory that went away
 * fails the write instead of feeding a file nobody will read. A failed append may have left
 * part of a record behind; it is cut off again before anything else is appended, so the journal
 * never has a torn record anywhere but at its end.
 */
import { open as openFile, readFile } from "node:fs/promises";
import { StoreError } from "../../shared/errors.js";
import type { Logger } from "../../shared/logger.js";
import { errnoCode, errorMessage } from "./fs-errors.js";
import { encodeRecord, type JournalRecord, readJournal } from "./journal.js";

export class JournalFile {
  readonly path: string;
  private readonly logger: Logger;
  /** fsyncs the directory that holds the file; false when it could not. */
  private readonly syncDir: () => Promise<boolean>;
  /** Bytes of whole records in the file. */
  private bytes = 0;
  /** Whether the file's directory entry is known to be durable. */
  private exists = false;
  /** A failed append may have left bytes past `bytes`. */
  private dirty = false;

  constructor(path: string, logger: Logger, syncDir: () => Promise<boolean>) {
    this.path = path;
    this.logger = logger;
    this.syncDir = syncDir;
  }

  get size(): number {
    return this.bytes;
  }

  /** Every whole record; a torn last record is cut off the file (it was never acknowledged). */
  async load(): Promise<readonly JournalRecord[]> {
    let bytes: Buffer;
    try {
      bytes = await readFile(this.path);
    } catch (err) {
      if (errnoCode(err) === "ENOENT") return [];
      throw new StoreError(`cannot read ${this.path}: ${errorMessage(err)}`, { cause: err });
    }
    this.exists = true;
    const read = readJournal(bytes);
    if (read.kind === "corrupt") {
      throw new StoreError(
        `${this.path} is corrupt at byte ${read.offset} (${read.reason}) with whole records after it; ` +
          "refusing to start over it — restore the data directory from a backup or move it away",
      );
    }
    if (read.tornBytes > 0) {
      this.logger.warn(
        { path: this.path, offset: read.validBytes, bytes: read.tornBytes, reason: read.tornReason },
        "dropped a torn last journal record: a write interrupted before it was acknowledged",
      );
      await this.cut(read.validBytes);
    }
    this.bytes = read.validBytes;
    return read.records;
  }

  /** Appends `record` and fsyncs it; on failure the file holds what it held before. */
  async append(record: JournalRecord): Promise<void> {
    const bytes = encodeRecord(record);
    try {
      if (this.dirty) {
        await this.cut(this.bytes);
        this.dirty = false;
      }
      // 0600: the journal holds what the snapshot holds, hashes only.
      const file = await openFile(this.path, "a", 0o600);
      try {
        this.dirty = true;
        await file.writeFile(bytes);
        await file.datasync();
        this.dirty = false;
      } finally {
        await file.close();
      }
    } catch (err) {
      if (this.dirty) {
        await this.cut(this.bytes).then(
          () => {
            this.dirty = false;
          },
          () => undefined,
        );
      }
      throw new StoreError(`cannot append to ${this.path}: ${errorMessage(err)}`, { cause: err });
    }
    if (!this.exists) {
      // A new file's name must be durable too before the write counts as done.
      this.exists = await this.syncDir();
    }
    this.bytes += bytes.length;
  }

  /** Empties the journal: its records are all in a durable snapshot now. */
  async clear(): Promise<void> {
    if (this.bytes === 0 && !this.dirty) return;
    await this.cut(0);
    this.bytes = 0;
    this.dirty = false;
  }

  /**
   * Truncates the file to `length` bytes, durably; never lengthens it (a file shorter than
   * `length`, after a truncation whose fsync failed, is left as it is rather than padded with
   * zeros that would read as damage).
   */
  private async cut(length: number): Promise<void> {
    let file: Awaited<ReturnType<typeof openFile>>;
    try {
      file = await openFile(this.path, "r+");
    } catch (err) {
      if (errnoCode(err) === "ENOENT" && length === 0) return;
      throw new StoreError(`cannot open ${this.path}: ${errorMessage(err)}`, { cause: err });
    }
    try {
      if ((await file.stat()).size > length) await file.truncate(length);
      await file.sync();
    } catch (err) {
      throw new StoreError(`cannot truncate ${this.path}: ${errorMessage(err)}`, { cause: err });
    } finally {
      await file.close();
    }
  }
}
