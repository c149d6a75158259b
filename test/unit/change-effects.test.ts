/**
 * What a change made on another relay does to this relay's live traffic: the same cuts the
 * admin API makes where the change was made, and nothing for changes this relay made itself,
 * for new records, or for a mapping whose description alone changed.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { applyRemoteChanges, effectOf } from "../../cloud/cluster/change-effects.js";
import type { ConfigChange } from "../../cloud/store/changes.js";
import { silentLogger } from "../../shared/logger.js";
import { agentRecord, clientRecord, mappingRecord } from "./store-conformance.js";

const agent = agentRecord("ag_1");
const client = clientRecord("cl_1");
const m = mappingRecord("mp_1");

const change = (c: Omit<ConfigChange, "local"> & { local?: boolean }): ConfigChange =>
  ({ local: false, ...c }) as ConfigChange;

describe("effects of changes made on another relay", () => {
  it("agents: deleted and rotated close the tunnels, a move to another location too; new or renamed do not", () => {
    assert.deepEqual(
      effectOf(change({ entity: "agent", id: "ag_1", kind: "deleted", before: agent, after: null })),
      {
        do: "disconnect-agent",
        agentId: "ag_1",
        reason: "agent deleted",
      },
    );
    const rotated = effectOf(
      change({ entity: "agent", id: "ag_1", kind: "rotated", before: agent, after: agent }),
    );
    assert.equal(rotated?.do === "disconnect-agent" && rotated.reason, "token rotated");
    const moved = { ...agent, location: "plant" };
    assert.equal(
      effectOf(change({ entity: "agent", id: "ag_1", kind: "changed", before: agent, after: moved }))?.do,
      "disconnect-agent",
    );
    const renamed = { ...agent, name: "renamed" };
    assert.equal(
      effectOf(change({ entity: "agent", id: "ag_1", kind: "changed", before: agent, after: renamed })),
      null,
    );
    assert.equal(
      effectOf(change({ entity: "agent", id: "ag_1", kind: "created", before: null, after: agent })),
      null,
    );
  });

  it("clients: deleted, rotated, renamed or moved reset the connections", () => {
    for (const after of [null, { ...client, username: "other" }, { ...client, location: "plant" }]) {
      const kind = after === null ? "deleted" : "changed";
      assert.deepEqual(effectOf(change({ entity: "client", id: "cl_1", kind, before: client, after })), {
        do: "reset-client",
        clientId: "cl_1",
      });
    }
    assert.equal(
      effectOf(change({ entity: "client", id: "cl_1", kind: "rotated", before: client, after: client }))?.do,
      "reset-client",
    );
    const relabelled = { ...client, name: "relabelled" };
    assert.equal(
      effectOf(change({ entity: "client", id: "cl_1", kind: "changed", before: client, after: relabelled })),
      null,
    );
  });

  it("mappings: deleted or re-pointed reset the connections; a new description does not", () => {
    assert.deepEqual(
      effectOf(change({ entity: "mapping", id: "mp_1", kind: "deleted", before: m, after: null })),
      {
        do: "reset-mapping",
        mappingId: "mp_1",
      },
    );
    const repointed = { ...m, internalHost: "10.0.0.6" };
    assert.equal(
      effectOf(change({ entity: "mapping", id: "mp_1", kind: "changed", before: m, after: repointed }))?.do,
      "reset-mapping",
    );
    const described = { ...m, description: "new words", updatedAt: "2026-05-05T00:00:00.000Z" };
    assert.equal(
      effectOf(change({ entity: "mapping", id: "mp_1", kind: "changed", before: m, after: described })),
      null,
    );
  });

  it("applies remote changes to the tunnels and connections, and skips this relay's own", () => {
    const done: string[] = [];
    const apply = applyRemoteChanges({
      tunnels: { disconnectAgent: (id, reason) => void done.push(`disconnect ${id} (${reason})`) },
      connections: {
        killByClient: (id) => done.push(`reset client ${id}`),
        killByMapping: (id) => done.push(`reset mapping ${id}`),
      },
      logger: silentLogger(),
    });
    apply({
      version: 7,
      changes: [
        change({ entity: "agent", id: "ag_1", kind: "rotated", before: agent, after: agent }),
        change({ entity: "client", id: "cl_1", kind: "deleted", before: client, after: null }),
        change({ entity: "mapping", id: "mp_1", kind: "deleted", before: m, after: null, local: true }),
        change({ entity: "mapping", id: "mp_2", kind: "deleted", before: m, after: null }),
      ],
    });
    assert.deepEqual(done, ["disconnect ag_1 (token rotated)", "reset client cl_1", "reset mapping mp_2"]);
  });
});
