import assert from "node:assert/strict";
import { readFile, rename, rm, writeFile } from "node:fs/promises";
import { Writable } from "node:stream";
import { afterEach, beforeEach, describe, it } from "node:test";
import type { FastifyInstance, InjectOptions, LightMyRequestResponse } from "fastify";
import { pino } from "pino";
import { hashSecret } from "../../cloud/admin/secrets.js";
import type { FileStore } from "../../cloud/store/file-store.js";
import { NoAgentError } from "../../shared/errors.js";
import {
  type AdminUnderTest,
  CONNECTION,
  type FakeConnections,
  FakeMetrics,
  type FakeReachability,
  type FakeTunnels,
  RELAY_ID,
  startAdmin,
} from "../helpers/admin-app.js";
import { waitFor } from "../helpers/ports.js";

const ADMIN_TOKEN = "upadm_test-admin-token";
const AUTH = { authorization: `Bearer ${ADMIN_TOKEN}` };

/** What the file store holds on disk: its snapshot and its journal. */
async function storedText(store: FileStore): Promise<string> {
  const journal = await readFile(store.journalPath, "utf8").catch(() => "");
  return `${await readFile(store.path, "utf8")}\n${journal}`;
}

describe("admin API", () => {
  let admin: AdminUnderTest;
  let dir: string;
  let store: FileStore;
  let app: FastifyInstance;
  let tunnels: FakeTunnels;
  let connections: FakeConnections;
  let reachability: FakeReachability;
  let logLines: string[];

  beforeEach(async () => {
    logLines = [];
    // A logger without any redaction, at the most verbose level: what it never sees cannot leak.
    const sink = new Writable({
      write(chunk, _enc, done) {
        logLines.push(String(chunk));
        done();
      },
    });
    const logger = pino({ level: "trace" }, sink);
    admin = await startAdmin({ token: ADMIN_TOKEN, logger, version: "9.8.7" });
    ({ dir, store, app, tunnels, connections, reachability } = admin);
  });

  afterEach(async () => {
    await admin.close();
  });

  async function call(
    method: InjectOptions["method"],
    url: string,
    payload?: unknown,
    headers: Record<string, string> = AUTH,
  ): Promise<LightMyRequestResponse> {
    const opts: InjectOptions = { method, url, headers };
    if (payload !== undefined) opts.payload = payload as InjectOptions["payload"];
    return app.inject(opts);
  }

  async function createMapping(body: Record<string, unknown>): Promise<Record<string, unknown>> {
    const res = await call("POST", "/v1/mappings", body);
    assert.equal(res.statusCode, 201, res.body);
    return res.json();
  }

  function assertError(res: LightMyRequestResponse, status: number, code: string): Record<string, unknown> {
    assert.equal(res.statusCode, status, res.body);
    const body = res.json();
    assert.equal(body.error, code);
    assert.equal(typeof body.message, "string");
    assert.ok(body.message.length > 0);
    return body;
  }

  // -- authentication --------------------------------------------------------------------------

  describe("authentication", () => {
    const guarded: Array<[InjectOptions["method"], string]> = [
      ["POST", "/v1/agents"],
      ["GET", "/v1/agents"],
      ["DELETE", "/v1/agents/ag_1"],
      ["POST", "/v1/clients"],
      ["GET", "/v1/clients"],
      ["DELETE", "/v1/clients/cl_1"],
      ["POST", "/v1/mappings"],
      ["GET", "/v1/mappings"],
      ["GET", "/v1/mappings/mp_1"],
      ["PATCH", "/v1/mappings/mp_1"],
      ["DELETE", "/v1/mappings/mp_1"],
      ["POST", "/v1/mappings/mp_1/check"],
      ["GET", "/v1/connections"],
      ["DELETE", "/v1/connections/cn_1"],
      ["GET", "/metrics"],
    ];

    it("answers 401 UP_ERR_AUTH without a token, with a wrong one, or a wrong scheme", async () => {
      for (const [method, url] of guarded) {
        const headerSets: Array<Record<string, string>> = [
          {},
          { authorization: "Bearer wrong" },
          { authorization: `Basic ${ADMIN_TOKEN}` },
          { authorization: ADMIN_TOKEN },
          { authorization: `Bearer ${ADMIN_TOKEN}x` },
        ];
        for (const headers of headerSets) {
          const res = await call(method, url, undefined, headers);
          assertError(res, 401, "UP_ERR_AUTH");
          assert.match(String(res.headers["www-authenticate"]), /^Bearer/);
        }
      }
    });

    it("checks the token before it looks at the body", async () => {
      const res = await app.inject({
        method: "POST",
        url: "/v1/agents",
        headers: { "content-type": "application/json" },
        payload: "{not json",
      });
      assertError(res, 401, "UP_ERR_AUTH");
    });

    it("accepts the scheme in any case", async () => {
      const res = await call("GET", "/v1/agents", undefined, { authorization: `bearer ${ADMIN_TOKEN}` });
      assert.equal(res.statusCode, 200);
    });

    it("/healthz and /docs/json need no token", async () => {
      const health = await call("GET", "/healthz", undefined, {});
      assert.equal(health.statusCode, 200);
      assert.deepEqual(health.json(), { status: "ok", version: "9.8.7" });
      const docs = await call("GET", "/docs/json", undefined, {});
      assert.equal(docs.statusCode, 200);
      assert.equal(docs.json().openapi, "3.1.0");
    });

    it("the Authorization header never reaches a log line", async () => {
      await call("GET", "/v1/agents");
      await call("GET", "/v1/agents", undefined, { authorization: "Bearer wrong-secret-value" });
      await call("POST", "/v1/agents", { name: "x", bad: 1 });
      await call("GET", "/nope");
      const all = logLines.join("");
      assert.ok(logLines.length > 0, "the test logger saw nothing");
      assert.ok(!all.includes(ADMIN_TOKEN));
      assert.ok(!all.includes("wrong-secret-value"));
      assert.ok(!all.toLowerCase().includes("authorization"));
    });
  });

  // -- agents ----------------------------------------------------------------------------------

  describe("agents", () => {
    it("creates an agent, shows the token once and stores only its hash", async () => {
      const res = await call("POST", "/v1/agents", { name: "Plant 1 gateway", location: "plant-1" });
      assert.equal(res.statusCode, 201, res.body);
      const created = res.json();
      assert.deepEqual(Object.keys(created).sort(), ["createdAt", "id", "location", "name", "token"]);
      assert.match(created.id, /^ag_[0-9a-f]{16}$/);
      assert.match(created.token, /^upa_[A-Za-z0-9_-]{32}$/);
      assert.equal(created.name, "Plant 1 gateway");
      assert.equal(created.location, "plant-1");
      assert.ok(!Number.isNaN(Date.parse(created.createdAt)));

      assert.equal((await store.findAgentByTokenHash(hashSecret(created.token)))?.id, created.id);
      const file = await storedText(store);
      assert.ok(!file.includes(created.token));
      assert.ok(file.includes(hashSecret(created.token)));

      const list = await call("GET", "/v1/agents");
      assert.equal(list.statusCode, 200);
      assert.ok(!list.body.includes(created.token));
      assert.ok(!list.body.includes(hashSecret(created.token)));
      assert.ok(!logLines.join("").includes(created.token), "the token was logged");
    });

    it("defaults the location and lists agents with their tunnel status", async () => {
      const a = (await call("POST", "/v1/agents", { name: "a" })).json();
      const b = (await call("POST", "/v1/agents", { name: "b" })).json();
      assert.equal(a.location, "default");
      tunnels.status.set(b.id, {
        connected: true,
        connectedAt: "2026-01-01T00:00:00.000Z",
        remoteAddress: "198.51.100.7",
        version: "0.1.0",
        tunnels: 2,
        links: [],
      });
      const res = await call("GET", "/v1/agents");
      assert.equal(res.statusCode, 200);
      assert.deepEqual(res.json(), [
        {
          id: a.id,
          name: "a",
          location: "default",
          createdAt: a.createdAt,
          singleInstance: false,
          connected: false,
          connectedAt: null,
          remoteAddress: null,
          version: null,
          tunnels: 0,
          lastSeenAt: null,
          lastAddress: null,
          links: [],
        },
        {
          id: b.id,
          name: "b",
          location: "default",
          createdAt: b.createdAt,
          singleInstance: false,
          connected: true,
          connectedAt: "2026-01-01T00:00:00.000Z",
          remoteAddress: "198.51.100.7",
          version: "0.1.0",
          tunnels: 2,
          lastSeenAt: null,
          lastAddress: null,
          links: [0, 1].map((i) => ({
            relayId: RELAY_ID,
            tunnelId: `tn_${b.id}_${i}`,
            remoteAddress: "198.51.100.7",
            hostName: null,
            instanceId: null,
            version: "0.1.0",
            connectedAt: "2026-01-01T00:00:00.000Z",
          })),
        },
      ]);
    });

    it("deletes an agent: the token stops working and its tunnels are closed", async () => {
      const a = (await call("POST", "/v1/agents", { name: "a" })).json();
      const res = await call("DELETE", `/v1/agents/${a.id}`);
      assert.equal(res.statusCode, 204);
      assert.equal(res.body, "");
      assert.equal(await store.findAgentByTokenHash(hashSecret(a.token)), undefined);
      assert.deepEqual(tunnels.disconnected, [{ agentId: a.id, reason: "agent deleted" }]);
      assertError(await call("DELETE", `/v1/agents/${a.id}`), 404, "UP_ERR_NOT_FOUND");
      assert.equal(tunnels.disconnected.length, 1);
    });

    it("validates the body", async () => {
      const missing = assertError(await call("POST", "/v1/agents", {}), 400, "UP_ERR_VALIDATION");
      assert.deepEqual(missing.issues, [{ path: "name", message: "required" }]);
      const badLocation = assertError(
        await call("POST", "/v1/agents", { name: "a", location: "no spaces" }),
        400,
        "UP_ERR_VALIDATION",
      );
      assert.deepEqual(
        (badLocation.issues as Array<{ path: string }>).map((i) => i.path),
        ["location"],
      );
      const unknown = assertError(
        await call("POST", "/v1/agents", { name: "a", token: "mine" }),
        400,
        "UP_ERR_VALIDATION",
      );
      assert.deepEqual(unknown.issues, [{ path: "token", message: "unknown field" }]);
      assert.equal((await store.listAgents()).length, 0);
    });
  });

  // -- clients ---------------------------------------------------------------------------------

  describe("clients", () => {
    it("creates SOCKS5 credentials that fit a proxy URL and stores only the password hash", async () => {
      const res = await call("POST", "/v1/clients", { name: "ERP Integration: Ünïcode@Prod" });
      assert.equal(res.statusCode, 201, res.body);
      const c = res.json();
      assert.deepEqual(Object.keys(c).sort(), [
        "createdAt",
        "id",
        "location",
        "name",
        "password",
        "username",
      ]);
      assert.match(c.id, /^cl_[0-9a-f]{16}$/);
      assert.match(c.username, /^erp-integration-unicode-prod-[0-9a-f]{6}$/);
      assert.ok(Buffer.byteLength(c.username) <= 255);
      assert.match(c.password, /^ups_[A-Za-z0-9_-]+$/);
      // Both go into socks5://user:pass@host unescaped.
      const url = new URL(`socks5://${c.username}:${c.password}@relay.example:1080`);
      assert.equal(url.username, c.username);
      assert.equal(url.password, c.password);

      const stored = await store.findClientByUsername(c.username);
      assert.equal(stored?.passwordHash, hashSecret(c.password));
      const file = await storedText(store);
      assert.ok(!file.includes(c.password));

      const list = await call("GET", "/v1/clients");
      assert.deepEqual(list.json(), [
        {
          id: c.id,
          name: c.name,
          location: "default",
          username: c.username,
          createdAt: c.createdAt,
          lastUsedAt: null,
          lastAddress: null,
        },
      ]);
      assert.ok(!list.body.includes(c.password));
      assert.ok(!list.body.includes(hashSecret(c.password)));
      assert.ok(!logLines.join("").includes(c.password), "the password was logged");
    });

    it("gives two clients of the same name different usernames", async () => {
      const a = (await call("POST", "/v1/clients", { name: "same" })).json();
      const b = (await call("POST", "/v1/clients", { name: "same" })).json();
      assert.notEqual(a.username, b.username);
      const sym = (await call("POST", "/v1/clients", { name: "!!!" })).json();
      assert.match(sym.username, /^client-[0-9a-f]{6}$/);
    });

    it("deletes a client and resets its connections", async () => {
      const c = (await call("POST", "/v1/clients", { name: "c", location: "plant" })).json();
      assert.equal((await call("DELETE", `/v1/clients/${c.id}`)).statusCode, 204);
      assert.equal(await store.findClientByUsername(c.username), undefined);
      assert.deepEqual(connections.killedByClient, [c.id]);
      assertError(await call("DELETE", `/v1/clients/${c.id}`), 404, "UP_ERR_NOT_FOUND");
      assert.deepEqual(connections.killedByClient, [c.id]);
    });
  });

  // -- mappings --------------------------------------------------------------------------------

  describe("mappings", () => {
    const FTP = { virtualHost: "ftp.example", virtualPort: 21, internalHost: "10.0.0.5", internalPort: 21 };
    const PASV = {
      virtualHost: "ftp.example",
      virtualPort: "30000-30010",
      internalHost: "10.0.0.5",
      internalPort: "30000-30010",
    };

    it("creates, shows and lists mappings with ports as a number or a range", async () => {
      const res = await call("POST", "/v1/mappings", {
        ...FTP,
        virtualHost: "FTP.Example",
        protocol: "ftp",
        description: "control",
      });
      assert.equal(res.statusCode, 201, res.body);
      const m = res.json();
      assert.match(m.id, /^mp_[0-9a-f]{16}$/);
      assert.equal(res.headers["location"], `/v1/mappings/${m.id}`);
      assert.deepEqual(m, {
        id: m.id,
        virtualHost: "ftp.example",
        virtualPort: 21,
        internalHost: "10.0.0.5",
        internalPort: 21,
        location: "default",
        protocol: "ftp",
        description: "control",
        createdAt: m.createdAt,
        updatedAt: m.createdAt,
      });
      const p = await createMapping({ ...PASV, internalHost: "[FD00::0005]" });
      assert.equal(p.virtualPort, "30000-30010");
      assert.equal(p.internalHost, "fd00::5");
      assert.equal(p.protocol, "tcp");
      assert.deepEqual((await store.getMapping(p.id as string))?.virtualPort, { start: 30000, end: 30010 });

      const one = await call("GET", `/v1/mappings/${m.id}`);
      assert.equal(one.statusCode, 200);
      assert.deepEqual(one.json(), m);
      const all = await call("GET", "/v1/mappings");
      assert.deepEqual(
        all.json().map((x: { id: string }) => x.id),
        [m.id, p.id],
      );
    });

    it("answers 400 with issues for bad ports, range mismatches and unknown fields", async () => {
      const badPort = assertError(
        await call("POST", "/v1/mappings", { ...FTP, virtualPort: 70000 }),
        400,
        "UP_ERR_VALIDATION",
      );
      assert.deepEqual(badPort.issues, [{ path: "virtualPort", message: "port 70000 is not in 1-65535" }]);

      const mismatch = assertError(
        await call("POST", "/v1/mappings", { ...PASV, internalPort: "30000-30005" }),
        400,
        "UP_ERR_VALIDATION",
      );
      assert.deepEqual(
        (mismatch.issues as Array<{ path: string }>).map((i) => i.path),
        ["internalPort"],
      );

      const unknown = assertError(
        await call("POST", "/v1/mappings", { ...FTP, agentId: "ag_1" }),
        400,
        "UP_ERR_VALIDATION",
      );
      assert.deepEqual(unknown.issues, [{ path: "agentId", message: "unknown field" }]);

      const badHost = assertError(
        await call("POST", "/v1/mappings", { ...FTP, internalHost: "10.0.0.300" }),
        400,
        "UP_ERR_VALIDATION",
      );
      assert.deepEqual(
        (badHost.issues as Array<{ path: string }>).map((i) => i.path),
        ["internalHost"],
      );
      assert.equal((await store.listMappings()).length, 0);
    });

    it("answers 400 for malformed JSON, a wrong content type and a missing body", async () => {
      const malformed = await app.inject({
        method: "POST",
        url: "/v1/mappings",
        headers: { ...AUTH, "content-type": "application/json" },
        payload: '{"virtualHost": "ftp.example",',
      });
      const m = assertError(malformed, 400, "UP_ERR_VALIDATION");
      assert.match(m.message as string, /not valid JSON/);
      assert.ok(Array.isArray(m.issues) && m.issues.length === 1);

      const text = await app.inject({
        method: "POST",
        url: "/v1/mappings",
        headers: { ...AUTH, "content-type": "text/plain" },
        payload: "virtualHost=ftp.example",
      });
      assert.match(
        assertError(text, 400, "UP_ERR_VALIDATION").message as string,
        /Content-Type: application\/json/,
      );

      const form = await app.inject({
        method: "POST",
        url: "/v1/agents",
        headers: { ...AUTH, "content-type": "application/x-www-form-urlencoded" },
        payload: "name=a",
      });
      assertError(form, 400, "UP_ERR_VALIDATION");

      const none = assertError(await call("POST", "/v1/mappings"), 400, "UP_ERR_VALIDATION");
      assert.deepEqual(none.issues, [{ path: "", message: "expected a JSON object" }]);
    });

    it("answers 409 for an overlap in the same location, naming the other mapping", async () => {
      const pasv = await createMapping(PASV);
      // A single port inside the range, with the host in another case.
      const single = assertError(
        await call("POST", "/v1/mappings", {
          ...FTP,
          virtualHost: "FTP.EXAMPLE.",
          virtualPort: 30005,
          internalPort: 1,
        }),
        409,
        "UP_ERR_CONFLICT",
      );
      assert.equal(single.conflictsWith, pasv.id);
      // A range that overlaps only at its end.
      const edge = assertError(
        await call("POST", "/v1/mappings", {
          ...PASV,
          virtualPort: "29990-30000",
          internalPort: "29990-30000",
        }),
        409,
        "UP_ERR_CONFLICT",
      );
      assert.equal(edge.conflictsWith, pasv.id);
      assert.equal((await store.listMappings()).length, 1);

      // Adjacent ranges, another host, or another location do not overlap.
      await createMapping({ ...PASV, virtualPort: "30011-30020", internalPort: "30011-30020" });
      await createMapping({ ...PASV, virtualHost: "ftp2.example" });
      await createMapping({ ...PASV, location: "plant-2" });
      assert.equal((await store.listMappings()).length, 4);
    });

    it("serialises concurrent creates so that overlapping ones cannot both pass", async () => {
      const results = await Promise.all(
        Array.from({ length: 5 }, () => call("POST", "/v1/mappings", { ...FTP })),
      );
      assert.deepEqual(results.map((r) => r.statusCode).sort(), [201, 409, 409, 409, 409]);
      assert.equal((await store.listMappings()).length, 1);
    });

    it("PATCH merges, re-validates the whole and resets the mapping's connections", async () => {
      const m = await createMapping(PASV);
      // The change must get a later updatedAt: wait until the clock (ms in ISO 8601) has moved on.
      await waitFor(() => new Date().toISOString() > (m.updatedAt as string), {
        timeoutMs: 1000,
        intervalMs: 1,
        what: "the clock to pass the mapping's updatedAt",
      });
      const res = await call("PATCH", `/v1/mappings/${m.id}`, {
        virtualPort: "31000-31010",
        internalHost: "FILES.corp",
      });
      assert.equal(res.statusCode, 200, res.body);
      const after = res.json();
      assert.equal(after.virtualPort, "31000-31010");
      assert.equal(after.internalPort, "30000-30010");
      assert.equal(after.internalHost, "files.corp");
      assert.equal(after.createdAt, m.createdAt);
      assert.ok(after.updatedAt > (m.updatedAt as string));
      assert.deepEqual((await store.getMapping(m.id as string))?.virtualPort, { start: 31000, end: 31010 });
      assert.deepEqual(connections.killedByMapping, [m.id]);

      // Changing one side of a range only: the merged mapping is invalid.
      const mismatch = assertError(
        await call("PATCH", `/v1/mappings/${m.id}`, { internalPort: 21 }),
        400,
        "UP_ERR_VALIDATION",
      );
      assert.deepEqual(
        (mismatch.issues as Array<{ path: string }>).map((i) => i.path),
        ["internalPort"],
      );
      const unknown = assertError(
        await call("PATCH", `/v1/mappings/${m.id}`, { id: "mp_other" }),
        400,
        "UP_ERR_VALIDATION",
      );
      assert.deepEqual(unknown.issues, [{ path: "id", message: "unknown field" }]);
      assert.deepEqual((await store.getMapping(m.id as string))?.internalPort, { start: 30000, end: 30010 });
      assert.deepEqual(connections.killedByMapping, [m.id]);
    });

    it("PATCH of the description only keeps live connections; an empty PATCH changes nothing", async () => {
      const m = await createMapping(FTP);
      const desc = await call("PATCH", `/v1/mappings/${m.id}`, { description: "main FTP" });
      assert.equal(desc.statusCode, 200);
      assert.equal(desc.json().description, "main FTP");
      const empty = await call("PATCH", `/v1/mappings/${m.id}`, {});
      assert.equal(empty.statusCode, 200);
      assert.deepEqual(empty.json(), desc.json());
      assert.deepEqual(connections.killedByMapping, []);
    });

    it("PATCH answers 409 on an overlap but not with itself", async () => {
      const a = await createMapping(FTP);
      const b = await createMapping({ ...FTP, virtualPort: 2121, internalPort: 2121 });
      // Moving onto a's port conflicts with a.
      const clash = assertError(
        await call("PATCH", `/v1/mappings/${b.id}`, { virtualPort: 21 }),
        409,
        "UP_ERR_CONFLICT",
      );
      assert.equal(clash.conflictsWith, a.id);
      // Widening a over its own port is fine.
      const self = await call("PATCH", `/v1/mappings/${a.id}`, {
        virtualPort: "20-21",
        internalPort: "20-21",
      });
      assert.equal(self.statusCode, 200, self.body);
      // Moving b to another location removes the clash.
      const moved = await call("PATCH", `/v1/mappings/${b.id}`, { virtualPort: 21, location: "plant" });
      assert.equal(moved.statusCode, 200, moved.body);
      assert.equal((await store.mappingsOf("plant"))[0]?.id, b.id);
    });

    it("deletes a mapping and resets its connections", async () => {
      const m = await createMapping(FTP);
      assert.equal((await call("DELETE", `/v1/mappings/${m.id}`)).statusCode, 204);
      assert.equal(await store.getMapping(m.id as string), undefined);
      assert.deepEqual(connections.killedByMapping, [m.id]);
    });

    it("answers 404 for unknown mapping ids", async () => {
      assertError(await call("GET", "/v1/mappings/mp_nope"), 404, "UP_ERR_NOT_FOUND");
      assertError(await call("PATCH", "/v1/mappings/mp_nope", { description: "x" }), 404, "UP_ERR_NOT_FOUND");
      assertError(await call("DELETE", "/v1/mappings/mp_nope"), 404, "UP_ERR_NOT_FOUND");
      assertError(await call("POST", "/v1/mappings/mp_nope/check"), 404, "UP_ERR_NOT_FOUND");
      assert.deepEqual(connections.killedByMapping, []);
      assert.deepEqual(reachability.checked, []);
    });

    it("check asks the reachability checker about the stored mapping", async () => {
      const m = await createMapping(PASV);
      const ok = await call("POST", `/v1/mappings/${m.id}/check`);
      assert.equal(ok.statusCode, 200);
      assert.deepEqual(ok.json(), { reachable: true, latencyMs: 7 });
      assert.equal(reachability.checked[0]?.id, m.id);
      assert.deepEqual(reachability.checked[0]?.internalPort, { start: 30000, end: 30010 });

      reachability.answer = { reachable: false, error: "connection refused" };
      const refused = await app.inject({
        method: "POST",
        url: `/v1/mappings/${m.id}/check`,
        headers: { ...AUTH, "content-type": "application/json" },
        payload: "",
      });
      assert.equal(refused.statusCode, 200, refused.body);
      assert.deepEqual(refused.json(), { reachable: false, error: "connection refused" });

      reachability.answer = new NoAgentError('no agent connected for location "default"');
      const noAgent = await call("POST", `/v1/mappings/${m.id}/check`);
      assert.equal(noAgent.statusCode, 200);
      assert.deepEqual(noAgent.json(), {
        reachable: false,
        error: 'no agent connected for location "default"',
      });

      reachability.answer = new Error("secret internal detail at /srv/x.js:12");
      const crash = assertError(await call("POST", `/v1/mappings/${m.id}/check`), 500, "UP_ERR_INTERNAL");
      assert.ok(!(crash.message as string).includes("secret internal detail"));
    });

    it("a store write failure answers 500 UP_ERR_STORE and changes nothing", async () => {
      const m = await createMapping(FTP);
      const before = await storedText(store);
      const moved = `${dir}-moved`;
      await rename(dir, moved);
      await writeFile(dir, "not a directory");
      try {
        const res = await call("POST", "/v1/mappings", { ...FTP, virtualPort: 22, internalPort: 22 });
        const body = assertError(res, 500, "UP_ERR_STORE");
        assert.ok(!(body.message as string).includes(dir), "the answer leaks the data path");
        assertError(
          await call("PATCH", `/v1/mappings/${m.id}`, { virtualPort: 2121, internalPort: 2121 }),
          500,
          "UP_ERR_STORE",
        );
        assertError(await call("DELETE", `/v1/mappings/${m.id}`), 500, "UP_ERR_STORE");
        assertError(await call("POST", "/v1/agents", { name: "a" }), 500, "UP_ERR_STORE");
      } finally {
        await rm(dir, { force: true });
        await rename(moved, dir);
      }
      assert.deepEqual(
        (await store.listMappings()).map((x) => [x.id, x.virtualPort.start]),
        [[m.id, 21]],
      );
      assert.equal((await store.listAgents()).length, 0);
      assert.deepEqual(connections.killedByMapping, []);
      assert.equal(await storedText(store), before);
      // The API keeps working once the disk is back.
      assert.equal((await call("DELETE", `/v1/mappings/${m.id}`)).statusCode, 204);
    });
  });

  // -- connections, metrics, 404 ---------------------------------------------------------------

  describe("connections and the rest", () => {
    it("lists and kills live connections", async () => {
      connections.live.push(CONNECTION);
      const list = await call("GET", "/v1/connections");
      assert.equal(list.statusCode, 200);
      assert.deepEqual(list.json(), [{ ...CONNECTION, relayId: RELAY_ID }]);
      assert.equal(list.headers["underpass-missing-relays"], undefined, "every relay answered");
      assert.equal((await call("DELETE", "/v1/connections/cn_1")).statusCode, 204);
      assert.deepEqual(connections.killed, ["cn_1"]);
      assertError(await call("DELETE", "/v1/connections/cn_1"), 404, "UP_ERR_NOT_FOUND");
    });

    it("lists the relays of the cluster: over the file store, itself", async () => {
      const res = await call("GET", "/v1/relays");
      assert.equal(res.statusCode, 200);
      const [self, ...others] = res.json();
      assert.deepEqual(others, []);
      assert.equal(self.id, RELAY_ID);
      assert.equal(self.self, true);
      assert.equal(self.live, true);
      assert.equal(self.tunnelUrl, "ws://127.0.0.1:8443/tunnel");
    });

    it("keeps the relays' own routes to the cluster secret: the admin token does not open them", async () => {
      for (const [method, url] of [
        ["GET", "/v1/cluster/state"],
        ["DELETE", "/v1/cluster/connections/cn_1"],
      ] as const) {
        assertError(await call(method, url), 401, "UP_ERR_AUTH");
        assertError(await call(method, url, undefined, {}), 401, "UP_ERR_AUTH");
      }
    });

    it("serves Prometheus metrics as text", async () => {
      const res = await call("GET", "/metrics");
      assert.equal(res.statusCode, 200);
      assert.match(String(res.headers["content-type"]), /^text\/plain; version=0\.0\.4/);
      assert.equal(res.body, new FakeMetrics().render());
    });

    it("answers unknown routes with 404 UP_ERR_NOT_FOUND", async () => {
      assertError(await call("GET", "/v1/nothing"), 404, "UP_ERR_NOT_FOUND");
      assertError(await call("PUT", "/v1/agents"), 404, "UP_ERR_NOT_FOUND");
    });
  });

  // -- OpenAPI ---------------------------------------------------------------------------------

  describe("OpenAPI document", () => {
    const ROUTES: Array<[string, string, number]> = [
      ["post", "/v1/agents", 201],
      ["get", "/v1/agents", 200],
      ["patch", "/v1/agents/{id}", 200],
      ["delete", "/v1/agents/{id}", 204],
      ["post", "/v1/clients", 201],
      ["get", "/v1/clients", 200],
      ["delete", "/v1/clients/{id}", 204],
      ["post", "/v1/mappings", 201],
      ["get", "/v1/mappings", 200],
      ["get", "/v1/mappings/{id}", 200],
      ["patch", "/v1/mappings/{id}", 200],
      ["delete", "/v1/mappings/{id}", 204],
      ["post", "/v1/mappings/{id}/check", 200],
      ["get", "/v1/connections", 200],
      ["get", "/v1/relays", 200],
      ["delete", "/v1/connections/{id}", 204],
      ["get", "/healthz", 200],
      ["get", "/metrics", 200],
      ["get", "/docs/json", 200],
      ["post", "/v1/agents/{id}/rotate", 200],
      ["post", "/v1/clients/{id}/rotate", 200],
      ["post", "/v1/mappings/{id}/ftp-check", 200],
      ["get", "/v1/audit", 200],
      ["get", "/v1/events", 200],
      ["get", "/v1/export", 200],
      ["post", "/v1/import", 200],
    ];

    it("lists every route with its success code, and nothing else", async () => {
      const doc = (await call("GET", "/docs/json", undefined, {})).json();
      assert.equal(doc.openapi, "3.1.0");
      assert.equal(doc.info.version, "9.8.7");
      const listed: string[] = [];
      for (const [path, item] of Object.entries(doc.paths as Record<string, Record<string, unknown>>)) {
        for (const method of Object.keys(item)) listed.push(`${method} ${path}`);
      }
      assert.deepEqual(listed.sort(), ROUTES.map(([m, p]) => `${m} ${p}`).sort());
      for (const [method, path, ok] of ROUTES) {
        const op = doc.paths[path][method];
        assert.ok(op.responses[String(ok)], `${method} ${path} documents ${ok}`);
        const isPublic = path === "/healthz" || path === "/docs/json";
        assert.equal(op.responses["401"] === undefined, isPublic, `${method} ${path} 401`);
        if (path.includes("{id}")) {
          assert.deepEqual(
            op.parameters.map((p: { name: string }) => p.name),
            ["id"],
          );
          if (path.startsWith("/v1/")) assert.ok(op.responses["404"], `${method} ${path} documents 404`);
        }
      }
    });

    it("describes the request bodies from the zod schemas", async () => {
      const doc = (await call("GET", "/docs/json", undefined, {})).json();
      const schemaOf = (method: string, path: string) => {
        const ref: string = doc.paths[path][method].requestBody.content["application/json"].schema.$ref;
        return doc.components.schemas[ref.replace("#/components/schemas/", "")];
      };
      const create = schemaOf("post", "/v1/mappings");
      assert.deepEqual([...create.required].sort(), [
        "internalHost",
        "internalPort",
        "virtualHost",
        "virtualPort",
      ]);
      assert.equal(create.additionalProperties, false);
      assert.deepEqual(create.properties.protocol.enum, ["tcp", "ftp"]);
      assert.equal(create.properties.location.default, "default");
      assert.ok(create.properties.virtualPort.oneOf.some((s: { type: string }) => s.type === "integer"));
      const patch = schemaOf("patch", "/v1/mappings/{id}");
      assert.equal(patch.required, undefined);
      assert.equal(patch.additionalProperties, false);
      assert.deepEqual(schemaOf("post", "/v1/agents").required, ["name"]);
      assert.deepEqual(schemaOf("post", "/v1/clients").required, ["name"]);
      assert.equal(
        doc.paths["/v1/mappings"].post.responses["409"].content["application/json"].schema.$ref,
        "#/components/schemas/Error",
      );
      assert.equal(doc.paths["/v1/mappings/{id}/check"].post.requestBody, undefined);
    });
  });
});
