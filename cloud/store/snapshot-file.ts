/**
 * The file store's snapshot on disk, `<dir>/underpass.json`: the documented JSON format, read
 * and validated on load, and replaced atomically — written to a temporary file in the same
 * directory, fsynced, renamed over the old one (POSIX rename is atomic: after a crash the file
 * is the old or the new version, never a torn one), the directory fsynced.
 */
import { randomBytes } from "node:crypto";
import { open as openFile, readdir, readFile, rename, unlink } from "node:fs/promises";
import { join } from "node:path";
import { z } from "zod";
import { StoreError } from "../../shared/errors.js";
import type { Logger } from "../../shared/logger.js";
import { configSchema, hash } from "./config-check.js";
import { errnoCode, errorMessage } from "./fs-errors.js";
import type { StoreData } from "./store.js";

/** Name of the snapshot inside the data directory. */
export const STORE_FILE = "underpass.json";
/** Temporary files are `underpass.json.<random>.tmp`; leftovers of a crash are removed on open. */
const TMP_PREFIX = `${STORE_FILE}.`;
const TMP_SUFFIX = ".tmp";

const storeFile = configSchema.extend({
  version: z.literal(1, {
    error: (i) => `unsupported store version ${JSON.stringify(i.input)} (expected 1)`,
  }),
  /** The last journal record the snapshot holds; a file from before the journal holds none. */
  sequence: z.number().int().min(0).default(0),
  adminTokenHash: hash.nullable(),
});

/** What the snapshot file holds: the data, and the number of the last change in it. */
export interface StoreFile {
  readonly data: StoreData;
  readonly sequence: number;
}

/** The snapshot's text: the documented JSON, indented for the operator who reads it. */
export function snapshotText(data: StoreData, sequence: number): string {
  const { version, adminTokenHash, agents, clients, mappings } = data;
  return `${JSON.stringify({ version, sequence, adminTokenHash, agents, clients, mappings }, null, 2)}\n`;
}

export class SnapshotFile {
  /** Absolute or relative path of the snapshot. */
  readonly path: string;
  private readonly dir: string;
  private readonly logger: Logger;

  constructor(dir: string, logger: Logger) {
    this.dir = dir;
    this.path = join(dir, STORE_FILE);
    this.logger = logger;
  }

  /** The snapshot's text; undefined when there is none. */
  async read(): Promise<string | undefined> {
    try {
      return await readFile(this.path, "utf8");
    } catch (err) {
      if (errnoCode(err) === "ENOENT") return undefined;
      throw new StoreError(`cannot read ${this.path}: ${errorMessage(err)}`, { cause: err });
    }
  }

  /** Atomically replace the snapshot with `text`; on failure the old file is untouched. */
  async replace(text: string): Promise<void> {
    const tmp = join(this.dir, `${TMP_PREFIX}${randomBytes(6).toString("hex")}${TMP_SUFFIX}`);
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
      this.logger.error({ err, path: this.path }, "store snapshot write failed; the old one is in place");
      throw new StoreError(`cannot write ${this.path}: ${errorMessage(err)}`, { cause: err });
    }
  }

  /**
   * Make a rename or a new file's name durable; false, with a warning, when the directory cannot
   * be fsynced (the change is in place and will be read on restart, unless the power fails).
   */
  async syncDir(): Promise<boolean> {
    if (process.platform === "win32") return true; // directories cannot be opened for fsync there
    try {
      const dir = await openFile(this.dir, "r");
      try {
        await dir.sync();
      } finally {
        await dir.close();
      }
      return true;
    } catch (err) {
      this.logger.warn(
        { err, dir: this.dir },
        "cannot fsync the data directory; the last write may not survive a power loss",
      );
      return false;
    }
  }

  /** A temporary file left by a crash was never renamed into place: it holds nothing committed. */
  async removeLeftovers(): Promise<void> {
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
export function parseStoreFile(path: string, text: string): StoreFile {
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
  const { sequence, ...data } = parsed.data;
  return { data, sequence };
}
