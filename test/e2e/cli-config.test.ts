/**
 * The `underpass` command line and its environment: configuration mistakes end the process
 * with a message that names the variable before anything listens or connects; `version` and
 * unknown commands behave; a wss tunnel works with a CA the agent is told to trust; an agent
 * with a wrong token is refused, says why and keeps trying.
 */
import assert from "node:assert/strict";
import { randomUUID, X509Certificate } from "node:crypto";
import { readFileSync } from "node:fs";
import { access, mkdtemp, readdir, readFile, rm } from "node:fs/promises";
import { createServer, type Server, type Socket } from "node:net";
import { networkInterfaces, tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { ChildRegistry, formatResult, type SpawnResult, spawnBounded } from "../helpers/clients.js";
import { waitFor } from "../helpers/ports.js";
import {
  AdminClient,
  CLI,
  type CloudProcess,
  cliEnv,
  cloudEnv,
  freeCloudPorts,
  isRelayListening,
  REPO_ROOT,
  spawnCli,
  startAgentProcess,
  startCloud,
} from "../helpers/processes.js";
import { socksConnect } from "../helpers/stack.js";
import { bannerEcho, readAll, startTarget, type Target } from "../helpers/targets.js";
import { makeSelfSignedCert, type SelfSignedCert } from "../helpers/tls.js";

const ADMIN_TOKEN = "cli-config-admin-token-0123456789";
/** Exit code of a configuration error (the CLI's ValidationError path). */
const EXIT_CONFIG = 2;

/** Environment variables for a run; undefined ones are left out. */
type Env = Record<string, string | undefined>;

/** `underpass <args>` run to completion with exactly `env` (plus PATH and the like). */
function underpass(args: readonly string[], env: Env, registry: ChildRegistry): Promise<SpawnResult> {
  return spawnBounded(process.execPath, [CLI, ...args], {
    timeoutMs: 20_000,
    env: cliEnv(env),
    cwd: REPO_ROOT,
    registry,
    display: `underpass ${args.join(" ")}`,
  });
}

/** A TCP listener on `host` that only counts the connections it receives (a relay that must not be reached). */
async function countingServer(
  host = "127.0.0.1",
): Promise<{ port: number; count(): number; close(): Promise<void> }> {
  let n = 0;
  const sockets = new Set<Socket>();
  const server: Server = createServer((s) => {
    n++;
    sockets.add(s);
    s.on("close", () => sockets.delete(s));
    s.on("error", () => {});
  });
  await new Promise<void>((resolve) => server.listen(0, host, resolve));
  const addr = server.address();
  assert.ok(addr !== null && typeof addr === "object");
  return {
    port: addr.port,
    count: () => n,
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
}

async function exists(path: string): Promise<boolean> {
  return access(path).then(
    () => true,
    () => false,
  );
}

/** Asserts a configuration error: exit 2, the variable named, no stack trace, no "listening" log. */
function assertConfigError(r: SpawnResult, variable: string): void {
  assert.equal(r.timedOut, false, formatResult(r));
  assert.equal(r.code, EXIT_CONFIG, formatResult(r));
  assert.match(r.stderr, new RegExp(`^underpass: .*${variable}`, "m"), formatResult(r));
  assert.doesNotMatch(r.stderr, /\n\s+at /, `no stack trace\n${formatResult(r)}`);
  assert.doesNotMatch(r.stderr, /listening|tunnel up/, formatResult(r));
}

/**
 * `underpass cloud` on fresh loopback ports with `env` on top: refused with a configuration
 * error naming `variable`, before its data dir was even created.
 */
async function expectCloudRefused(
  work: string,
  env: Env,
  variable: string,
  registry: ChildRegistry,
): Promise<SpawnResult> {
  const dataDir = join(work, `data-${randomUUID()}`);
  const r = await underpass(
    ["cloud"],
    { ...cloudEnv(await freeCloudPorts(), dataDir), UNDERPASS_ADMIN_TOKEN: ADMIN_TOKEN, ...env },
    registry,
  );
  assertConfigError(r, variable);
  assert.equal(await exists(dataDir), false, "the data dir was not even created");
  return r;
}

describe("underpass: configuration errors and commands", () => {
  const children = new ChildRegistry();
  let work: string;
  let relay: Awaited<ReturnType<typeof countingServer>>;

  before(async () => {
    work = await mkdtemp(join(tmpdir(), "underpass-e2e-cli-"));
    relay = await countingServer();
  });

  after(async () => {
    await children.killAll();
    await relay?.close();
    if (work) await rm(work, { recursive: true, force: true });
  });

  /** `underpass agent` aimed at the counting relay with `env` on top: refused, and never connected. */
  async function expectAgentRefused(env: Env, variable: string): Promise<SpawnResult> {
    const r = await underpass(
      ["agent"],
      {
        UNDERPASS_RELAY_URL: `ws://127.0.0.1:${relay.port}/tunnel`,
        UNDERPASS_AGENT_TOKEN: "upagt_x",
        ...env,
      },
      children,
    );
    assertConfigError(r, variable);
    assert.equal(relay.count(), 0, "the agent never connected");
    return r;
  }

  it("agent without UNDERPASS_RELAY_URL: exit 2 naming the variable", async () => {
    await expectAgentRefused({ UNDERPASS_RELAY_URL: undefined }, "UNDERPASS_RELAY_URL");
  });

  it("agent with a URL that is not ws:// or wss://: exit 2 naming the variable, no connection", async () => {
    await expectAgentRefused(
      { UNDERPASS_RELAY_URL: `http://127.0.0.1:${relay.port}/tunnel` },
      "UNDERPASS_RELAY_URL",
    );
  });

  it("agent with a bad UNDERPASS_ALLOW: exit 2 naming the variable and the entry, no connection", async () => {
    const r = await expectAgentRefused({ UNDERPASS_ALLOW: "10.0.0.0/33:21;ftp.corp:21" }, "UNDERPASS_ALLOW");
    assert.match(r.stderr, /10\.0\.0\.0\/33/);
  });

  it("agent with UNDERPASS_CA naming a missing file: exit 2 naming the variable, no connection", async () => {
    await expectAgentRefused({ UNDERPASS_CA: join(work, "no-such-ca.pem") }, "UNDERPASS_CA");
  });

  it("agent with UNDERPASS_CA naming a file that holds no certificate: exit 2 naming the variable", async () => {
    await expectAgentRefused({ UNDERPASS_CA: join(REPO_ROOT, "package.json") }, "UNDERPASS_CA");
  });

  it("agent with a ws:// relay that is not on loopback: a warning, then exit 2 naming the variable", async () => {
    const r = await expectAgentRefused(
      { UNDERPASS_RELAY_URL: `ws://127.0.0.1:${relay.port}/tunnel,ws://relay.example:8443/tunnel` },
      "UNDERPASS_RELAY_URL",
    );
    assert.match(r.stderr, /ws:\/\/relay\.example:8443\/tunnel is ws:\/\/ to a host that is not loopback/);
    assert.match(r.stderr, /UNDERPASS_INSECURE_TUNNEL=1/);
    assert.match(r.stderr, /"msg":"the tunnel to these relays is not encrypted/);
  });

  it("agent with a ws:// relay that is not on loopback and UNDERPASS_INSECURE_TUNNEL=1: warns and runs", async () => {
    const address = Object.values(networkInterfaces())
      .flat()
      .find((a) => a !== undefined && !a.internal && a.family === "IPv4")?.address;
    assert.ok(address, "the test needs an IPv4 address of this host that is not loopback");
    const remote = await countingServer(address);
    const url = `ws://${address}:${remote.port}/tunnel`;
    const agent = startAgentProcess({
      relayUrl: url,
      token: "upagt_x",
      env: { UNDERPASS_INSECURE_TUNNEL: "1" },
      registry: children,
    });
    try {
      const [warning] = await agent.waitForLog((l) =>
        /^the tunnel to these relays is not encrypted/.test(l.msg),
      );
      assert.deepEqual(warning?.["relays"], [url]);
      assert.equal(warning?.["level"], 40);
      await waitFor(() => remote.count() > 0, { what: `the agent to dial ${url}\n${agent.describe()}` });
      assert.ok(agent.running(), agent.describe());
    } finally {
      await agent.stop();
      await remote.close();
    }
  });

  it("agent with a list holding one bad URL: exit 2 naming the variable and the entry", async () => {
    const r = await expectAgentRefused(
      { UNDERPASS_RELAY_URL: `ws://127.0.0.1:${relay.port}/tunnel, https://relay.example/tunnel` },
      "UNDERPASS_RELAY_URL",
    );
    assert.match(r.stderr, /"https:\/\/relay\.example\/tunnel"/);
  });

  for (const [what, value] of [
    ["a SHA-1 fingerprint", "AB:CD:EF:01:23:45:67:89:AB:CD:EF:01:23:45:67:89:AB:CD:EF:01"],
    ["a fingerprint with a stray character", `${"ab".repeat(31)}zz`],
  ] as const) {
    it(`agent with ${what} in UNDERPASS_RELAY_FINGERPRINT: exit 2 naming the variable`, async () => {
      const r = await expectAgentRefused(
        { UNDERPASS_RELAY_URL: "wss://127.0.0.1:1/tunnel", UNDERPASS_RELAY_FINGERPRINT: value },
        "UNDERPASS_RELAY_FINGERPRINT",
      );
      assert.match(r.stderr, /not a SHA-256 fingerprint/);
    });
  }

  it("agent with UNDERPASS_RELAY_FINGERPRINT but no wss:// relay: exit 2 naming the variable", async () => {
    await expectAgentRefused({ UNDERPASS_RELAY_FINGERPRINT: "ab".repeat(32) }, "UNDERPASS_RELAY_FINGERPRINT");
  });

  it("agent with UNDERPASS_WS_MASK=zero towards a ws:// relay: exit 2 naming the variable, no connection", async () => {
    const r = await expectAgentRefused({ UNDERPASS_WS_MASK: "zero" }, "UNDERPASS_WS_MASK");
    assert.match(r.stderr, /wss:\/\/ tunnels only/);
  });

  it("agent with an unknown UNDERPASS_WS_MASK: exit 2 naming the variable", async () => {
    await expectAgentRefused({ UNDERPASS_WS_MASK: "none" }, "UNDERPASS_WS_MASK");
  });

  for (const bad of ["127.0.0.1:99999", "127.0.0.1", "localhost:socks"]) {
    it(`cloud with UNDERPASS_SOCKS_LISTEN=${bad}: exit 2 naming the variable, nothing created`, async () => {
      await expectCloudRefused(work, { UNDERPASS_SOCKS_LISTEN: bad }, "UNDERPASS_SOCKS_LISTEN", children);
    });
  }

  for (const bad of [
    "",
    "127.0.0.1",
    "127.0.0.1:99999",
    "localhost:metrics",
    "bad host!:9464",
    "[::1:9464",
  ]) {
    it(`cloud with UNDERPASS_METRICS_LISTEN=${JSON.stringify(bad)}: exit 2 naming the variable, nothing created`, async () => {
      await expectCloudRefused(work, { UNDERPASS_METRICS_LISTEN: bad }, "UNDERPASS_METRICS_LISTEN", children);
    });
  }

  it("cloud with UNDERPASS_METRICS_LISTEN on the admin API's port: exit 2 naming both, nothing created", async () => {
    const r = await expectCloudRefused(
      work,
      { UNDERPASS_ADMIN_LISTEN: "127.0.0.1:18081", UNDERPASS_METRICS_LISTEN: "0.0.0.0:18081" },
      "UNDERPASS_METRICS_LISTEN",
      children,
    );
    assert.match(r.stderr, /UNDERPASS_ADMIN_LISTEN/);
  });

  it("cloud with UNDERPASS_TLS_CERT but no UNDERPASS_TLS_KEY: exit 2 naming both, nothing created", async () => {
    const r = await expectCloudRefused(
      work,
      { UNDERPASS_TLS_CERT: join(work, "cert.pem") },
      "UNDERPASS_TLS_KEY",
      children,
    );
    assert.match(r.stderr, /UNDERPASS_TLS_CERT/);
  });

  it("cloud with TLS files that do not exist: exit 2 naming the variable, nothing created", async () => {
    await expectCloudRefused(
      work,
      {
        UNDERPASS_TLS_CERT: join(work, "missing-cert.pem"),
        UNDERPASS_TLS_KEY: join(work, "missing-key.pem"),
      },
      "UNDERPASS_TLS_CERT",
      children,
    );
  });

  it("an unknown command exits 2 and shows the usage", async () => {
    const r = await underpass(["frobnicate"], {}, children);
    assert.equal(r.code, 2, formatResult(r));
    assert.match(r.stderr, /unknown command "frobnicate"/);
    assert.match(r.stderr, /underpass cloud/);
  });

  it("version prints package.json's version", async () => {
    const pkg = JSON.parse(readFileSync(join(REPO_ROOT, "package.json"), "utf8")) as { version: string };
    const r = await underpass(["version"], {}, children);
    assert.equal(r.code, 0, formatResult(r));
    assert.equal(r.stdout, `${pkg.version}\n`);
  });
});

describe("underpass cloud with a wss tunnel, underpass agent with UNDERPASS_CA", () => {
  const children = new ChildRegistry();
  let work: string;
  let dataDir: string;
  let cloud: CloudProcess | undefined;
  let target: Target | undefined;
  let certFile: string;
  let keyFile: string;
  const certs: SelfSignedCert[] = [];

  before(async () => {
    work = await mkdtemp(join(tmpdir(), "underpass-e2e-wss-"));
    dataDir = join(work, "data");
    const pair = await makeSelfSignedCert({ commonName: "underpass test relay" });
    certs.push(pair);
    certFile = pair.certFile;
    keyFile = pair.keyFile;
    cloud = await startCloud({
      dataDir,
      adminToken: ADMIN_TOKEN,
      env: { UNDERPASS_TLS_CERT: certFile, UNDERPASS_TLS_KEY: keyFile },
      registry: children,
    });
    target = await startTarget(bannerEcho("220 on-premise echo\r\n"));
    await cloud.admin.addMapping({
      virtualHost: "echo.corp.example",
      virtualPort: 21,
      internalHost: "127.0.0.1",
      internalPort: target.port,
    });
  });

  after(async () => {
    await children.killAll();
    await cloud?.stop();
    await target?.close();
    for (const c of certs) await c.close();
    if (work) await rm(work, { recursive: true, force: true });
  });

  it("cloud with a key that does not belong to the certificate: exit 2 naming the variables, nothing created", async () => {
    const other = await makeSelfSignedCert({ commonName: "underpass test other" });
    certs.push(other);
    await expectCloudRefused(
      work,
      { UNDERPASS_TLS_CERT: certFile, UNDERPASS_TLS_KEY: other.keyFile },
      "UNDERPASS_TLS_KEY",
      children,
    );
  });

  /** An agent with `env` connects to the wss relay, and a SOCKS CONNECT reaches the echo target. */
  async function assertAgentCarries(name: string, env: Env): Promise<void> {
    assert.ok(cloud && target);
    assert.match(cloud.relayUrl, /^wss:\/\//);
    const rec = await cloud.admin.addAgent(name);
    const agent = startAgentProcess({
      relayUrl: cloud.relayUrl,
      token: rec.token,
      allow: `127.0.0.1:${target.port}`,
      env,
      registry: children,
    });
    let s: Socket | undefined;
    try {
      const entry = await cloud.admin.waitAgentConnected(rec.id);
      assert.equal(entry.connected, true);
      const client = await cloud.admin.addClient(`${name}-flow`);
      s = await socksConnect(cloud.ports.socks, client, "echo.corp.example", 21);
      assert.equal((await readAll(s, 21)).toString(), "220 on-premise echo\r\n");
      s.write("NOOP\r\n");
      assert.equal((await readAll(s, 6)).toString(), "NOOP\r\n");
    } finally {
      // Closed before the agent stops: its tunnel going away would reset the stream.
      s?.destroy();
      await agent.stop();
    }
  }

  it("the agent trusts the relay through UNDERPASS_CA, connects over wss, and a SOCKS CONNECT works", async () => {
    await assertAgentCarries("wss-agent", { UNDERPASS_CA: certFile });
  });

  /** The relay certificate's SHA-256 fingerprint as openssl prints it: `AB:CD:…`. */
  const fingerprint = (): string => new X509Certificate(readFileSync(certFile)).fingerprint256;

  it("an agent that pins the relay's self-signed certificate connects without UNDERPASS_CA", async () => {
    await assertAgentCarries("pinned-agent", { UNDERPASS_RELAY_FINGERPRINT: fingerprint() });
  });

  it("a pin list for a renewal overlap, lower case without colons, with UNDERPASS_CA too: connects", async () => {
    const other = "0f".repeat(32);
    const bare = fingerprint().replaceAll(":", "").toLowerCase();
    await assertAgentCarries("renewal-agent", {
      UNDERPASS_RELAY_FINGERPRINT: `${other}, ${bare}`,
      UNDERPASS_CA: certFile,
    });
  });

  for (const [what, env] of [
    ["without UNDERPASS_CA", {}],
    ["with UNDERPASS_CA, which alone would accept the relay", { UNDERPASS_CA: "ca" }],
  ] as const) {
    it(`an agent pinning another certificate ${what} refuses the relay, names the fingerprint it saw, keeps trying`, async () => {
      assert.ok(cloud);
      const rec = await cloud.admin.addAgent(`mispinned-agent-${Object.keys(env).length}`);
      const pinned = "AB:".repeat(31) + "AB";
      const agent = startAgentProcess({
        relayUrl: cloud.relayUrl,
        token: rec.token,
        env: {
          UNDERPASS_RELAY_FINGERPRINT: pinned,
          UNDERPASS_RECONNECT_MAX_MS: "500",
          ...("UNDERPASS_CA" in env ? { UNDERPASS_CA: certFile } : {}),
        },
        registry: children,
      });
      try {
        const refusals = await agent.waitForLog(
          (l) => l.msg === "the relay's certificate is not the pinned one",
          {
            count: 2,
          },
        );
        const err = String(refusals[0]?.["err"]);
        assert.ok(err.includes(`presented SHA-256 ${fingerprint()}`), err);
        assert.ok(err.includes(`it pins ${pinned}`), err);
        assert.equal(refusals[0]?.["code"], "UP_ERR_AUTH");
        assert.equal(refusals[0]?.["level"], 50);
        assert.ok(agent.running(), agent.describe());
        assert.ok(!agent.logs().some((l) => l.msg === "tunnel up"), agent.describe());
        assert.equal((await cloud.admin.agent(rec.id)).connected, false);
        // the hello, and the token in it, never went to the relay that showed another certificate
        assert.ok(!agent.logs().some((l) => l.msg === "the relay did not answer the hello"));
        assert.ok(!agent.logs().some((l) => l.msg === "tunnel connection failed"), agent.describe());
      } finally {
        await agent.stop();
      }
    });
  }

  it("UNDERPASS_WS_MASK=zero over wss: the relay reads the zero-keyed frames, a SOCKS CONNECT works", async () => {
    await assertAgentCarries("zero-mask-agent", { UNDERPASS_CA: certFile, UNDERPASS_WS_MASK: "zero" });
  });

  it("an agent without UNDERPASS_CA refuses the self-signed relay, logs why and keeps trying", async () => {
    assert.ok(cloud);
    const rec = await cloud.admin.addAgent("untrusting-agent");
    const agent = startAgentProcess({
      relayUrl: cloud.relayUrl,
      token: rec.token,
      env: { UNDERPASS_RECONNECT_MAX_MS: "500" },
      registry: children,
    });
    try {
      const failures = await agent.waitForLog((l) => l.msg === "tunnel connection failed", { count: 2 });
      assert.match(String(failures[0]?.["err"]), /self[- ]signed|certificate/i, agent.describe());
      assert.ok(agent.running(), agent.describe());
      assert.equal((await cloud.admin.agent(rec.id)).connected, false);
    } finally {
      await agent.stop();
    }
  });

  it("an agent with a wrong token is refused, logs the reason and keeps retrying without crashing", async () => {
    assert.ok(cloud);
    const agent = startAgentProcess({
      relayUrl: cloud.relayUrl,
      token: "upagt_not-a-token-this-relay-issued",
      env: { UNDERPASS_CA: certFile, UNDERPASS_RECONNECT_MAX_MS: "500" },
      registry: children,
    });
    try {
      const refusals = await agent.waitForLog((l) => l.msg === "the relay refused this agent", { count: 3 });
      assert.match(String(refusals[0]?.["reason"]), /token/, agent.describe());
      assert.ok(agent.running(), agent.describe());
      assert.doesNotMatch(agent.stderr(), /not-a-token-this-relay-issued/, "the token never reaches a log");
      const connected = (
        (await cloud.admin.expect("GET", "/v1/agents", undefined, 200)) as Array<{
          connected: boolean;
        }>
      ).filter((a) => a.connected);
      assert.deepEqual(connected, []);
    } finally {
      await agent.stop();
    }
    const { code, signal } = await agent.exited;
    assert.equal(code, 0, agent.describe());
    assert.equal(signal, null);
  });
});

describe("underpass cloud without UNDERPASS_ADMIN_TOKEN", () => {
  const children = new ChildRegistry();
  let dataDir: string;

  before(async () => {
    dataDir = await mkdtemp(join(tmpdir(), "underpass-e2e-admin-token-"));
  });

  after(async () => {
    await children.killAll();
    if (dataDir) await rm(dataDir, { recursive: true, force: true });
  });

  it("prints a generated admin token once, keeps only hashes of secrets, and accepts the token after a restart", async () => {
    const ports = await freeCloudPorts();
    const env = cliEnv(cloudEnv(ports, dataDir));
    const first = spawnCli(["cloud"], env, children);
    let password: string;
    let token: string;
    try {
      token = (await first.waitForOutput(/Admin token[^\n]*\n\s*(\S+)/))[1] ?? "";
      await first.waitForLog(isRelayListening);
      const admin = new AdminClient(`http://127.0.0.1:${ports.admin}`, token);
      password = (await admin.addClient("hash-check")).password;
      const wrong = new AdminClient(admin.baseUrl, `${token}x`);
      assert.equal((await wrong.request("GET", "/v1/clients")).status, 401);
    } finally {
      await first.stop();
    }
    // the store and the audit trail beside it
    const files = (await readdir(dataDir, { recursive: true, withFileTypes: true })).filter((e) =>
      e.isFile(),
    );
    const stored = await Promise.all(files.map((e) => readFile(join(e.parentPath, e.name), "utf8")));
    assert.ok(stored.length > 0, "the store wrote its files");
    for (const text of stored) {
      assert.ok(!text.includes(token), "the admin token is not stored in clear");
      assert.ok(!text.includes(password), "the client's password is not stored in clear");
    }

    const second = spawnCli(["cloud"], env, children);
    try {
      await second.waitForLog(isRelayListening);
      const clients = await new AdminClient(`http://127.0.0.1:${ports.admin}`, token).expect(
        "GET",
        "/v1/clients",
        undefined,
        200,
      );
      assert.deepEqual(
        clients.map((c: { name: string }) => c.name),
        ["hash-check"],
      );
      assert.doesNotMatch(second.stdout(), /Admin token/, "the token is shown only on the first start");
    } finally {
      await second.stop();
    }
  });
});
