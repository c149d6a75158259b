import assert from "node:assert/strict";
import { mkdtemp, readdir, readFile, rename, rm, stat, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, it } from "node:test";
import { generateSecret, hashSecret } from "../../cloud/admin/secrets.js";
import { FileStore, JOURNAL_FILE, STORE_FILE } from "../../cloud/store/file-store.js";
import { MappingConflictError } from "../../cloud/store/overlap.js";
import type { AgentRecord, ClientRecord, MappingRecord } from "../../cloud/store/store.js";
import { ConflictError, NotFoundError, StoreError } from "../../shared/errors.js";
import { silentLogger } from "../../shared/logger.js";

const T = "2026-01-02T03:04:05.000Z";

function agent(id: string, token = generateSecret("upa"), location = "default"): AgentRecord {
  return { id, name: `agent ${id}`, location, tokenHash: hashSecret(token), createdAt: T };
}

function client(id: string, username: string, password = generateSecret("ups")): ClientRecord {
  return {
    id,
    name: `client ${id}`,
    location: "default",
    username,
    passwordHash: hashSecret(password),
    createdAt: T,
  };
}

function mapping(id: string, location = "default", start = 21, end = start): MappingRecord {
  return {
    id,
    virtualHost: "ftp.example",
    virtualPort: { start, end },
    internalHost: "10.0.0.5",
    internalPort: { start, end },
    location,
    protocol: "ftp",
    description: "",
    createdAt: T,
    updatedAt: T,
  };
}

/** The snapshot and the journal, as the next open would read them. */
async function onDisk(store: FileStore): Promise<string> {
  const journal = await readFile(store.journalPath, "utf8").catch(() => "");
  return `${await readFile(store.path, "utf8")}\n--- journal ---\n${journal}`;
}

describe("FileStore", () => {
  let dir: string;
  const opened: FileStore[] = [];

  async function openStore(d = dir): Promise<FileStore> {
    const store = new FileStore({ dir: d, logger: silentLogger() });
    await store.open();
    opened.push(store);
    return store;
  }

  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), "underpass-store-"));
  });

  afterEach(async () => {
    for (const s of opened.splice(0)) await s.close();
    await rm(dir, { recursive: true, force: true });
  });

  it("creates the data dir (0700) and an empty file (0600) on first open", async () => {
    const sub = join(dir, "data", "nested");
    const store = await openStore(sub);
    assert.equal((await stat(sub)).mode & 0o777, 0o700);
    const file = join(sub, STORE_FILE);
    assert.equal(store.path, file);
    assert.equal((await stat(file)).mode & 0o777, 0o600);
    const saved = JSON.parse(await readFile(file, "utf8"));
    assert.deepEqual(saved, {
      version: 1,
      sequence: 0,
      adminTokenHash: null,
      agents: [],
      clients: [],
      mappings: [],
    });
    assert.deepEqual(await store.listAgents(), []);
    assert.equal(await store.adminTokenHash(), null);
  });

  it("round-trips every record through a close and a reopen", async () => {
    const store = await openStore();
    const token = generateSecret("upa");
    await store.setAdminTokenHash(hashSecret("admin"));
    await store.addAgent(agent("ag_1", token));
    await store.addClient(client("cl_1", "erp-1a2b3c"));
    await store.addMapping(mapping("mp_1", "default", 30000, 30010));
    await store.addMapping(mapping("mp_2", "plant", 21));
    await store.close();

    const again = await openStore();
    assert.equal(await again.adminTokenHash(), hashSecret("admin"));
    assert.deepEqual(await again.listAgents(), await store.listAgents());
    assert.deepEqual(await again.listClients(), await store.listClients());
    assert.deepEqual(await again.listMappings(), await store.listMappings());
    assert.equal((await again.findAgentByTokenHash(hashSecret(token)))?.id, "ag_1");
    assert.equal((await again.findClientByUsername("erp-1a2b3c"))?.id, "cl_1");
    assert.deepEqual((await again.getMapping("mp_1"))?.virtualPort, { start: 30000, end: 30010 });
    assert.deepEqual(
      (await again.mappingsOf("plant")).map((m) => m.id),
      ["mp_2"],
    );
    assert.deepEqual(await again.mappingsOf("nowhere"), []);
  });

  it("keeps the indexes in step with adds, replaces and deletes", async () => {
    const store = await openStore();
    const token = generateSecret("upa");
    await store.addAgent(agent("ag_1", token));
    await store.addClient(client("cl_1", "u1"));
    await store.addMapping(mapping("mp_1"));
    await store.addMapping(mapping("mp_2", "default", 990));

    await store.replaceMapping({ ...mapping("mp_1", "plant"), description: "moved" });
    assert.deepEqual(
      (await store.mappingsOf("default")).map((m) => m.id),
      ["mp_2"],
    );
    assert.equal((await store.mappingsOf("plant"))[0]?.description, "moved");
    assert.equal((await store.getMapping("mp_1"))?.location, "plant");

    assert.equal(await store.deleteAgent("ag_1"), true);
    assert.equal(await store.deleteAgent("ag_1"), false);
    assert.equal(await store.findAgentByTokenHash(hashSecret(token)), undefined);
    assert.equal(await store.getAgent("ag_1"), undefined);

    assert.equal(await store.deleteClient("cl_1"), true);
    assert.equal(await store.findClientByUsername("u1"), undefined);

    assert.equal(await store.deleteMapping("mp_1"), true);
    assert.equal(await store.deleteMapping("nope"), false);
    assert.deepEqual(await store.mappingsOf("plant"), []);
    assert.deepEqual(
      (await store.listMappings()).map((m) => m.id),
      ["mp_2"],
    );
  });

  it("rejects duplicates and unknown ids without writing", async () => {
    const store = await openStore();
    const token = generateSecret("upa");
    await store.addAgent(agent("ag_1", token));
    await store.addClient(client("cl_1", "u1"));
    await store.addMapping(mapping("mp_1"));
    const before = await onDisk(store);
    await assert.rejects(store.addAgent(agent("ag_1")), ConflictError);
    await assert.rejects(store.addAgent(agent("ag_2", token)), ConflictError);
    await assert.rejects(store.addClient(client("cl_2", "u1")), ConflictError);
    await assert.rejects(store.addMapping(mapping("mp_1")), ConflictError);
    await assert.rejects(store.replaceMapping(mapping("mp_9")), NotFoundError);
    assert.equal(await onDisk(store), before);
    assert.equal((await store.listAgents()).length, 1);
  });

  it("answers every read with a promise, as a store over the network would", async () => {
    const store = await openStore();
    await store.addAgent(agent("ag_1"));
    const reads: Array<[string, () => unknown]> = [
      ["adminTokenHash", () => store.adminTokenHash()],
      ["listAgents", () => store.listAgents()],
      ["getAgent", () => store.getAgent("ag_1")],
      ["findAgentByTokenHash", () => store.findAgentByTokenHash(hashSecret("x"))],
      ["listClients", () => store.listClients()],
      ["findClientByUsername", () => store.findClientByUsername("u1")],
      ["listMappings", () => store.listMappings()],
      ["getMapping", () => store.getMapping("mp_1")],
      ["mappingsOf", () => store.mappingsOf("default")],
    ];
    for (const [name, read] of reads) assert.ok(read() instanceof Promise, `${name} returns a promise`);
    assert.equal((await store.getAgent("ag_1"))?.id, "ag_1");
  });

  it("refuses an overlapping mapping of the same location, naming the one in the way", async () => {
    const store = await openStore();
    await store.addMapping(mapping("mp_pasv", "default", 30000, 30010));
    const before = await onDisk(store);
    // A single port inside the range, with the host in another case.
    const inside = { ...mapping("mp_in", "default", 30005), virtualHost: "FTP.EXAMPLE" };
    await assert.rejects(store.addMapping(inside), (err: unknown) => {
      assert.ok(err instanceof MappingConflictError);
      assert.equal(err.code, "UP_ERR_CONFLICT");
      assert.equal(err.conflictsWith, "mp_pasv");
      assert.match(err.message, /ftp\.example:30005 overlaps mapping mp_pasv \(ftp\.example:30000-30010\)/i);
      return true;
    });
    // A range that touches only at its last port.
    await assert.rejects(store.addMapping(mapping("mp_edge", "default", 29990, 30000)), MappingConflictError);
    assert.equal(await onDisk(store), before);
    assert.deepEqual(
      (await store.listMappings()).map((m) => m.id),
      ["mp_pasv"],
    );

    // Adjacent ports, another host and another location are not in the way.
    await store.addMapping(mapping("mp_next", "default", 30011, 30020));
    await store.addMapping({ ...mapping("mp_host", "default", 30000, 30010), virtualHost: "ftp2.example" });
    await store.addMapping(mapping("mp_plant", "plant", 30000, 30010));
    assert.equal((await store.listMappings()).length, 4);
  });

  it("replaceMapping refuses an overlap with another mapping but not with itself", async () => {
    const store = await openStore();
    await store.addMapping(mapping("mp_a", "default", 21));
    await store.addMapping(mapping("mp_b", "default", 2121));
    await assert.rejects(store.replaceMapping(mapping("mp_b", "default", 20, 21)), (err: unknown) => {
      assert.ok(err instanceof MappingConflictError);
      assert.equal(err.conflictsWith, "mp_a");
      return true;
    });
    assert.deepEqual((await store.getMapping("mp_b"))?.virtualPort, { start: 2121, end: 2121 });
    await store.replaceMapping(mapping("mp_a", "default", 20, 21)); // widened over its own port
    await store.replaceMapping(mapping("mp_b", "plant", 21)); // moved away from the clash
    assert.deepEqual(
      (await store.mappingsOf("plant")).map((m) => m.id),
      ["mp_b"],
    );
  });

  it("of two concurrent overlapping writes exactly one wins", async () => {
    const store = await openStore();
    for (let round = 0; round < 10; round++) {
      const port = 5000 + round;
      const results = await Promise.allSettled([
        store.addMapping(mapping(`mp_${round}_a`, "default", port)),
        store.addMapping(mapping(`mp_${round}_b`, "default", port)),
      ]);
      const won = results.filter((r) => r.status === "fulfilled");
      const lost = results.filter((r) => r.status === "rejected");
      assert.equal(won.length, 1, `round ${round}`);
      assert.equal(lost.length, 1, `round ${round}`);
      assert.ok(lost[0]?.status === "rejected" && lost[0].reason instanceof MappingConflictError);
    }
    // A replace racing an add onto the same port: again one of them.
    await store.addMapping(mapping("mp_move", "default", 6000));
    const race = await Promise.allSettled([
      store.replaceMapping(mapping("mp_move", "default", 6001)),
      store.addMapping(mapping("mp_new", "default", 6001)),
    ]);
    assert.deepEqual(race.map((r) => r.status).sort(), ["fulfilled", "rejected"]);
    assert.equal((await store.mappingsOf("default")).filter((m) => m.virtualPort.start === 6001).length, 1);
    const held = await store.listMappings();
    assert.equal(held.length, race[0]?.status === "fulfilled" ? 11 : 12);
    await store.close();
    const again = await openStore();
    assert.deepEqual(await again.listMappings(), held);
  });

  it("serialises concurrent writes: none is lost", async () => {
    const store = await openStore();
    await Promise.all(
      Array.from({ length: 25 }, (_, i) => store.addMapping(mapping(`mp_${i}`, "default", 1000 + i))),
    );
    assert.equal((await store.listMappings()).length, 25);
    await store.close();
    const again = await openStore();
    assert.deepEqual(
      (await again.listMappings()).map((m) => m.id).sort(),
      Array.from({ length: 25 }, (_, i) => `mp_${i}`).sort(),
    );
  });

  it("appends to the journal (0600), compacts atomically and leaves no temporary files", async () => {
    const store = await openStore();
    for (let i = 0; i < 5; i++) await store.addAgent(agent(`ag_${i}`));
    assert.deepEqual((await readdir(dir)).sort(), [JOURNAL_FILE, STORE_FILE].sort());
    assert.equal(store.journalPath, join(dir, JOURNAL_FILE));
    assert.equal((await stat(store.journalPath)).mode & 0o777, 0o600);
    await store.compact();
    assert.deepEqual((await readdir(dir)).sort(), [JOURNAL_FILE, STORE_FILE].sort());
    assert.equal((await stat(store.path)).mode & 0o777, 0o600);
    assert.equal((await stat(store.journalPath)).size, 0);
    assert.equal(JSON.parse(await readFile(store.path, "utf8")).agents.length, 5);
  });

  it("ignores and removes a temporary file left by a crash", async () => {
    const first = await openStore();
    await first.addAgent(agent("ag_1"));
    await first.close();
    const leftover = join(dir, `${STORE_FILE}.deadbeef0001.tmp`);
    await writeFile(leftover, '{"version":1,"adminTok'); // torn write that never got renamed
    const store = await openStore();
    assert.deepEqual(
      (await store.listAgents()).map((a) => a.id),
      ["ag_1"],
    );
    assert.deepEqual((await readdir(dir)).sort(), [JOURNAL_FILE, STORE_FILE].sort());
  });

  it("refuses a file that is not JSON, naming the file", async () => {
    await writeFile(join(dir, STORE_FILE), '{"version": 1, "agents": [');
    const store = new FileStore({ dir, logger: silentLogger() });
    await assert.rejects(store.open(), (err: unknown) => {
      assert.ok(err instanceof StoreError);
      assert.equal(err.code, "UP_ERR_STORE");
      assert.match(err.message, new RegExp(`${STORE_FILE}.*not valid JSON`));
      return true;
    });
    // The corrupt file is left exactly as it was: never silently replaced by an empty store.
    assert.equal(await readFile(join(dir, STORE_FILE), "utf8"), '{"version": 1, "agents": [');
  });

  it("refuses a file that fails the schema, naming the file and the field", async () => {
    const bad = {
      version: 1,
      adminTokenHash: null,
      agents: [{ id: "ag_1", name: "a", location: "default", tokenHash: "not-a-hash", createdAt: T }],
      clients: [],
      mappings: [],
    };
    await writeFile(join(dir, STORE_FILE), JSON.stringify(bad));
    const store = new FileStore({ dir, logger: silentLogger() });
    await assert.rejects(store.open(), (err: unknown) => {
      assert.ok(err instanceof StoreError);
      assert.ok(err.message.includes(join(dir, STORE_FILE)), err.message);
      assert.match(err.message, /agents\.0\.tokenHash/);
      return true;
    });
  });

  it("refuses an unknown version and duplicate ids", async () => {
    await writeFile(
      join(dir, STORE_FILE),
      JSON.stringify({ version: 2, adminTokenHash: null, agents: [], clients: [], mappings: [] }),
    );
    await assert.rejects(
      new FileStore({ dir, logger: silentLogger() }).open(),
      /unsupported store version 2/,
    );
    await writeFile(
      join(dir, STORE_FILE),
      JSON.stringify({
        version: 1,
        adminTokenHash: null,
        agents: [],
        clients: [],
        mappings: [mapping("x"), mapping("x")],
      }),
    );
    await assert.rejects(new FileStore({ dir, logger: silentLogger() }).open(), /duplicate mapping id/);
  });

  it("a failing write rejects with StoreError and leaves memory and file unchanged", async () => {
    const store = await openStore();
    await store.addAgent(agent("ag_1"));
    await store.addMapping(mapping("mp_1"));
    const before = await onDisk(store);

    // Pull the directory away and put a file in its place: the temporary file cannot be created
    // (ENOTDIR). This works as root too, where a read-only mode would not stop the write.
    const moved = `${dir}-moved`;
    await rename(dir, moved);
    await writeFile(dir, "not a directory");
    try {
      await assert.rejects(store.addAgent(agent("ag_2")), StoreError);
      await assert.rejects(store.deleteMapping("mp_1"), StoreError);
      await assert.rejects(store.replaceMapping({ ...mapping("mp_1"), description: "changed" }), StoreError);
      await assert.rejects(store.setAdminTokenHash(hashSecret("x")), StoreError);
    } finally {
      await rm(dir, { force: true });
      await rename(moved, dir);
    }
    assert.deepEqual(
      (await store.listAgents()).map((a) => a.id),
      ["ag_1"],
    );
    assert.equal(await store.getAgent("ag_2"), undefined);
    assert.equal((await store.getMapping("mp_1"))?.description, "");
    assert.equal((await store.mappingsOf("default")).length, 1);
    assert.equal(await store.adminTokenHash(), null);
    assert.equal(await onDisk(store), before);

    // The queue is not wedged by the failures: the next write goes through.
    await store.addAgent(agent("ag_3"));
    assert.deepEqual(
      (await store.listAgents()).map((a) => a.id),
      ["ag_1", "ag_3"],
    );
  });

  it("fails open() with StoreError when the data dir cannot be created", async () => {
    const file = join(dir, "a-file");
    await writeFile(file, "x");
    await assert.rejects(
      new FileStore({ dir: join(file, "sub"), logger: silentLogger() }).open(),
      StoreError,
    );
  });

  it("keeps only hashes: no secret appears in the journal or the snapshot", async () => {
    const store = await openStore();
    const token = generateSecret("upa");
    const password = generateSecret("ups");
    await store.addAgent(agent("ag_1", token));
    await store.addClient(client("cl_1", "u1", password));
    const journal = await readFile(store.journalPath, "utf8");
    await store.compact();
    const text = journal + (await readFile(store.path, "utf8"));
    assert.ok(!text.includes(token));
    assert.ok(!text.includes(password));
    assert.ok(text.includes(hashSecret(token)));
    assert.ok(text.includes(hashSecret(password)));
  });

  it("refuses writes before open and after close; records cannot be mutated", async () => {
    const fresh = new FileStore({ dir, logger: silentLogger() });
    await assert.rejects(fresh.addAgent(agent("ag_1")), StoreError);
    const store = await openStore();
    await store.addAgent(agent("ag_1"));
    const record = (await store.getAgent("ag_1"))!;
    assert.throws(() => {
      (record as { name: string }).name = "changed";
    }, TypeError);
    await store.close();
    await assert.rejects(store.addAgent(agent("ag_2")), /closed/);
  });

  it("close() waits for the writes already queued", async () => {
    const store = await openStore();
    const pending = store.addAgent(agent("ag_1"));
    await store.close();
    await pending;
    const again = await openStore();
    assert.equal((await again.getAgent("ag_1"))?.id, "ag_1");
  });
});
