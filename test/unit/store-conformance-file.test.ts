/** The store conformance cases (store-conformance.ts) against the embedded file store. */
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { FileStore } from "../../cloud/store/file-store.js";
import type { Store } from "../../cloud/store/store.js";
import { silentLogger } from "../../shared/logger.js";
import { storeConformance } from "./store-conformance.js";

const dirs = new Map<Store, string>();
const made: string[] = [];

async function openIn(dir: string): Promise<Store> {
  const store = new FileStore({ dir, logger: silentLogger() });
  await store.open();
  dirs.set(store, dir);
  return store;
}

storeConformance("file", {
  async fresh() {
    const dir = await mkdtemp(join(tmpdir(), "underpass-conformance-"));
    made.push(dir);
    return openIn(dir);
  },
  async again(store) {
    // one writer per file: the first store goes away, as at a restart
    await store.close();
    return openIn(dirs.get(store)!);
  },
  async cleanup() {
    for (const dir of made.splice(0)) await rm(dir, { recursive: true, force: true });
    dirs.clear();
  },
});
