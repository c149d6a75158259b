import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { applyChanges, type JournalChange } from "../../cloud/store/journal.js";
import { ConfigSnapshot } from "../../cloud/store/snapshot.js";
import type { StoreData } from "../../cloud/store/store.js";
import { seededRandom } from "../helpers/seeded-random.js";
import { agentRecord, clientRecord, mappingRecord } from "./store-conformance.js";

const LOCATIONS = ["default", "plant-1", "plant-2"];
const HOSTS = ["a.example", "b.example"];

/** Every lookup a snapshot answers, as plain values to compare. */
function lookups(s: ConfigSnapshot): unknown {
  const byLocation = Object.fromEntries(LOCATIONS.map((l) => [l, s.mappingsIn(l).map((m) => m.id)]));
  const byHost = Object.fromEntries(
    LOCATIONS.flatMap((l) =>
      HOSTS.map((h) => [`${l} ${h}`, s.mappingsOnHost(l, h.toUpperCase()).map((m) => m.id)]),
    ),
  );
  const entries = (m: ReadonlyMap<string, { id: string }>) => [...m].map(([k, v]) => [k, v.id]).sort();
  return {
    data: s.data,
    agentsById: entries(s.agentsById),
    agentsByTokenHash: entries(s.agentsByTokenHash),
    clientsById: entries(s.clientsById),
    clientsByUsername: entries(s.clientsByUsername),
    mappingsById: entries(s.mappingsById),
    byLocation,
    byHost,
  };
}

/** A random change over a few ids, so that puts replace, deletes hit and locations move. */
function randomChange(next: () => number): JournalChange {
  const n = next();
  const id = `x${n % 7}`;
  const location = LOCATIONS[(n >>> 3) % LOCATIONS.length] ?? "default";
  switch ((n >>> 6) % 8) {
    case 0:
      return { op: "put", entity: "agents", record: agentRecord(id, { location, name: `n${n}` }) };
    case 1:
      return {
        op: "put",
        entity: "clients",
        record: clientRecord(id, { location, username: `u-${id}-${n % 2}` }),
      };
    case 2:
    case 3: {
      const port = 1 + ((n >>> 9) % 50);
      const virtualHost = HOSTS[(n >>> 15) % HOSTS.length] ?? "a.example";
      return {
        op: "put",
        entity: "mappings",
        record: mappingRecord(id, [port, port], { location, virtualHost }),
      };
    }
    case 4:
      return { op: "delete", entity: "agents", id };
    case 5:
      return { op: "delete", entity: "clients", id };
    case 6:
      return { op: "delete", entity: "mappings", id };
    default:
      return { op: "admin", adminTokenHash: (n % 16).toString(16).repeat(64) };
  }
}

describe("ConfigSnapshot.withChanges", () => {
  it("answers every lookup as a snapshot built afresh from the same data", () => {
    for (const seed of [1, 7, 42, 1234, 99991]) {
      const next = seededRandom(seed);
      let data: StoreData = { version: 1, adminTokenHash: null, agents: [], clients: [], mappings: [] };
      let incremental = new ConfigSnapshot(data);
      for (let step = 0; step < 400; step++) {
        const changes = Array.from({ length: 1 + (next() % 3) }, () => randomChange(next));
        data = applyChanges(data, changes);
        incremental = incremental.withChanges(changes);
        assert.deepEqual(
          lookups(incremental),
          lookups(new ConfigSnapshot(data)),
          `seed ${seed}, step ${step}`,
        );
        const { agents, clients, mappings } = incremental.data;
        assert.ok(
          Object.isFrozen(mappings) && [...agents, ...clients, ...mappings].every((r) => Object.isFrozen(r)),
        );
      }
    }
  });

  it("leaves the arrays it handed out as they were", () => {
    const s = new ConfigSnapshot({
      version: 1,
      adminTokenHash: null,
      agents: [],
      clients: [],
      mappings: [mappingRecord("m1", [1, 1]), mappingRecord("m2", [2, 2])],
    });
    const all = s.data.mappings;
    const ofDefault = s.mappingsIn("default");
    const next = s.withChanges([
      { op: "delete", entity: "mappings", id: "m1" },
      { op: "put", entity: "mappings", record: mappingRecord("m3", [3, 3]) },
    ]);
    assert.deepEqual(
      all.map((m) => m.id),
      ["m1", "m2"],
    );
    assert.deepEqual(
      ofDefault.map((m) => m.id),
      ["m1", "m2"],
    );
    assert.deepEqual(
      next.mappingsIn("default").map((m) => m.id),
      ["m2", "m3"],
    );
    assert.equal(next.data.mappings[0], all[1], "an untouched record is shared, not copied");
    assert.throws(() => s.withChanges([]), /handed on/, "an older snapshot cannot be derived from twice");
  });
});
