/**
 * A process that adds mappings to a file store one at a time, for the test of a write the file
 * system refuses half-way (integration/file-store-crash.test.ts runs it under `ulimit -f`).
 * Usage: node store-filler.js <dir> <failures>. Prints `add <id>` for each acknowledged write
 * and `fail <id> <message>` for each refused one; exits once `failures` writes were refused.
 */
import { FileStore } from "../../cloud/store/file-store.js";
import { silentLogger } from "../../shared/logger.js";
import { mappingRecord } from "../unit/store-conformance.js";

const [dir, failures] = process.argv.slice(2);
if (!dir || !failures) throw new Error("usage: store-filler.js <dir> <failures>");

// A large bound: the snapshot is never rewritten here, only the journal grows.
const store = new FileStore({ dir, logger: silentLogger(), journalLimit: 1 << 30 });
await store.open();
let failed = 0;
for (let i = 1; failed < Number(failures); i++) {
  const id = `mp_${i}`;
  try {
    await store.addMapping(mappingRecord(id, [i, i]));
    process.stdout.write(`add ${id}\n`);
  } catch (err) {
    failed++;
    process.stdout.write(`fail ${id} ${err instanceof Error ? err.message : String(err)}\n`);
  }
}
await store.close();
