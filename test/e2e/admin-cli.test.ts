/**
 * `underpass agents|clients|mappings|connections …` as an operator runs them: subprocesses
 * against a real `underpass cloud` and a real `underpass agent`. Tables by default, `--json` for
 * scripts; exit 0 on success, 1 when the API refuses (its code and message printed) or the relay
 * cannot be reached, 2 on bad usage.
 */
import assert from "node:assert/strict";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import type { Socket } from "node:net";
import { hostname, tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { ChildRegistry, type SpawnResult, spawnBounded } from "../helpers/clients.js";
import { waitFor } from "../helpers/ports.js";
import {
  CLI,
  type CliProcess,
  type CloudProcess,
  cliEnv,
  REPO_ROOT,
  startAgentProcess,
  startCloud,
} from "../helpers/processes.js";
import { socksConnect, socksReply } from "../helpers/stack.js";
import { bannerEcho, startTarget, type Target } from "../helpers/targets.js";

const ADMIN_TOKEN = "admin-cli-test-token-0123456789";

describe("admin CLI against a real relay and agent", () => {
  const registry = new ChildRegistry();
  let dataDir = "";
  let cloud: CloudProcess;
  let agent: CliProcess | undefined;
  let target: Target;

  /** `underpass <args>` with the admin URL and token in the environment. */
  function underpass(
    args: readonly string[],
    env: Record<string, string | undefined> = {},
  ): Promise<SpawnResult> {
    return spawnBounded(process.execPath, [CLI, ...args], {
      timeoutMs: 30_000,
      env: cliEnv({
        UNDERPASS_ADMIN_URL: `http://127.0.0.1:${cloud.ports.admin}`,
        UNDERPASS_ADMIN_TOKEN: ADMIN_TOKEN,
        ...env,
      }),
      cwd: REPO_ROOT,
      registry,
      display: `underpass ${args.join(" ")}`,
    });
  }

  async function json<T>(args: readonly string[]): Promise<T> {
    const r = await underpass([...args, "--json"]);
    assert.equal(r.code, 0, `${r.command}: ${r.stderr}`);
    return JSON.parse(r.stdout) as T;
  }

  before(async () => {
    dataDir = await mkdtemp(join(tmpdir(), "underpass-admin-cli-"));
    target = await startTarget(bannerEcho("220 target ready\r\n"));
    cloud = await startCloud({ dataDir, adminToken: ADMIN_TOKEN, registry });
  });

  after(async () => {
    await agent?.stop();
    await cloud?.stop();
    await target?.close();
    await rm(dataDir, { recursive: true, force: true });
  });

  it("adds an agent, shows its token once and lists it connected once the agent runs", async () => {
    const added = await underpass(["agents", "add", "plant-1 agent", "--location", "plant-1"]);
    assert.equal(added.code, 0, added.stderr);
    const token = /^token:\s+(upa_\S+)$/m.exec(added.stdout)?.[1];
    assert.ok(token, `a token line in:\n${added.stdout}`);
    assert.match(added.stdout, /UNDERPASS_AGENT_TOKEN=upa_/);
    const id = /^id:\s+(ag_\S+)$/m.exec(added.stdout)?.[1];
    assert.ok(id, `an id line in:\n${added.stdout}`);

    const before = await underpass(["agents", "list"]);
    assert.equal(before.code, 0);
    assert.match(before.stdout, /^ID\s+NAME\s+LOCATION\s+STATUS/m);
    assert.match(before.stdout, new RegExp(`^${id}\\s+plant-1 agent\\s+plant-1\\s+down`, "m"));
    assert.ok(!before.stdout.includes(token), "the token is never listed");

    agent = startAgentProcess({ relayUrl: cloud.relayUrl, token, registry });
    await cloud.admin.waitAgentConnected(id);
    const listed = await underpass(["agents", "list"]);
    assert.match(listed.stdout, new RegExp(`^${id}\\s+plant-1 agent\\s+plant-1\\s+up\\s+1\\s`, "m"));
    const asJson = await json<
      Array<{ id: string; connected: boolean; links: Array<{ hostName: string; instanceId: string }> }>
    >(["agents", "list"]);
    assert.deepEqual(
      asJson.filter((a) => a.id === id).map((a) => a.connected),
      [true],
    );
    // the agent process says which host and process it is
    const links = asJson.find((a) => a.id === id)?.links ?? [];
    assert.equal(links.length, 1);
    assert.equal(links[0]?.hostName, hostname());
    assert.match(links[0]?.instanceId ?? "", /^[0-9a-f]{16}$/);
    assert.match(listed.stdout, new RegExp(`\\s${hostname().replaceAll(".", "\\.")} \\(127\\.0\\.0\\.1\\)`));
  });

  it("registers a single-instance agent and changes the flag in place", async () => {
    const added = await underpass(["agents", "add", "lone agent", "--single-instance", "--json"]);
    assert.equal(added.code, 0, added.stderr);
    const { id } = JSON.parse(added.stdout) as { id: string };
    const single = await json<Array<{ id: string; singleInstance: boolean }>>(["agents", "list"]);
    assert.equal(single.find((a) => a.id === id)?.singleInstance, true);
    const off = await underpass(["agents", "set", id, "--no-single-instance"]);
    assert.equal(off.code, 0, off.stderr);
    assert.match(off.stdout, /^ID\s+NAME.*SINGLE/m);
    assert.match(off.stdout, new RegExp(`^${id}\\s+lone agent\\s.*\\sno\\s+-$`, "m"));
    const nothing = await underpass(["agents", "set", id]);
    assert.equal(nothing.code, 2, "nothing to change is bad usage");
    assert.equal((await underpass(["agents", "rm", id])).code, 0);
  });

  it("adds mappings (ranges included), refuses an overlap with exit 1 and the API's code", async () => {
    const ok = await underpass([
      "mappings",
      "add",
      "svc.corp.example:2100",
      `127.0.0.1:${target.port}`,
      "--location",
      "plant-1",
      "--description",
      "echo target",
    ]);
    assert.equal(ok.code, 0, ok.stderr);
    assert.match(
      ok.stdout,
      new RegExp(`svc\\.corp\\.example:2100\\s+127\\.0\\.0\\.1:${target.port}\\s+plant-1\\s+tcp`),
    );

    const range = await underpass([
      "mappings",
      "add",
      "svc.corp.example:30000-30010",
      "10.1.2.3:40000-40010",
      "--location",
      "plant-1",
    ]);
    assert.equal(range.code, 0, range.stderr);
    assert.match(range.stdout, /svc\.corp\.example:30000-30010\s+10\.1\.2\.3:40000-40010/);

    const overlap = await underpass([
      "mappings",
      "add",
      "svc.corp.example:30005",
      "10.1.2.3:21",
      "--location",
      "plant-1",
    ]);
    assert.equal(overlap.code, 1);
    assert.match(overlap.stderr, /UP_ERR_CONFLICT \(HTTP 409\)/);
    assert.match(overlap.stderr, /conflicts with mapping mp_/);

    const lengths = await underpass([
      "mappings",
      "add",
      "svc.corp.example:31000-31010",
      "10.1.2.3:41000-41009",
      "--location",
      "plant-1",
    ]);
    assert.equal(lengths.code, 1);
    assert.match(lengths.stderr, /UP_ERR_VALIDATION \(HTTP 400\).*internalPort/);

    const list = await json<Array<{ virtualPort: number | string }>>(["mappings", "list"]);
    assert.deepEqual(list.map((m) => m.virtualPort).sort(), [2100, "30000-30010"].sort());
  });

  it("edits a mapping in place and checks it through the agent", async () => {
    const list = await json<Array<{ id: string; virtualPort: number | string }>>(["mappings", "list"]);
    const m = list.find((x) => x.virtualPort === 2100)!;
    const edited = await underpass(["mappings", "edit", m.id, "--description", "the echo target"]);
    assert.equal(edited.code, 0, edited.stderr);
    assert.match(edited.stdout, /the echo target/);

    const check = await underpass(["mappings", "check", m.id]);
    assert.equal(check.code, 0, check.stderr);
    assert.match(check.stdout, /^reachable in [\d.]+ ms$/m);

    const unreachable = list.find((x) => x.virtualPort === "30000-30010")!;
    const failed = await underpass(["mappings", "check", unreachable.id, "--json"]);
    assert.equal(failed.code, 1, "a check that fails exits 1");
    assert.equal(JSON.parse(failed.stdout).reachable, false);
  });

  it("lists a live connection with its bytes and kills it", async () => {
    const c = await json<{ id: string; username: string; password: string }>([
      "clients",
      "add",
      "erp",
      "--location",
      "plant-1",
    ]);
    assert.match(c.password, /^ups_/);
    const socket: Socket = await socksConnect(
      cloud.ports.socks,
      { username: c.username, password: c.password },
      "svc.corp.example",
      2100,
    );
    try {
      const closed = new Promise<string>((resolve) => {
        socket.on("error", (err: NodeJS.ErrnoException) => resolve(err.code ?? err.message));
        socket.on("close", () => resolve("closed"));
      });
      socket.write("hello through the relay\n");
      const live = await waitFor(
        async () => {
          const list = await json<Array<{ id: string; clientName: string; bytesUp: number }>>([
            "connections",
            "list",
          ]);
          return list.find((x) => x.clientName === "erp" && x.bytesUp > 0);
        },
        { timeoutMs: 20_000, intervalMs: 200, what: "the connection listed with bytes up" },
      );
      const table = await underpass(["connections", "list"]);
      assert.match(table.stdout, new RegExp(`^${live.id}\\s+connect\\s+erp\\s`, "m"));

      const killed = await underpass(["connections", "kill", live.id]);
      assert.equal(killed.code, 0, killed.stderr);
      assert.equal(await closed, "ECONNRESET", "a killed connection reaches the client as a reset");
      const again = await underpass(["connections", "kill", live.id]);
      assert.equal(again.code, 1);
      assert.match(again.stderr, /UP_ERR_NOT_FOUND \(HTTP 404\)/);
    } finally {
      socket.destroy();
    }
  });

  it("lists the relays: over the file store, the one that answers", async () => {
    const list = await json<Array<{ id: string; self: boolean; live: boolean; tunnelUrl: string }>>([
      "relays",
    ]);
    assert.equal(list.length, 1);
    assert.equal(list[0]?.self, true);
    assert.equal(list[0]?.live, true);
    assert.equal(list[0]?.tunnelUrl, `ws://127.0.0.1:${cloud.ports.tunnel}/tunnel`);
    const table = await underpass(["relays"]);
    assert.equal(table.code, 0, table.stderr);
    assert.match(table.stdout, /^ID\s+STATUS\s+TUNNEL URL/m);
    assert.match(table.stdout, new RegExp(`^${list[0]?.id} \\*\\s+live\\s`, "m"));
  });

  it("rotates an agent's token: the running agent is cut off, the new token is shown once", async () => {
    const [a] = await json<Array<{ id: string }>>(["agents", "list"]);
    assert.ok(a);
    const r = await underpass(["agents", "rotate", a.id]);
    assert.equal(r.code, 0, r.stderr);
    const token = /^token:\s+(upa_\S+)$/m.exec(r.stdout)?.[1];
    assert.ok(token, r.stdout);
    assert.match(r.stdout, /The token is shown once/);
    await waitFor(
      async () =>
        (await json<Array<{ connected: boolean }>>(["agents", "list"]))[0]?.connected ? undefined : true,
      { timeoutMs: 20_000, intervalMs: 200, what: "the agent's tunnel closed" },
    );
    await agent?.stop();
    agent = startAgentProcess({ relayUrl: cloud.relayUrl, token, registry });
    await cloud.admin.waitAgentConnected(a.id);
  });

  it("shows the audit trail: denials, changes, rotations, agents; filtered and paged", async () => {
    const c = await json<{ username: string; password: string }>([
      "clients",
      "add",
      "auditor",
      "--location",
      "plant-1",
    ]);
    const denied = await socksReply(cloud.ports.socks, c, "svc.corp.example", 2199);
    denied.socket.destroy();
    assert.equal(denied.reply, 0x02);
    const table = await underpass(["audit", "list", "--event", "socks.denied"]);
    assert.equal(table.code, 0, table.stderr);
    assert.match(table.stdout, /^TIME\s+EVENT\s+DETAIL\s+MESSAGE/m);
    assert.match(table.stdout, /socks\.denied\s+client=auditor host=svc\.corp\.example port=2199/);
    const rotated = await json<{ events: Array<{ event: string; actor: string }> }>([
      "audit",
      "list",
      "--event",
      "admin.agent.rotated",
    ]);
    assert.equal(rotated.events.length, 1);
    assert.equal(rotated.events[0]?.actor, "admin-token");
    const recent = await json<{ events: Array<{ event: string }> }>([
      "audit",
      "list",
      "--since",
      "1h",
      "--limit",
      "500",
    ]);
    for (const e of [
      "admin.mapping.created",
      "admin.client.created",
      "agent.connected",
      "agent.disconnected",
      "socks.denied",
    ]) {
      assert.ok(
        recent.events.some((x) => x.event === e),
        `${e} in the last hour`,
      );
    }
    const page = await underpass(["audit", "list", "--limit", "2"]);
    const cursor = /--cursor (\d+)/.exec(page.stdout)?.[1];
    assert.ok(cursor, page.stdout);
    const next = await json<{ events: Array<{ seq: number }> }>([
      "audit",
      "list",
      "--limit",
      "2",
      "--cursor",
      cursor,
    ]);
    assert.ok(next.events.every((e) => e.seq < Number(cursor)));
  });

  it("exports the configuration and imports it, dry run first, all or nothing", async () => {
    const file = join(dataDir, "backup.json");
    const exported = await underpass(["export", "--out", file]);
    assert.equal(exported.code, 0, exported.stderr);
    assert.match(exported.stderr, /configuration written to/);
    const doc = JSON.parse(await readFile(file, "utf8"));
    assert.equal(doc.format, "underpass-config");
    const dry = await underpass(["import", file, "--dry-run"]);
    assert.equal(dry.code, 0, dry.stderr);
    assert.match(dry.stdout, /^dry run: nothing was changed/m);
    assert.match(dry.stdout, /mappings\s+\+0 added, -0 removed, ~0 changed, 2 unchanged/);
    const broken = join(dataDir, "broken.json");
    await writeFile(
      broken,
      JSON.stringify({ ...doc, mappings: [doc.mappings[0], { ...doc.mappings[0], id: "mp_twin" }] }),
    );
    const refused = await underpass(["import", broken]);
    assert.equal(refused.code, 1);
    assert.match(refused.stderr, /UP_ERR_CONFLICT \(HTTP 409\)/);
    const missing = await underpass(["import", join(dataDir, "nope.json")]);
    assert.equal(missing.code, 2);
    const done = await underpass(["import", file]);
    assert.equal(done.code, 0, done.stderr);
    assert.match(done.stdout, /^imported:/m);
  });

  it("removes what it added", async () => {
    const clients = await json<Array<{ id: string }>>(["clients", "list"]);
    for (const c of clients) assert.equal((await underpass(["clients", "rm", c.id])).code, 0);
    assert.deepEqual(await json(["clients", "list"]), []);
    const missing = await underpass(["clients", "rm", "cl_0000000000000000"]);
    assert.equal(missing.code, 1);
    assert.match(missing.stderr, /UP_ERR_NOT_FOUND/);
  });

  it("tells bad usage (exit 2), a refused token and an unreachable relay (exit 1) apart", async () => {
    const help = await underpass(["mappings", "--help"]);
    assert.equal(help.code, 0);
    assert.match(help.stdout, /ftp-check/);

    const missingArg = await underpass(["mappings", "add", "only-one:21"]);
    assert.equal(missingArg.code, 2);
    assert.match(missingArg.stderr, /missing required argument/);

    const badEndpoint = await underpass(["mappings", "add", "no-port", "10.0.0.1:21"]);
    assert.equal(badEndpoint.code, 2);
    assert.match(badEndpoint.stderr, /virtual "no-port" is not host:port/);

    const unknown = await underpass(["agents", "frobnicate"]);
    assert.equal(unknown.code, 2);

    const noToken = await underpass(["agents", "list"], { UNDERPASS_ADMIN_TOKEN: undefined });
    assert.equal(noToken.code, 2);
    assert.match(noToken.stderr, /UNDERPASS_ADMIN_TOKEN/);

    const wrongToken = await underpass(["agents", "list", "--token", "not-the-token"]);
    assert.equal(wrongToken.code, 1);
    assert.match(wrongToken.stderr, /UP_ERR_AUTH \(HTTP 401\)/);

    const down = await underpass(["agents", "list", "--admin-url", "http://127.0.0.1:9"]);
    assert.equal(down.code, 1);
    assert.match(down.stderr, /cannot reach the admin API at http:\/\/127\.0\.0\.1:9/);
  });
});
