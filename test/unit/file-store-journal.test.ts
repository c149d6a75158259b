/**
 * The file store's journal on real files: what a write costs on disk, compaction, and what a
 * torn or damaged journal loads as. The crash of a real process is in
 * integration/file-store-crash.test.ts.
 */
import assert from "node:assert/strict";
import { mkdtemp, readFile, rm, stat, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, it } from "node:test";
import { FileStore, JOURNAL_FILE, STORE_FILE } from "../../cloud/store/file-store.js";
import { encodeRecord } from "../../cloud/store/journal.js";
import type { MappingRecord, StoreData } from "../../cloud/store/store.js";
import { StoreError } from "../../shared/errors.js";
import { silentLogger } from "../../shared/logger.js";
import { agentRecord, mappingRecord } from "./store-conformance.js";

/** Mapping `i` of a large store: its own host and port, so none overlaps another. */
function numbered(i: number): MappingRecord {
  const port = 1 + (i % 60_000);
  return {
    ...mappingRecord(`mp_${i}`, [port, port]),
    virtualHost: `host-${Math.floor(i / 60_000)}.corp.example`,
    description: `mapping number ${i}`,
  };
}

/** What identifies a file's version on disk: replaced or rewritten, one of these changes. */
async function identity(path: string): Promise<{ ino: number; size: number; mtimeMs: number }> {
  const s = await stat(path);
  return { ino: s.ino, size: s.size, mtimeMs: s.mtimeMs };
}

const sizeOf = async (path: string): Promise<number> => (await stat(path)).size;
const ids = (records: readonly { id: string }[]): string[] => records.map((r) => r.id);

describe("FileStore journal", () => {
  let dir: string;
  const opened: FileStore[] = [];

  async function openStore(journalLimit?: number): Promise<FileStore> {
    const store = new FileStore({ dir, logger: silentLogger(), ...(journalLimit ? { journalLimit } : {}) });
    await store.open();
    opened.push(store);
    return store;
  }

  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), "underpass-journal-"));
  });

  afterEach(async () => {
    for (const s of opened.splice(0)) await s.close();
    await rm(dir, { recursive: true, force: true });
  });

  it("at 10 000 mappings a create or a delete appends under 4 KiB and leaves the snapshot alone", async () => {
    // A store from before the journal: one file, no sequence. It loads as it is.
    const old: StoreData = {
      version: 1,
      adminTokenHash: null,
      agents: [],
      clients: [],
      mappings: Array.from({ length: 10_000 }, (_, i) => numbered(i)),
    };
    const snapshotPath = join(dir, STORE_FILE);
    await writeFile(snapshotPath, `${JSON.stringify(old, null, 2)}\n`, { mode: 0o600 });
    const snapshot = await identity(snapshotPath);
    assert.ok(snapshot.size > 4_000_000, `the snapshot holds ${snapshot.size} bytes`);

    const store = await openStore();
    assert.equal((await store.listMappings()).length, 10_000);
    assert.deepEqual(await identity(snapshotPath), snapshot, "opening rewrote the snapshot");

    const appended: number[] = [];
    let journal = 0;
    const measure = async (write: () => Promise<unknown>): Promise<void> => {
      await write();
      const now = await sizeOf(store.journalPath);
      appended.push(now - journal);
      journal = now;
      assert.deepEqual(await identity(snapshotPath), snapshot, "a write rewrote the snapshot");
    };
    for (let i = 0; i < 20; i++) await measure(() => store.addMapping(numbered(10_000 + i)));
    for (let i = 0; i < 20; i++) await measure(() => store.deleteMapping(`mp_${i}`));
    for (const bytes of appended) {
      assert.ok(bytes > 0 && bytes < 4096, `a write appended ${bytes} bytes`);
    }
    assert.equal((await store.listMappings()).length, 10_000);

    // Compaction writes the whole data once, as a new file, and empties the journal.
    await store.compact();
    const compacted = await identity(snapshotPath);
    assert.notEqual(compacted.ino, snapshot.ino, "the snapshot was replaced by a new file");
    assert.equal(await sizeOf(store.journalPath), 0);
    const saved = JSON.parse(await readFile(snapshotPath, "utf8"));
    assert.equal(saved.sequence, 40);
    assert.equal(saved.mappings.length, 10_000);
    const held = await store.listMappings();
    await store.close();
    const again = await openStore();
    assert.deepEqual(await again.listMappings(), held);
  });

  it("compacts by itself once the journal outgrows the snapshot and its bound, not before", async () => {
    const limit = 4096;
    const store = await openStore(limit);
    const snapshotPath = join(dir, STORE_FILE);
    let snapshot = await identity(snapshotPath);
    let journal = 0;
    let compactions = 0;
    for (let i = 0; i < 80; i++) {
      const record = numbered(i);
      const bytes = encodeRecord({ seq: i + 1, changes: [{ op: "put", entity: "mappings", record }] }).length;
      await store.addMapping(record);
      // A write that changes nothing still waits its turn: the compaction queued before it ran.
      assert.equal(await store.deleteMapping("none"), false);
      const due = journal + bytes > Math.max(limit, snapshot.size);
      const now = await identity(snapshotPath);
      if (due) {
        compactions++;
        assert.notEqual(now.ino, snapshot.ino, `write ${i} should have compacted`);
        assert.equal(await sizeOf(store.journalPath), 0);
        journal = 0;
      } else {
        assert.deepEqual(now, snapshot, `write ${i} rewrote the snapshot before its time`);
        assert.equal(await sizeOf(store.journalPath), journal + bytes);
        journal += bytes;
      }
      snapshot = now;
    }
    assert.ok(compactions >= 3, `${compactions} compactions`);
    const held = await store.listMappings();
    assert.deepEqual(ids(held), ids(Array.from({ length: 80 }, (_, i) => numbered(i))));
    await store.close();
    assert.deepEqual(await (await openStore()).listMappings(), held);
  });

  it("compaction under concurrent writes keeps every write", async () => {
    const store = await openStore(1); // compacts after every write that appended
    const writes: Promise<unknown>[] = [];
    for (let i = 0; i < 150; i++) {
      writes.push(store.addMapping(numbered(i)));
      if (i % 3 === 2) writes.push(store.deleteMapping(`mp_${i - 1}`));
      if (i % 10 === 0) writes.push(store.compact());
      if (i % 25 === 0) writes.push(store.addAgent(agentRecord(`ag_${i}`)));
    }
    await Promise.all(writes);
    const expected = Array.from({ length: 150 }, (_, i) => i)
      .filter((i) => i % 3 !== 1)
      .map((i) => `mp_${i}`);
    assert.deepEqual(ids(await store.listMappings()), expected);
    await store.close();
    const again = await openStore();
    assert.deepEqual(ids(await again.listMappings()), expected);
    assert.deepEqual(ids(await again.listAgents()), ["ag_0", "ag_25", "ag_50", "ag_75", "ag_100", "ag_125"]);
    const saved = JSON.parse(await readFile(join(dir, STORE_FILE), "utf8"));
    assert.equal(saved.sequence, 150 + 50 + 6, "one change number per write that changed something");
  });

  /** A store with three mappings written through the journal; the last write is mp_2's. */
  async function threeWrites(): Promise<{ journal: Buffer; lastStart: number }> {
    const store = await openStore();
    for (let i = 0; i < 3; i++) await store.addMapping(numbered(i));
    await store.close();
    const journal = await readFile(join(dir, JOURNAL_FILE));
    const lastStart = journal.lastIndexOf(0x0a, journal.length - 2) + 1;
    return { journal, lastStart };
  }

  it("a journal cut at any byte of its last record loads without that write, and the next write follows", async () => {
    const { journal, lastStart } = await threeWrites();
    const journalPath = join(dir, JOURNAL_FILE);
    for (let cut = lastStart; cut <= journal.length; cut++) {
      await writeFile(journalPath, journal.subarray(0, cut));
      const store = await openStore();
      const whole = cut === journal.length;
      assert.deepEqual(
        ids(await store.listMappings()),
        whole ? ["mp_0", "mp_1", "mp_2"] : ["mp_0", "mp_1"],
        `cut at ${cut}`,
      );
      assert.equal(
        await sizeOf(journalPath),
        whole ? journal.length : lastStart,
        `the torn tail is cut off (${cut})`,
      );
      await store.close();
    }
    // After a torn tail was dropped, the next write lands right after the last whole record.
    await writeFile(journalPath, journal.subarray(0, lastStart + 7));
    const store = await openStore();
    await store.addMapping(numbered(7));
    await store.close();
    const again = await openStore();
    assert.deepEqual(ids(await again.listMappings()), ["mp_0", "mp_1", "mp_7"]);
  });

  it("drops a last record whose checksum fails; refuses a damaged record with whole ones after it", async () => {
    const { journal, lastStart } = await threeWrites();
    const journalPath = join(dir, JOURNAL_FILE);
    const flip = (at: number): Buffer => {
      const copy = Buffer.from(journal);
      copy[at] = copy[at] === 0x30 ? 0x31 : 0x30;
      return copy;
    };
    // The last record's checksum: that write is dropped.
    await writeFile(journalPath, flip(lastStart));
    const store = await openStore();
    assert.deepEqual(ids(await store.listMappings()), ["mp_0", "mp_1"]);
    await store.close();

    // The first record's checksum, with two whole records after it: damage, not a torn write.
    const damaged = flip(0);
    await writeFile(journalPath, damaged);
    await assert.rejects(new FileStore({ dir, logger: silentLogger() }).open(), (err: unknown) => {
      assert.ok(err instanceof StoreError);
      assert.ok(err.message.includes(journalPath), err.message);
      assert.match(err.message, /corrupt at byte 0 \(checksum mismatch\)/);
      return true;
    });
    assert.deepEqual(await readFile(journalPath), damaged, "a damaged journal is left as it was");
  });

  it("replays only what the snapshot lacks: a record it holds is never applied twice", async () => {
    const store = await openStore();
    await store.addMapping(numbered(1)); // change 1
    const journalPath = join(dir, JOURNAL_FILE);
    const stale = await readFile(journalPath);
    await store.deleteMapping("mp_1"); // change 2
    await store.compact(); // snapshot at change 2, journal empty
    await store.close();
    // As if the crash came between the snapshot's rename and the journal's truncation, with
    // change 1 (the put of mp_1) still in the journal: replaying it would bring mp_1 back.
    await writeFile(journalPath, stale);
    const again = await openStore();
    assert.deepEqual(await again.listMappings(), []);
    await again.addMapping(numbered(2)); // change 3, after the stale record
    await again.close();
    const third = await openStore();
    assert.deepEqual(ids(await third.listMappings()), ["mp_2"]);
  });

  it("refuses a journal that does not follow on from the snapshot", async () => {
    const store = await openStore();
    for (let i = 0; i < 3; i++) await store.addMapping(numbered(i));
    await store.close();
    const journalPath = join(dir, JOURNAL_FILE);
    const journal = await readFile(journalPath);
    // Change 1 missing: the snapshot is at 0, the journal starts at 2.
    await writeFile(journalPath, journal.subarray(journal.indexOf(0x0a) + 1));
    await assert.rejects(
      new FileStore({ dir, logger: silentLogger() }).open(),
      /does not follow on from .*snapshot at change 0, record 2 where 1 was due/,
    );
  });

  it("a journal without a snapshot is replayed and written as one", async () => {
    const store = await openStore();
    for (let i = 0; i < 3; i++) await store.addMapping(numbered(i));
    await store.close();
    await rm(join(dir, STORE_FILE));
    const again = await openStore();
    assert.deepEqual(ids(await again.listMappings()), ["mp_0", "mp_1", "mp_2"]);
    const saved = JSON.parse(await readFile(join(dir, STORE_FILE), "utf8"));
    assert.equal(saved.sequence, 3);
    assert.equal(saved.mappings.length, 3);
    assert.equal(await sizeOf(join(dir, JOURNAL_FILE)), 0);
  });
});
