/**
 * Every route of the admin API, driven through `inject()` to each status its schema documents,
 * and every real answer held against that route's response schema for the status: the value
 * the handler returned (before serialization) and the bytes that went out must both be exactly
 * what the schema describes, no field more and none missing.
 */
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import type { FastifyRequest, FastifySchema, InjectOptions } from "fastify";
import { z } from "zod";
import type { AgentStatus, CheckResult, ConnectionInfo } from "../../cloud/admin/deps.js";
import type { AgentAnswer, CheckAnswer, ConnectionAnswer } from "../../cloud/admin/schemas.js";
import type { Store } from "../../cloud/store/store.js";
import { StoreError } from "../../shared/errors.js";
import { silentLogger } from "../../shared/logger.js";
import { type AdminUnderTest, CONNECTION, startAdmin } from "../helpers/admin-app.js";

// What the running relay hands over is answered as it is: the shapes must stay the same.
type Same<A, B> = [A] extends [B] ? ([B] extends [A] ? true : false) : false;
const sameConnection: Same<ConnectionInfo, Omit<ConnectionAnswer, "relayId">> = true;
const sameCheck: Same<CheckResult, CheckAnswer> = true;
const sameStatus: Same<
  AgentStatus,
  Omit<
    AgentAnswer,
    "id" | "name" | "location" | "createdAt" | "lastSeenAt" | "lastAddress" | "singleInstance"
  >
> = true;
void [sameConnection, sameCheck, sameStatus];

const ADMIN_TOKEN = "upadm_answers-test-token";
const AUTH = { authorization: `Bearer ${ADMIN_TOKEN}` };
/** Above the 401s the test sends from inject()'s own address; reached on purpose from another. */
const AUTH_LIMIT = { failures: 100, windowMs: 60_000, delayMs: 1 };

/** One request as the app saw it: its route, the status, and what the handler gave to send. */
interface Exchange {
  readonly route: string;
  readonly status: number;
  readonly schema: FastifySchema | undefined;
  readonly sent: unknown;
  readonly body: string;
  readonly contentType: string;
}

/** `/v1/mappings/:id` → `/v1/mappings/{id}`, as the document spells paths. */
function documentPath(url: string): string {
  return url.replace(/:([A-Za-z0-9_]+)/g, "{$1}");
}

/** The zod schema a route declares for a status and the media type it is declared under. */
function responseSchema(schema: FastifySchema | undefined, status: number) {
  const declared: unknown = (schema?.response as Record<number, unknown> | undefined)?.[status];
  if (declared instanceof z.ZodType) return { mediaType: undefined, zod: declared };
  if (typeof declared === "object" && declared !== null && "content" in declared) {
    const [entry] = Object.entries(declared.content as Record<string, { schema: unknown }>);
    if (entry !== undefined && entry[1].schema instanceof z.ZodType) {
      return { mediaType: entry[0].split(";")[0], zod: entry[1].schema };
    }
  }
  return undefined;
}

/** A store whose named methods fail as a broken disk or database would. */
function failingWhen(store: Store, failing: ReadonlySet<PropertyKey>): Store {
  return new Proxy(store, {
    get(target, prop) {
      if (failing.has(prop)) return () => Promise.reject(new StoreError("the disk is gone"));
      const value: unknown = Reflect.get(target, prop, target);
      return typeof value === "function" ? value.bind(target) : value;
    },
  });
}

describe("admin API answers against their route schemas", () => {
  let admin: AdminUnderTest;
  const failing = new Set<PropertyKey>();
  const exchanges: Exchange[] = [];

  before(async () => {
    admin = await startAdmin({
      token: ADMIN_TOKEN,
      logger: silentLogger(),
      version: "1.2.3",
      authLimit: AUTH_LIMIT,
      wrapStore: (store) => failingWhen(store, failing),
      beforeReady: (app) => {
        const sent = new WeakMap<FastifyRequest, unknown>();
        app.addHook("preSerialization", async (req, _reply, payload) => {
          sent.set(req, payload);
          return payload;
        });
        app.addHook("onSend", async (req, reply, payload) => {
          exchanges.push({
            route: `${req.method.toLowerCase()} ${documentPath(req.routeOptions.url ?? "(none)")}`,
            status: reply.statusCode,
            schema: req.routeOptions.schema,
            sent: sent.get(req),
            body: typeof payload === "string" ? payload : "",
            contentType: String(reply.getHeader("content-type") ?? ""),
          });
          return payload;
        });
      },
    });
  });

  after(async () => {
    await admin.close();
  });

  /** Send one request, expect `status`, and hold the answer against the route's schema. */
  async function expect(
    status: number,
    method: InjectOptions["method"],
    url: string,
    payload?: unknown,
    headers: Record<string, string> = AUTH,
  ): Promise<unknown> {
    const count = exchanges.length;
    const opts: InjectOptions = { method, url, headers };
    if (payload !== undefined) opts.payload = payload as InjectOptions["payload"];
    const res = await admin.app.inject(opts);
    assert.equal(res.statusCode, status, `${method} ${url}: ${res.body}`);
    assert.equal(exchanges.length, count + 1, `${method} ${url} was seen once`);
    const ex = exchanges[count]!;
    assert.equal(ex.body, res.body);
    if (ex.route === "get /docs/json") return res.json(); // the document, from its own plugin
    const declared = responseSchema(ex.schema, status);
    assert.ok(declared, `${ex.route} documents ${status}`);
    if (status === 204) {
      assert.equal(res.body, "");
      assert.equal(declared.zod.safeParse(undefined).success, true, `${ex.route} 204 is empty`);
      return undefined;
    }
    if (declared.mediaType !== undefined) {
      assert.equal(ex.contentType.split(";")[0], declared.mediaType, `${ex.route} ${status} content type`);
    }
    const wire: unknown = declared.mediaType?.startsWith("text/") ? res.body : res.json();
    // What went out parses, strictly, as the schema says…
    const parsed = declared.zod.safeParse(wire);
    assert.ok(parsed.success, `${ex.route} ${status}: ${parsed.error?.message} in ${res.body}`);
    // …and is exactly what the handler gave: a field the schema lacks fails encoding, as does
    // one it requires and the handler left out.
    if (ex.sent !== undefined) {
      const encoded = declared.zod.safeEncode(ex.sent);
      assert.ok(encoded.success, `${ex.route} ${status} as sent: ${encoded.error?.message}`);
      assert.deepEqual(JSON.parse(JSON.stringify(encoded.data)), wire);
      assert.deepEqual(JSON.parse(JSON.stringify(ex.sent)), wire);
    }
    return wire;
  }

  it("drives every documented route to every documented status", async () => {
    const { tunnels, connections, reachability, metrics } = admin;
    const FTP = { virtualHost: "ftp.example", virtualPort: 21, internalHost: "10.0.0.5", internalPort: 21 };
    const NO_TOKEN = {};

    // /healthz, /metrics, the document
    await expect(200, "GET", "/healthz", undefined, NO_TOKEN);
    await expect(200, "GET", "/metrics");
    await expect(401, "GET", "/metrics", undefined, NO_TOKEN);
    const doc = (await expect(200, "GET", "/docs/json", undefined, NO_TOKEN)) as {
      paths: Record<string, Record<string, { responses: Record<string, unknown> }>>;
    };

    // agents
    const agent = (await expect(201, "POST", "/v1/agents", { name: "plant gateway" })) as { id: string };
    tunnels.status.set(agent.id, {
      connected: true,
      connectedAt: "2026-01-01T00:00:00.000Z",
      remoteAddress: "198.51.100.7:50000",
      version: "0.1.0",
      tunnels: 2,
      links: [
        {
          relayId: "rl_000000000001",
          tunnelId: "tn_000000000001",
          remoteAddress: "198.51.100.7:50000",
          hostName: "ftp-gw-01",
          instanceId: "3f9c0a7e5b21d864",
          version: "0.1.0",
          connectedAt: "2026-01-01T00:00:00.000Z",
        },
        {
          relayId: "rl_000000000001",
          tunnelId: "tn_000000000002",
          remoteAddress: "198.51.100.7:50001",
          hostName: null,
          instanceId: null,
          version: "0.1.0",
          connectedAt: "2026-01-01T00:00:01.000Z",
        },
      ],
    });
    await expect(200, "GET", "/v1/agents");
    await expect(400, "POST", "/v1/agents", { name: "" });
    await expect(401, "POST", "/v1/agents", { name: "a" }, NO_TOKEN);
    await expect(401, "GET", "/v1/agents", undefined, NO_TOKEN);
    const patched = (await expect(200, "PATCH", `/v1/agents/${agent.id}`, { singleInstance: true })) as {
      singleInstance: boolean;
    };
    assert.equal(patched.singleInstance, true);
    await expect(400, "PATCH", `/v1/agents/${agent.id}`, { singleInstance: "yes" });
    await expect(404, "PATCH", "/v1/agents/ag_nope", { singleInstance: true });
    await expect(401, "PATCH", `/v1/agents/${agent.id}`, { singleInstance: true }, NO_TOKEN);
    await expect(204, "DELETE", `/v1/agents/${agent.id}`);
    await expect(404, "DELETE", `/v1/agents/${agent.id}`);
    await expect(401, "DELETE", "/v1/agents/ag_1", undefined, NO_TOKEN);

    // clients
    const client = (await expect(201, "POST", "/v1/clients", { name: "ERP" })) as { id: string };
    await expect(200, "GET", "/v1/clients");
    await expect(400, "POST", "/v1/clients", { name: "c", password: "mine" });
    await expect(401, "POST", "/v1/clients", { name: "c" }, NO_TOKEN);
    await expect(401, "GET", "/v1/clients", undefined, NO_TOKEN);
    await expect(204, "DELETE", `/v1/clients/${client.id}`);
    await expect(404, "DELETE", `/v1/clients/${client.id}`);
    await expect(401, "DELETE", "/v1/clients/cl_1", undefined, NO_TOKEN);

    // mappings
    const m = (await expect(201, "POST", "/v1/mappings", { ...FTP, protocol: "ftp" })) as { id: string };
    const pasv = (await expect(201, "POST", "/v1/mappings", {
      ...FTP,
      virtualPort: "30000-30010",
      internalPort: "30000-30010",
    })) as { id: string };
    await expect(400, "POST", "/v1/mappings", { ...FTP, virtualPort: 0 });
    await expect(409, "POST", "/v1/mappings", { ...FTP, virtualPort: 30005, internalPort: 1 });
    await expect(401, "POST", "/v1/mappings", FTP, NO_TOKEN);
    await expect(200, "GET", "/v1/mappings");
    await expect(401, "GET", "/v1/mappings", undefined, NO_TOKEN);
    await expect(200, "GET", `/v1/mappings/${m.id}`);
    await expect(404, "GET", "/v1/mappings/mp_nope");
    await expect(401, "GET", `/v1/mappings/${m.id}`, undefined, NO_TOKEN);
    await expect(200, "PATCH", `/v1/mappings/${m.id}`, { description: "control" });
    await expect(400, "PATCH", `/v1/mappings/${m.id}`, { internalPort: "21-22" });
    await expect(404, "PATCH", "/v1/mappings/mp_nope", { description: "x" });
    await expect(409, "PATCH", `/v1/mappings/${m.id}`, { virtualPort: 30000, internalPort: 30000 });
    await expect(401, "PATCH", `/v1/mappings/${m.id}`, {}, NO_TOKEN);
    await expect(200, "POST", `/v1/mappings/${m.id}/check`);
    reachability.answer = { reachable: false, error: "connection refused" };
    await expect(200, "POST", `/v1/mappings/${m.id}/check`);
    await expect(404, "POST", "/v1/mappings/mp_nope/check");
    await expect(401, "POST", `/v1/mappings/${m.id}/check`, undefined, NO_TOKEN);
    reachability.answer = new Error("the checker crashed");
    await expect(500, "POST", `/v1/mappings/${m.id}/check`);
    await expect(204, "DELETE", `/v1/mappings/${pasv.id}`);
    await expect(404, "DELETE", `/v1/mappings/${pasv.id}`);
    await expect(401, "DELETE", `/v1/mappings/${m.id}`, undefined, NO_TOKEN);

    // connections
    connections.live.push(CONNECTION);
    await expect(200, "GET", "/v1/connections");
    await expect(200, "GET", "/v1/relays");
    await expect(401, "GET", "/v1/relays", undefined, NO_TOKEN);
    await expect(401, "GET", "/v1/connections", undefined, NO_TOKEN);
    await expect(204, "DELETE", `/v1/connections/${CONNECTION.id}`);
    await expect(404, "DELETE", `/v1/connections/${CONNECTION.id}`);
    await expect(401, "DELETE", "/v1/connections/cn_1", undefined, NO_TOKEN);

    // rotation: a new secret shown once, the old one stops
    const rotating = (await expect(201, "POST", "/v1/agents", { name: "rotating" })) as { id: string };
    await expect(200, "POST", `/v1/agents/${rotating.id}/rotate`);
    await expect(404, "POST", "/v1/agents/ag_nope/rotate");
    await expect(401, "POST", `/v1/agents/${rotating.id}/rotate`, undefined, NO_TOKEN);
    const rotatingClient = (await expect(201, "POST", "/v1/clients", { name: "rotating" })) as { id: string };
    await expect(200, "POST", `/v1/clients/${rotatingClient.id}/rotate`);
    await expect(404, "POST", "/v1/clients/cl_nope/rotate");
    await expect(401, "POST", `/v1/clients/${rotatingClient.id}/rotate`, undefined, NO_TOKEN);

    // the FTP check
    await expect(200, "POST", `/v1/mappings/${m.id}/ftp-check`, { username: "ftpuser", password: "secret" });
    await expect(200, "POST", `/v1/mappings/${m.id}/ftp-check`);
    await expect(400, "POST", `/v1/mappings/${m.id}/ftp-check`, { username: "" });
    await expect(404, "POST", "/v1/mappings/mp_nope/ftp-check", {});
    await expect(401, "POST", `/v1/mappings/${m.id}/ftp-check`, {}, NO_TOKEN);
    admin.ftpCheck.answer = new Error("the checker crashed");
    await expect(500, "POST", `/v1/mappings/${m.id}/ftp-check`, {});
    admin.ftpCheck.answer = null;

    // the audit trail (the changes above are in it)
    const page = (await expect(200, "GET", "/v1/audit?limit=2")) as {
      events: unknown[];
      nextCursor: string | null;
    };
    assert.equal(page.events.length, 2);
    assert.ok(page.nextCursor);
    await expect(
      200,
      "GET",
      `/v1/audit?cursor=${page.nextCursor}&since=2020-01-01T00:00:00Z&event=admin.agent.created`,
    );
    await expect(400, "GET", "/v1/audit?limit=0");
    await expect(400, "GET", "/v1/audit?since=yesterday");
    await expect(401, "GET", "/v1/audit", undefined, NO_TOKEN);
    const realQuery = admin.audit.query;
    admin.audit.query = () => Promise.reject(new Error("the disk is gone"));
    try {
      await expect(500, "GET", "/v1/audit");
    } finally {
      admin.audit.query = realQuery;
    }

    // live events: 200 is an endless stream (tested over a real socket below)
    await expect(400, "GET", `/v1/events?types=${"x".repeat(600)}`);
    await expect(401, "GET", "/v1/events", undefined, NO_TOKEN);

    // backup and restore
    const exported = (await expect(200, "GET", "/v1/export")) as Record<string, unknown> & {
      mappings: unknown[];
    };
    await expect(200, "POST", "/v1/import?dryRun=true", exported);
    await expect(200, "POST", "/v1/import", exported);
    await expect(400, "POST", "/v1/import", { ...exported, version: 2 });
    await expect(400, "POST", "/v1/import", { ...exported, format: "something-else" });
    const first = exported.mappings[0] as Record<string, unknown>;
    await expect(409, "POST", "/v1/import", { ...exported, mappings: [first, { ...first, id: "mp_twin" }] });
    await expect(401, "GET", "/v1/export", undefined, NO_TOKEN);
    await expect(401, "POST", "/v1/import", exported, NO_TOKEN);

    // 500: the store, the connection table or the metrics fail underneath
    for (const method of [
      "addAgent",
      "listAgents",
      "deleteAgent",
      "addClient",
      "listClients",
      "deleteClient",
    ]) {
      failing.add(method);
    }
    for (const method of ["addMapping", "listMappings", "getMapping", "deleteMapping"]) failing.add(method);
    for (const method of ["getAgent", "listClients", "exportConfig", "importConfig"]) failing.add(method);
    await expect(500, "POST", "/v1/agents", { name: "a" });
    await expect(500, "GET", "/v1/agents");
    await expect(500, "DELETE", "/v1/agents/ag_1");
    await expect(500, "PATCH", "/v1/agents/ag_1", { singleInstance: true });
    await expect(500, "POST", "/v1/clients", { name: "c" });
    await expect(500, "GET", "/v1/clients");
    await expect(500, "DELETE", "/v1/clients/cl_1");
    await expect(500, "POST", "/v1/mappings", { ...FTP, virtualPort: 22, internalPort: 22 });
    await expect(500, "GET", "/v1/mappings");
    await expect(500, "GET", `/v1/mappings/${m.id}`);
    await expect(500, "PATCH", `/v1/mappings/${m.id}`, { description: "x" });
    await expect(500, "DELETE", `/v1/mappings/${m.id}`);
    await expect(500, "POST", "/v1/agents/ag_1/rotate");
    await expect(500, "POST", "/v1/clients/cl_1/rotate");
    await expect(500, "GET", "/v1/export");
    await expect(500, "POST", "/v1/import", exported);
    failing.clear();
    const realList = connections.list;
    const realKill = connections.kill;
    const realRender = metrics.render;
    connections.list = () => {
      throw new Error("table broken");
    };
    connections.kill = () => {
      throw new Error("table broken");
    };
    metrics.render = () => {
      throw new Error("registry broken");
    };
    const realRelays = admin.cluster.relays;
    try {
      await expect(500, "GET", "/v1/connections");
      await expect(500, "DELETE", "/v1/connections/cn_1");
      await expect(500, "GET", "/metrics");
      admin.cluster.relays = () => {
        throw new Error("membership broken");
      };
      await expect(500, "GET", "/v1/relays");
    } finally {
      connections.list = realList;
      connections.kill = realKill;
      metrics.render = realRender;
      admin.cluster.relays = realRelays;
    }

    // 429: from an address past the bound on failed authentications, every route that needs
    // the token answers 429 to a wrong one, with Retry-After
    const flooder = "203.0.113.9";
    for (let i = 0; i < AUTH_LIMIT.failures; i++) {
      const res = await admin.app.inject({ method: "GET", url: "/v1/agents", remoteAddress: flooder });
      assert.equal(res.statusCode, 401);
    }
    for (const [path, item] of Object.entries(doc.paths)) {
      for (const [method, op] of Object.entries(item)) {
        if (op.responses["429"] === undefined) continue;
        const url = path.replaceAll(/\{[^}]+\}/g, "x1");
        const res = await admin.app.inject({
          method: method.toUpperCase() as InjectOptions["method"],
          url,
          remoteAddress: flooder,
          headers: { authorization: "Bearer not-the-admin-token-0123456789" },
        });
        assert.equal(res.statusCode, 429, `${method} ${url}: ${res.body}`);
        assert.ok(Number(res.headers["retry-after"]) >= 1, `${method} ${url} says when to retry`);
        const ex = exchanges.at(-1)!;
        const declared = responseSchema(ex.schema, 429);
        assert.ok(declared?.zod.safeParse(JSON.parse(res.body)).success, `${ex.route} 429 fits its schema`);
      }
    }
    // the right token from that address still passes
    const right = await admin.app.inject({
      method: "GET",
      url: "/v1/agents",
      remoteAddress: flooder,
      headers: AUTH,
    });
    assert.equal(right.statusCode, 200);

    // Every status of every documented operation was answered, and nothing undocumented was.
    const documented = new Set<string>();
    for (const [path, item] of Object.entries(doc.paths)) {
      for (const [method, op] of Object.entries(item)) {
        for (const status of Object.keys(op.responses)) documented.add(`${method} ${path} ${status}`);
      }
    }
    const answered = new Set(exchanges.map((ex) => `${ex.route} ${ex.status}`));
    // the event stream's 200 never ends, so inject() cannot see it: the next test reads it
    // over a socket; nothing it does can fail after the stream has begun
    for (const status of [200, 500]) answered.add(`get /v1/events ${status}`);
    assert.deepEqual(
      [...documented].filter((x) => !answered.has(x)).sort(),
      [],
      "documented, never answered",
    );
    assert.deepEqual([...answered].filter((x) => !documented.has(x)).sort(), [], "answered, not documented");
  });

  it("streams live events as text/event-stream over a real socket", async () => {
    await admin.app.listen({ host: "127.0.0.1", port: 0 });
    const { port } = admin.app.server.address() as { port: number };
    const res = await fetch(`http://127.0.0.1:${port}/v1/events?types=agent.up`, { headers: AUTH });
    assert.equal(res.status, 200);
    assert.equal(res.headers.get("content-type"), "text/event-stream; charset=utf-8");
    const reader = res.body!.getReader();
    admin.events.publish({ type: "agent.down", data: { agentId: "ag_1" } });
    admin.events.publish({ type: "agent.up", data: { agentId: "ag_2" } });
    let text = "";
    while (!text.includes("event: agent.up")) {
      const { value, done } = await reader.read();
      if (done) break;
      text += new TextDecoder().decode(value);
    }
    await reader.cancel();
    assert.match(text, /event: agent\.up\ndata: \{"agentId":"ag_2"\}/);
    assert.ok(!text.includes("agent.down"), "the type filter holds");
  });
});
