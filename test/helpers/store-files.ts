/** The embedded store's files, copied as a relay's data directory holds them. */
import { copyFile } from "node:fs/promises";
import { join } from "node:path";
import { JOURNAL_FILE, STORE_FILE } from "../../cloud/store/file-store.js";

/** Copy the snapshot and the journal (when there is one) from one data directory to another. */
export async function copyStoreFiles(fromDir: string, toDir: string): Promise<void> {
  await copyFile(join(fromDir, STORE_FILE), join(toDir, STORE_FILE));
  await copyFile(join(fromDir, JOURNAL_FILE), join(toDir, JOURNAL_FILE)).catch((err: unknown) => {
    if ((err as NodeJS.ErrnoException).code !== "ENOENT") throw err;
  });
}
