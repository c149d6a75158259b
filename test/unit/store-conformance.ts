/**
 * What every `Store` must do, whatever holds the data: the same cases run against the file
 * store (store-conformance-file.test.ts) and the PostgreSQL store
 * (integration/store-conformance-postgres.test.ts). Each case gets a fresh, empty store; a
 * second store over the same data is what a restart (or, for a shared database, another
 * relay) sees.
 */
import assert from "node:assert/strict";
import { afterEach, describe, it } from "node:test";
import { generateSecret, hashSecret } from "../../cloud/admin/secrets.js";
import { MappingConflictError } from "../../cloud/store/overlap.js";
import type { AgentRecord, ClientRecord, ConfigData, MappingRecord, Store } from "../../cloud/store/store.js";
import { ConflictError, NotFoundError, StoreError } from "../../shared/errors.js";

export interface StoreUnderTest {
  /** A fresh, empty store for one case; opened. */
  fresh(): Promise<Store>;
  /**
   * Another store over the data of `store`, opened. The file store cannot share its file
   * with a live writer, so `store` is closed first there; a database store stays open.
   */
  again(store: Store): Promise<Store>;
  /** Stores the suite opened are closed by it; this tears down what `fresh` made. */
  cleanup?(): Promise<void>;
}

const T = "2026-01-02T03:04:05.000Z";

export const agentRecord = (id: string, o: Partial<AgentRecord> = {}): AgentRecord => ({
  id,
  name: `agent ${id}`,
  location: "default",
  tokenHash: hashSecret(generateSecret("upa")),
  createdAt: T,
  ...o,
});

export const clientRecord = (id: string, o: Partial<ClientRecord> = {}): ClientRecord => ({
  id,
  name: `client ${id}`,
  location: "default",
  username: `user-${id}`,
  passwordHash: hashSecret(generateSecret("ups")),
  createdAt: T,
  ...o,
});

/** A mapping of `ftp.example` on `ports` ([start, end]) in `location`. */
export const mappingRecord = (
  id: string,
  ports: readonly [number, number] = [21, 21],
  o: Partial<MappingRecord> = {},
): MappingRecord => ({
  id,
  virtualHost: "ftp.example",
  virtualPort: { start: ports[0], end: ports[1] },
  internalHost: "10.0.0.5",
  internalPort: { start: ports[0], end: ports[1] },
  location: "default",
  protocol: "tcp",
  description: "",
  createdAt: T,
  updatedAt: T,
  ...o,
});

const ids = (records: readonly { id: string }[]): string[] => records.map((r) => r.id);

function conflictWith(id: string): (err: unknown) => boolean {
  return (err) => {
    assert.ok(err instanceof MappingConflictError, String(err));
    assert.equal(err.code, "UP_ERR_CONFLICT");
    assert.equal(err.conflictsWith, id);
    return true;
  };
}

export function storeConformance(name: string, sut: StoreUnderTest): void {
  describe(`Store conformance: ${name}`, () => {
    const opened: Store[] = [];
    const fresh = async (): Promise<Store> => {
      const s = await sut.fresh();
      opened.push(s);
      return s;
    };
    const again = async (s: Store): Promise<Store> => {
      const t = await sut.again(s);
      opened.push(t);
      return t;
    };
    afterEach(async () => {
      for (const s of opened.splice(0)) await s.close();
      await sut.cleanup?.();
    });

    it("starts empty and answers every read with a promise", async () => {
      const s = await fresh();
      const reads = [
        s.adminTokenHash(),
        s.listAgents(),
        s.getAgent("ag_x"),
        s.findAgentByTokenHash(hashSecret("x")),
        s.listClients(),
        s.findClientByUsername("nobody"),
        s.listMappings(),
        s.getMapping("mp_x"),
        s.mappingsOf("default"),
        s.exportConfig(),
      ];
      for (const r of reads) assert.ok(r instanceof Promise);
      assert.deepEqual(await Promise.all(reads), [
        null,
        [],
        undefined,
        undefined,
        [],
        undefined,
        [],
        undefined,
        [],
        { agents: [], clients: [], mappings: [] },
      ]);
    });

    it("keeps every record, in the order added, for the next store over the same data", async () => {
      const s = await fresh();
      const a1 = agentRecord("ag_1");
      const a2 = agentRecord("ag_2", { location: "plant" });
      const c1 = clientRecord("cl_1");
      const m1 = mappingRecord("mp_1", [30000, 30010], { protocol: "ftp", description: "passive" });
      const m2 = mappingRecord("mp_2", [21, 21], { location: "plant" });
      await s.setAdminTokenHash(hashSecret("admin"));
      await s.addAgent(a2);
      await s.addAgent(a1);
      await s.addClient(c1);
      await s.addMapping(m2);
      await s.addMapping(m1);
      const t = await again(s);
      assert.equal(await t.adminTokenHash(), hashSecret("admin"));
      assert.deepEqual(await t.listAgents(), [a2, a1]);
      assert.deepEqual(await t.listClients(), [c1]);
      assert.deepEqual(await t.listMappings(), [m2, m1]);
      assert.deepEqual(await t.getAgent("ag_1"), a1);
      assert.deepEqual(await t.findAgentByTokenHash(a2.tokenHash), a2);
      assert.deepEqual(await t.findClientByUsername("user-cl_1"), c1);
      assert.deepEqual(await t.getMapping("mp_1"), m1);
      assert.deepEqual(ids(await t.mappingsOf("plant")), ["mp_2"]);
      assert.deepEqual(await t.mappingsOf("nowhere"), []);
      assert.deepEqual(await t.exportConfig(), { agents: [a2, a1], clients: [c1], mappings: [m2, m1] });
    });

    it("hands out frozen records", async () => {
      const s = await fresh();
      await s.addAgent(agentRecord("ag_1"));
      await s.addMapping(mappingRecord("mp_1"));
      const a = (await s.getAgent("ag_1"))!;
      assert.throws(() => {
        (a as { name: string }).name = "changed";
      }, TypeError);
      const m = (await s.getMapping("mp_1"))!;
      assert.throws(() => {
        (m.virtualPort as { start: number }).start = 1;
      }, TypeError);
    });

    it("refuses duplicate ids, token hashes and usernames, changing nothing", async () => {
      const s = await fresh();
      const a = agentRecord("ag_1");
      const c = clientRecord("cl_1");
      await s.addAgent(a);
      await s.addClient(c);
      await s.addMapping(mappingRecord("mp_1"));
      await assert.rejects(s.addAgent(agentRecord("ag_1")), ConflictError);
      await assert.rejects(s.addAgent(agentRecord("ag_2", { tokenHash: a.tokenHash })), ConflictError);
      await assert.rejects(s.addClient(clientRecord("cl_1")), ConflictError);
      await assert.rejects(s.addClient(clientRecord("cl_2", { username: c.username })), /is taken/);
      await assert.rejects(s.addMapping(mappingRecord("mp_1", [2121, 2121])), ConflictError);
      assert.deepEqual(ids(await s.listAgents()), ["ag_1"]);
      assert.deepEqual(ids(await s.listClients()), ["cl_1"]);
      assert.deepEqual(ids(await s.listMappings()), ["mp_1"]);
      const t = await again(s);
      assert.deepEqual(ids(await t.listAgents()), ["ag_1"]);
      assert.deepEqual(ids(await t.listClients()), ["cl_1"]);
    });

    it("replaceAgent: a rotated token replaces the old one; unknown ids and taken tokens are refused", async () => {
      const s = await fresh();
      const a = agentRecord("ag_1");
      const b = agentRecord("ag_2");
      await s.addAgent(a);
      await s.addAgent(b);
      const rotated = { ...a, tokenHash: hashSecret(generateSecret("upa")) };
      await s.replaceAgent(rotated);
      assert.equal(await s.findAgentByTokenHash(a.tokenHash), undefined);
      assert.deepEqual(await s.findAgentByTokenHash(rotated.tokenHash), rotated);
      assert.deepEqual(ids(await s.listAgents()), ["ag_1", "ag_2"], "keeps its place");
      await assert.rejects(s.replaceAgent({ ...a, tokenHash: b.tokenHash }), ConflictError);
      await assert.rejects(s.replaceAgent(agentRecord("ag_9")), NotFoundError);
      assert.deepEqual(await s.getAgent("ag_1"), rotated);
      assert.equal(await s.deleteAgent("ag_1"), true);
      assert.equal(await s.deleteAgent("ag_1"), false);
      await assert.rejects(s.replaceAgent(rotated), NotFoundError);
      assert.equal(await s.findAgentByTokenHash(rotated.tokenHash), undefined);
      assert.deepEqual(await (await again(s)).listAgents(), [b]);
    });

    it("keeps an agent's single-instance flag: set on add, cleared and set again by replace, exported and imported", async () => {
      const s = await fresh();
      const single = agentRecord("ag_1", { singleInstance: true });
      const plain = agentRecord("ag_2");
      await s.addAgent(single);
      await s.addAgent(plain);
      assert.deepEqual(await s.getAgent("ag_1"), single);
      assert.deepEqual(await s.findAgentByTokenHash(single.tokenHash), single);
      assert.equal((await s.getAgent("ag_2"))?.singleInstance, undefined, "absent unless set");
      const { singleInstance: _, ...cleared } = single;
      await s.replaceAgent(cleared);
      assert.deepEqual(await s.getAgent("ag_1"), cleared);
      assert.equal("singleInstance" in ((await s.getAgent("ag_1")) ?? {}), false);
      await s.replaceAgent({ ...plain, singleInstance: true });
      const later = await again(s);
      assert.deepEqual(await later.listAgents(), [cleared, { ...plain, singleInstance: true }]);
      const exported = await later.exportConfig();
      await later.importConfig({ ...exported, agents: [single, plain] });
      assert.deepEqual(await later.listAgents(), [single, plain]);
      assert.deepEqual(await (await again(later)).getAgent("ag_1"), single);
    });

    it("replaceClient: a new password and username replace the old; unknown ids and taken names are refused", async () => {
      const s = await fresh();
      const c = clientRecord("cl_1");
      const d = clientRecord("cl_2");
      await s.addClient(c);
      await s.addClient(d);
      const rotated = { ...c, passwordHash: hashSecret(generateSecret("ups")), username: "renamed" };
      await s.replaceClient(rotated);
      assert.equal(await s.findClientByUsername(c.username), undefined);
      assert.deepEqual(await s.findClientByUsername("renamed"), rotated);
      await assert.rejects(s.replaceClient({ ...c, username: d.username }), ConflictError);
      await assert.rejects(s.replaceClient(clientRecord("cl_9")), NotFoundError);
      assert.equal(await s.deleteClient("cl_1"), true);
      assert.equal(await s.deleteClient("cl_1"), false);
      assert.equal(await s.findClientByUsername("renamed"), undefined);
      await assert.rejects(s.replaceClient(rotated), NotFoundError);
      assert.deepEqual(await (await again(s)).listClients(), [d]);
    });

    it("mappings: replace keeps the indexes in step, delete answers whether it deleted", async () => {
      const s = await fresh();
      await s.addMapping(mappingRecord("mp_1"));
      await s.addMapping(mappingRecord("mp_2", [990, 990]));
      await s.replaceMapping(mappingRecord("mp_1", [21, 21], { location: "plant", description: "moved" }));
      assert.deepEqual(ids(await s.mappingsOf("default")), ["mp_2"]);
      assert.equal((await s.mappingsOf("plant"))[0]?.description, "moved");
      await assert.rejects(s.replaceMapping(mappingRecord("mp_9")), NotFoundError);
      assert.equal(await s.deleteMapping("mp_1"), true);
      assert.equal(await s.deleteMapping("mp_1"), false);
      assert.equal(await s.getMapping("mp_1"), undefined);
      assert.deepEqual(await s.mappingsOf("plant"), []);
      assert.deepEqual(ids(await (await again(s)).listMappings()), ["mp_2"]);
    });

    it("refuses an overlapping mapping of the same location, naming the one in the way", async () => {
      const s = await fresh();
      await s.addMapping(mappingRecord("mp_pasv", [30000, 30010]));
      const inside = mappingRecord("mp_in", [30005, 30005], { virtualHost: "FTP.EXAMPLE" });
      await assert.rejects(s.addMapping(inside), (err: unknown) => {
        conflictWith("mp_pasv")(err);
        assert.match(
          String((err as Error).message),
          /overlaps mapping mp_pasv \(ftp\.example:30000-30010\)/i,
        );
        return true;
      });
      await assert.rejects(s.addMapping(mappingRecord("mp_edge", [29990, 30000])), conflictWith("mp_pasv"));
      await assert.rejects(s.addMapping(mappingRecord("mp_wide", [1, 65535])), conflictWith("mp_pasv"));
      assert.deepEqual(ids(await s.listMappings()), ["mp_pasv"]);
      // adjacent ports, another host and another location are not in the way
      await s.addMapping(mappingRecord("mp_next", [30011, 30020]));
      await s.addMapping(mappingRecord("mp_host", [30000, 30010], { virtualHost: "ftp2.example" }));
      await s.addMapping(mappingRecord("mp_plant", [30000, 30010], { location: "plant" }));
      assert.equal((await s.listMappings()).length, 4);
    });

    it("replaceMapping refuses an overlap with another mapping but not with itself", async () => {
      const s = await fresh();
      await s.addMapping(mappingRecord("mp_a", [21, 21]));
      await s.addMapping(mappingRecord("mp_b", [2121, 2121]));
      await assert.rejects(s.replaceMapping(mappingRecord("mp_b", [20, 21])), conflictWith("mp_a"));
      assert.deepEqual((await s.getMapping("mp_b"))?.virtualPort, { start: 2121, end: 2121 });
      await s.replaceMapping(mappingRecord("mp_a", [20, 22]));
      await s.replaceMapping(mappingRecord("mp_b", [21, 21], { location: "plant" }));
      assert.deepEqual(ids(await s.mappingsOf("plant")), ["mp_b"]);
    });

    it("of two concurrent overlapping writes exactly one wins", async () => {
      const s = await fresh();
      for (let round = 0; round < 10; round++) {
        const port = 5000 + round;
        const results = await Promise.allSettled([
          s.addMapping(mappingRecord(`mp_${round}_a`, [port, port])),
          s.addMapping(mappingRecord(`mp_${round}_b`, [port - 1, port + 1])),
        ]);
        const lost = results.filter((r) => r.status === "rejected");
        assert.equal(lost.length, 1, `round ${round}`);
        assert.ok(lost[0]?.status === "rejected" && lost[0].reason instanceof MappingConflictError);
      }
      assert.equal((await s.listMappings()).length, 10);
    });

    it("noteUsage records when and where, the last note of a record winning; notes of gone records are dropped", async () => {
      const s = await fresh();
      await s.addAgent(agentRecord("ag_1"));
      await s.addClient(clientRecord("cl_1"));
      await s.noteUsage([
        { kind: "agent", id: "ag_1", at: "2026-02-01T00:00:00.000Z", address: "192.0.2.1" },
        { kind: "agent", id: "ag_1", at: "2026-02-01T00:00:05.000Z", address: "192.0.2.2" },
        { kind: "client", id: "cl_1", at: "2026-02-01T00:00:06.000Z", address: "198.51.100.7" },
        { kind: "client", id: "cl_gone", at: "2026-02-01T00:00:07.000Z", address: null },
        { kind: "agent", id: "ag_gone", at: "2026-02-01T00:00:07.000Z", address: null },
      ]);
      await s.noteUsage([{ kind: "agent", id: "ag_gone", at: T, address: null }]);
      const a = await s.getAgent("ag_1");
      assert.equal(a?.lastSeenAt, "2026-02-01T00:00:05.000Z");
      assert.equal(a?.lastAddress, "192.0.2.2");
      const c = await s.findClientByUsername("user-cl_1");
      assert.equal(c?.lastUsedAt, "2026-02-01T00:00:06.000Z");
      assert.equal(c?.lastAddress, "198.51.100.7");
      assert.deepEqual(ids(await s.listAgents()), ["ag_1"]);
      const t = await again(s);
      assert.equal((await t.getAgent("ag_1"))?.lastAddress, "192.0.2.2");
    });

    it("importConfig replaces the whole configuration, keeps the admin token, and export gives it back", async () => {
      const s = await fresh();
      await s.setAdminTokenHash(hashSecret("admin"));
      await s.addAgent(agentRecord("ag_old"));
      await s.addClient(clientRecord("cl_old"));
      await s.addMapping(mappingRecord("mp_old"));
      const config: ConfigData = {
        agents: [
          agentRecord("ag_b", { lastSeenAt: T, lastAddress: "192.0.2.9" }),
          agentRecord("ag_a", { location: "plant" }),
        ],
        clients: [clientRecord("cl_a", { lastUsedAt: T, lastAddress: "192.0.2.8" })],
        mappings: [
          mappingRecord("mp_b", [21, 21]),
          mappingRecord("mp_a", [30000, 30010], { protocol: "ftp", location: "plant" }),
        ],
      };
      await s.importConfig(config);
      assert.deepEqual(await s.exportConfig(), config);
      assert.equal(await s.adminTokenHash(), hashSecret("admin"));
      assert.equal(await s.getAgent("ag_old"), undefined);
      assert.deepEqual(ids(await s.mappingsOf("plant")), ["mp_a"]);
      assert.equal((await s.findAgentByTokenHash(config.agents[1]!.tokenHash))?.id, "ag_a");
      const t = await again(s);
      assert.deepEqual(await t.exportConfig(), config);
      assert.equal(await t.adminTokenHash(), hashSecret("admin"));
    });

    it("importConfig refuses an inconsistent configuration as a whole, changing nothing", async () => {
      const s = await fresh();
      await s.addAgent(agentRecord("ag_1"));
      const held = await s.exportConfig();
      const a = agentRecord("ag_x");
      const bad: ConfigData[] = [
        { agents: [a, { ...agentRecord("ag_y"), tokenHash: a.tokenHash }], clients: [], mappings: [] },
        { agents: [a, a], clients: [], mappings: [] },
        {
          agents: [],
          clients: [clientRecord("cl_1", { username: "same" }), clientRecord("cl_2", { username: "same" })],
          mappings: [],
        },
      ];
      for (const config of bad) await assert.rejects(s.importConfig(config), ConflictError);
      await assert.rejects(
        s.importConfig({
          agents: [],
          clients: [],
          mappings: [mappingRecord("mp_1", [21, 22]), mappingRecord("mp_2", [22, 23])],
        }),
        conflictWith("mp_1"),
      );
      assert.deepEqual(await s.exportConfig(), held);
      assert.deepEqual(await (await again(s)).exportConfig(), held);
    });

    it("refuses writes after close", async () => {
      const s = await fresh();
      await s.addAgent(agentRecord("ag_1"));
      await s.close();
      await assert.rejects(s.addAgent(agentRecord("ag_2")), StoreError);
      await assert.rejects(s.setAdminTokenHash(hashSecret("x")), /closed/);
    });
  });
}
