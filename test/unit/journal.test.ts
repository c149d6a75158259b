import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { crc32 } from "node:zlib";
import {
  applyChanges,
  encodeRecord,
  type JournalRecord,
  readJournal,
  recordsAfter,
} from "../../cloud/store/journal.js";
import type { StoreData } from "../../cloud/store/store.js";
import { agentRecord, mappingRecord } from "./store-conformance.js";

const EMPTY: StoreData = { version: 1, adminTokenHash: null, agents: [], clients: [], mappings: [] };

const put = (seq: number, id: string): JournalRecord => ({
  seq,
  changes: [{ op: "put", entity: "mappings", record: mappingRecord(id, [1000 + seq, 1000 + seq]) }],
});

describe("journal records", () => {
  it("round-trips records as checksummed lines", () => {
    const records = [put(1, "mp_1"), { seq: 2, changes: [{ op: "delete", entity: "mappings", id: "mp_1" }] }];
    const bytes = Buffer.concat(records.map((r) => encodeRecord(r as JournalRecord)));
    const text = bytes.toString("utf8");
    assert.equal(text.split("\n").length, 3);
    assert.match(text, /^[0-9a-f]{8} \{"seq":1,"changes":\[/);
    const read = readJournal(bytes);
    assert.equal(read.kind, "ok");
    assert.ok(read.kind === "ok");
    assert.deepEqual(read.records, records);
    assert.equal(read.validBytes, bytes.length);
    assert.equal(read.tornBytes, 0);
  });

  it("reads a journal cut at every byte offset as its whole records and a torn tail", () => {
    const parts = [put(1, "mp_1"), put(2, "mp_2"), put(3, "mp_3")].map(encodeRecord);
    const bytes = Buffer.concat(parts);
    const ends = parts.map((_, i) => parts.slice(0, i + 1).reduce((n, p) => n + p.length, 0));
    for (let cut = 0; cut <= bytes.length; cut++) {
      const read = readJournal(bytes.subarray(0, cut));
      assert.ok(read.kind === "ok", `cut at ${cut}`);
      const whole = ends.filter((e) => e <= cut);
      assert.equal(read.records.length, whole.length, `cut at ${cut}`);
      assert.equal(read.validBytes, whole.at(-1) ?? 0, `cut at ${cut}`);
      assert.equal(read.tornBytes, cut - read.validBytes, `cut at ${cut}`);
    }
  });

  it("drops a last record whose checksum fails, or garbage after the last record", () => {
    const good = encodeRecord(put(1, "mp_1"));
    const last = encodeRecord(put(2, "mp_2"));
    const flipped = Buffer.from(last);
    flipped[20] = flipped[20] === 0x61 ? 0x62 : 0x61; // a byte inside the JSON
    for (const tail of [flipped, Buffer.from("\0\0\0\0\n\0\0"), Buffer.from("zzzzzzzz {}\n")]) {
      const read = readJournal(Buffer.concat([good, tail]));
      assert.ok(read.kind === "ok");
      assert.equal(read.records.length, 1);
      assert.equal(read.validBytes, good.length);
      assert.equal(read.tornBytes, tail.length);
      assert.ok(read.tornReason);
    }
  });

  it("refuses a bad record with a good one after it: damage, not a torn append", () => {
    const first = encodeRecord(put(1, "mp_1"));
    const middle = Buffer.from(encodeRecord(put(2, "mp_2")));
    middle[0] = middle[0] === 0x30 ? 0x31 : 0x30; // the checksum's first digit
    const last = encodeRecord(put(3, "mp_3"));
    const read = readJournal(Buffer.concat([first, middle, last]));
    assert.deepEqual(read, { kind: "corrupt", offset: first.length, reason: "checksum mismatch" });
  });

  it("refuses a line whose checksum holds but whose JSON is not a record", () => {
    const json = Buffer.from(JSON.stringify({ seq: 0, changes: [] }));
    const line = Buffer.concat([
      Buffer.from(`${crc32(json).toString(16).padStart(8, "0")} `),
      json,
      Buffer.from("\n"),
    ]);
    const read = readJournal(Buffer.concat([line, encodeRecord(put(1, "mp_1"))]));
    assert.ok(read.kind === "corrupt");
    assert.match(read.reason, /not a journal record \(seq/);
  });

  it("skips what a snapshot holds and refuses a gap", () => {
    const records = [put(4, "a"), put(5, "b"), put(6, "c")];
    assert.deepEqual(recordsAfter(3, records), records);
    assert.deepEqual(recordsAfter(5, records), [records[2]]);
    assert.deepEqual(recordsAfter(6, records), []);
    assert.deepEqual(recordsAfter(9, records), []);
    assert.equal(recordsAfter(2, records), "record 4 where 3 was due");
    assert.equal(recordsAfter(3, [put(4, "a"), put(6, "c")]), "record 6 where 5 was due");
  });
});

describe("applyChanges", () => {
  it("puts a new record at the end and a known one in its place; deletes; sets the admin hash", () => {
    const a = agentRecord("ag_a");
    const data: StoreData = {
      ...EMPTY,
      mappings: [mappingRecord("m1", [1, 1]), mappingRecord("m2", [2, 2]), mappingRecord("m3", [3, 3])],
    };
    const next = applyChanges(data, [
      { op: "put", entity: "mappings", record: { ...mappingRecord("m2", [2, 2]), description: "changed" } },
      { op: "put", entity: "mappings", record: mappingRecord("m4", [4, 4]) },
      { op: "delete", entity: "mappings", id: "m1" },
      { op: "delete", entity: "mappings", id: "nope" },
      { op: "put", entity: "agents", record: a },
      { op: "admin", adminTokenHash: "a".repeat(64) },
    ]);
    assert.deepEqual(
      next.mappings.map((m) => [m.id, m.description]),
      [
        ["m2", "changed"],
        ["m3", ""],
        ["m4", ""],
      ],
    );
    assert.deepEqual(next.agents, [a]);
    assert.equal(next.adminTokenHash, "a".repeat(64));
    assert.equal(data.mappings.length, 3, "the input is left as it was");
    assert.equal(next.clients, data.clients, "an untouched list is shared");
  });

  it("an import replaces every list; later changes apply on top", () => {
    const data: StoreData = { ...EMPTY, agents: [agentRecord("old")], mappings: [mappingRecord("m1")] };
    const next = applyChanges(data, [
      { op: "import", config: { agents: [agentRecord("new")], clients: [], mappings: [] } },
      { op: "put", entity: "mappings", record: mappingRecord("m9") },
    ]);
    assert.deepEqual(
      next.agents.map((a) => a.id),
      ["new"],
    );
    assert.deepEqual(
      next.mappings.map((m) => m.id),
      ["m9"],
    );
  });
});
