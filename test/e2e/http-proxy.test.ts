/**
 * The agent's tunnel through a real HTTP CONNECT proxy on loopback, configured as an operator
 * does it (HTTPS_PROXY, https_proxy, NO_PROXY through agentConfigFromEnv): tinyproxy with basic
 * auth in front of a ws:// and a wss:// relay, credentials refused, NO_PROXY bypassing the
 * proxy; and an https:// proxy (TLS to the proxy, which tinyproxy does not speak: a minimal
 * CONNECT proxy on node:https) reached by `underpass agent` trusting it via NODE_EXTRA_CA_CERTS.
 */
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import type { IncomingMessage } from "node:http";
import { createServer as createHttpsServer } from "node:https";
import { connect, type Socket } from "node:net";
import type { Duplex } from "node:stream";
import { after, before, describe, it } from "node:test";
import { type Agent, startAgent } from "../../agent/agent.js";
import { agentConfigFromEnv } from "../../agent/config.js";
import { ChildRegistry } from "../helpers/clients.js";
import { waitFor } from "../helpers/ports.js";
import { startAgentProcess } from "../helpers/processes.js";
import { captureRelayLog, type RelayLog } from "../helpers/relay-log.js";
import { type Stack, socksConnect, startStack } from "../helpers/stack.js";
import { bannerEcho, readAll, startTarget, type Target } from "../helpers/targets.js";
import { type ProxyCredentials, startTinyproxy, type Tinyproxy } from "../helpers/tinyproxy.js";
import { makeSelfSignedCert, type SelfSignedCert } from "../helpers/tls.js";

const ALICE: ProxyCredentials = { user: "alice", password: "pr0xy-S3cret-alice" };
const WRONG: ProxyCredentials = { user: "alice", password: "not-the-password-0xBAD" };
const BANNER = "220 ready\r\n";

/** An agent configured from `env` as `underpass agent` is, logging into a capture. */
function envAgent(env: Record<string, string>): { agent: Agent; log: RelayLog } {
  const log = captureRelayLog();
  const config = agentConfigFromEnv({ UNDERPASS_RECONNECT_MAX_MS: "300", ...env }, log.logger);
  return { agent: startAgent(config), log };
}

/** Is the agent connected, as the relay's admin API says? */
async function connected(stack: Stack): Promise<boolean> {
  const agents = (await stack.api("GET", "/v1/agents")).body as Array<{ id: string; connected: boolean }>;
  return agents.find((a) => a.id === stack.agentId)?.connected === true;
}

/** One SOCKS CONNECT through the relay to the banner target: the bytes crossed the tunnel. */
async function assertCarries(stack: Stack): Promise<void> {
  const s = await socksConnect(stack.socksPort, stack.client, "echo.corp.example", 21);
  try {
    assert.equal((await readAll(s, BANNER.length)).toString(), BANNER);
    s.write("NOOP\r\n");
    assert.equal((await readAll(s, 6)).toString(), "NOOP\r\n");
  } finally {
    s.destroy();
  }
}

function text(log: RelayLog): string {
  return log
    .lines()
    .map((l) => JSON.stringify(l))
    .join("\n");
}

describe("the tunnel through tinyproxy (HTTP CONNECT, basic auth)", () => {
  const children = new ChildRegistry();
  const agents: Agent[] = [];
  let target: Target;
  let proxy: Tinyproxy;
  let stack: Stack;
  let tlsStack: Stack;
  let cert: SelfSignedCert;
  const relayUrl = (s: Stack, scheme = "ws"): string =>
    `${scheme}://127.0.0.1:${s.relay.tunnelAddress.port}/tunnel`;
  const relayAuthority = (s: Stack): string => `127.0.0.1:${s.relay.tunnelAddress.port}`;

  before(async () => {
    target = await startTarget(bannerEcho(BANNER));
    proxy = await startTinyproxy({ credentials: ALICE, registry: children });
    cert = await makeSelfSignedCert({ commonName: "underpass proxied relay" });
    stack = await startStack({ agent: false });
    tlsStack = await startStack({ agent: false, relay: { tls: cert } });
    for (const s of [stack, tlsStack]) {
      await s.addMapping({
        virtualHost: "echo.corp.example",
        virtualPort: 21,
        internalHost: "127.0.0.1",
        internalPort: target.port,
      });
    }
  });

  after(async () => {
    for (const a of agents) await a.close();
    await stack?.close();
    await tlsStack?.close();
    await proxy?.close();
    await children.killAll();
    await target?.close();
    await cert?.close();
  });

  /** Starts an agent from `env` and keeps it for the teardown. */
  function start(env: Record<string, string>): { agent: Agent; log: RelayLog } {
    const started = envAgent(env);
    agents.push(started.agent);
    return started;
  }

  it("ws:// relay: the tunnel comes up through the proxy's CONNECT and carries a SOCKS stream", async () => {
    const { agent, log } = start({
      UNDERPASS_RELAY_URL: relayUrl(stack),
      UNDERPASS_AGENT_TOKEN: stack.agentToken,
      HTTPS_PROXY: proxy.url(ALICE),
      // entries that do not cover the relay leave the proxy in use
      NO_PROXY: "127.0.0.1:1, .corp.example, 10.0.0.0/8",
    });
    try {
      await agent.waitUp(1, 15_000);
      assert.deepEqual(await proxy.connects(), [relayAuthority(stack)], await proxy.readLog());
      await assertCarries(stack);
      const chosen = log.lines().find((l) => l.msg === "the tunnel goes through the HTTP proxy");
      assert.equal(
        chosen?.["proxy"],
        `http://127.0.0.1:${proxy.port}`,
        "the proxy is named, without credentials",
      );
      assert.ok(!text(log).includes(ALICE.password), "the proxy password never reaches a log line");
    } finally {
      await agent.close();
    }
  });

  it("wss:// relay (https_proxy): TLS to the relay runs inside the CONNECT tunnel", async () => {
    const earlier = (await proxy.connects()).length;
    const { agent } = start({
      UNDERPASS_RELAY_URL: relayUrl(tlsStack, "wss"),
      UNDERPASS_AGENT_TOKEN: tlsStack.agentToken,
      UNDERPASS_CA: cert.certFile,
      https_proxy: proxy.url(ALICE),
    });
    try {
      await agent.waitUp(1, 15_000);
      assert.deepEqual((await proxy.connects()).slice(earlier), [relayAuthority(tlsStack)]);
      await assertCarries(tlsStack);
    } finally {
      await agent.close();
    }
  });

  for (const [what, credentials, status] of [
    ["wrong credentials", WRONG, /401 Unauthorized/],
    ["no credentials", undefined, /407 Proxy Authentication Required/],
  ] as const) {
    it(`${what}: the agent logs an error naming the proxy and its answer, and keeps retrying`, async () => {
      const { agent, log } = start({
        UNDERPASS_RELAY_URL: relayUrl(stack),
        UNDERPASS_AGENT_TOKEN: stack.agentToken,
        HTTPS_PROXY: proxy.url(credentials),
      });
      try {
        const failures = await waitFor(
          () => {
            const l = log.lines().filter((x) => x.msg === "tunnel connection failed");
            return l.length >= 2 ? l : undefined;
          },
          { timeoutMs: 15_000, what: "two failed connection attempts" },
        );
        const err = String(failures[0]?.["err"]);
        assert.match(err, new RegExp(`proxy http://127\\.0\\.0\\.1:${proxy.port} refused CONNECT`), err);
        assert.match(err, status, err);
        assert.equal(failures[0]?.["code"], "UP_ERR_AUTH");
        assert.ok(!log.lines().some((l) => l.msg === "relay answered the upgrade with HTTP status"));
        assert.equal(agent.upCount(), 0);
        assert.equal(await connected(stack), false, "the relay never saw the agent");
        assert.ok(!text(log).includes(WRONG.password), "the password never reaches a log line");
      } finally {
        await agent.close();
      }
    });
  }

  it("NO_PROXY covering the relay: the tunnel goes direct and the proxy sees nothing", async () => {
    const earlier = await proxy.connects();
    const { agent, log } = start({
      UNDERPASS_RELAY_URL: relayUrl(stack),
      UNDERPASS_AGENT_TOKEN: stack.agentToken,
      // through the proxy these credentials could never work: up means direct
      HTTPS_PROXY: proxy.url(WRONG),
      no_proxy: `other.example,127.0.0.1:${stack.relay.tunnelAddress.port}`,
    });
    try {
      await agent.waitUp(1, 15_000);
      await assertCarries(stack);
      assert.deepEqual(await proxy.connects(), earlier, "no CONNECT reached the proxy");
      assert.ok(
        log
          .lines()
          .some((l) => l.msg === "NO_PROXY covers the relay: the tunnel does not use the HTTP proxy"),
      );
    } finally {
      await agent.close();
    }
  });
});

/** A minimal CONNECT proxy over TLS with basic auth: an `https://` proxy. */
async function startTlsConnectProxy(
  cert: SelfSignedCert,
  credentials: ProxyCredentials,
): Promise<{ port: number; connects: string[]; close(): Promise<void> }> {
  const expected = `Basic ${Buffer.from(`${credentials.user}:${credentials.password}`).toString("base64")}`;
  const sockets = new Set<Duplex>();
  const connects: string[] = [];
  const server = createHttpsServer({ cert: readFileSync(cert.certFile), key: readFileSync(cert.keyFile) });
  server.on("connect", (req: IncomingMessage, client: Duplex, head: Buffer) => {
    sockets.add(client);
    client.on("error", () => {});
    client.on("close", () => sockets.delete(client));
    if (req.headers["proxy-authorization"] !== expected) {
      client.end(
        'HTTP/1.1 407 Proxy Authentication Required\r\nProxy-Authenticate: Basic realm="test"\r\n\r\n',
      );
      return;
    }
    connects.push(req.url ?? "");
    const m = /^(.+):(\d+)$/.exec(req.url ?? "");
    const upstream: Socket = connect(Number(m?.[2]), m?.[1] ?? "", () => {
      client.write("HTTP/1.1 200 Connection Established\r\n\r\n");
      if (head.length > 0) upstream.write(head);
      upstream.pipe(client);
      client.pipe(upstream);
    });
    sockets.add(upstream);
    upstream.on("close", () => sockets.delete(upstream));
    upstream.on("error", () => client.destroy());
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const address = server.address();
  assert.ok(address !== null && typeof address === "object");
  return {
    port: address.port,
    connects,
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

describe("the tunnel through an https:// proxy, from `underpass agent`", () => {
  const children = new ChildRegistry();
  const BOB: ProxyCredentials = { user: "bob", password: "tls-pr0xy-bob" };
  let cert: SelfSignedCert;
  let proxy: Awaited<ReturnType<typeof startTlsConnectProxy>>;
  let stack: Stack;

  before(async () => {
    cert = await makeSelfSignedCert({ commonName: "underpass test proxy" });
    proxy = await startTlsConnectProxy(cert, BOB);
    stack = await startStack({ agent: false });
  });

  after(async () => {
    await children.killAll();
    await stack?.close();
    await proxy?.close();
    await cert?.close();
  });

  const proxyUrl = (): string => `https://${BOB.user}:${BOB.password}@127.0.0.1:${proxy.port}`;

  it("TLS to the proxy, verified against NODE_EXTRA_CA_CERTS; the tunnel comes up through it", async () => {
    const agent = startAgentProcess({
      relayUrl: `ws://127.0.0.1:${stack.relay.tunnelAddress.port}/tunnel`,
      token: stack.agentToken,
      env: { HTTPS_PROXY: proxyUrl(), NODE_EXTRA_CA_CERTS: cert.certFile },
      registry: children,
    });
    try {
      await agent.waitForLog((l) => l.msg === "tunnel up", { timeoutMs: 20_000 });
      assert.ok(await connected(stack), agent.describe());
      assert.deepEqual(proxy.connects, [`127.0.0.1:${stack.relay.tunnelAddress.port}`]);
      assert.ok(!agent.stderr().includes(BOB.password), "the proxy password never reaches a log line");
    } finally {
      await agent.stop();
    }
  });

  it("a proxy certificate nobody vouches for is refused, said, and retried", async () => {
    const earlier = proxy.connects.length;
    const agent = startAgentProcess({
      relayUrl: `ws://127.0.0.1:${stack.relay.tunnelAddress.port}/tunnel`,
      token: stack.agentToken,
      env: { HTTPS_PROXY: proxyUrl(), UNDERPASS_RECONNECT_MAX_MS: "300" },
      registry: children,
    });
    try {
      const failures = await agent.waitForLog((l) => l.msg === "tunnel connection failed", { count: 2 });
      const err = String(failures[0]?.["err"]);
      assert.match(
        err,
        new RegExp(`proxy https://127\\.0\\.0\\.1:${proxy.port}: .*(self[- ]signed|certificate)`, "i"),
      );
      assert.equal(proxy.connects.length, earlier, "no CONNECT was sent over an unverified TLS");
    } finally {
      await agent.stop();
    }
  });
});
