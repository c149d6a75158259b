/**
 * No token or password ever reaches a log line, at debug level, on either side: not the agent
 * token (good or wrong), not a SOCKS password (good or wrong), not the admin token.
 */
import assert from "node:assert/strict";
import { readdir, readFile } from "node:fs/promises";
import { join } from "node:path";
import { Writable } from "node:stream";
import { after, before, describe, it } from "node:test";
import { startAgent } from "../../agent/agent.js";
import { allowAll } from "../../agent/policy.js";
import { createLogger } from "../../shared/logger.js";
import { waitFor } from "../helpers/ports.js";
import { captureRelayLog, type RelayLog } from "../helpers/relay-log.js";
import { ADMIN_TOKEN, type Stack, socksConnect, socksReply, startStack } from "../helpers/stack.js";
import { bannerEcho, readAll, startTarget, type Target } from "../helpers/targets.js";

describe("secrets never reach the logs", () => {
  let relayLog: RelayLog;
  let agentText = "";
  let stack: Stack;
  let target: Target;

  before(async () => {
    relayLog = captureRelayLog();
    target = await startTarget(bannerEcho());
    stack = await startStack({ relay: { logger: relayLog.logger, audit: relayLog.audit }, agent: false });
    const sink = new Writable({
      write(chunk: Buffer, _enc, cb) {
        agentText += chunk.toString();
        cb();
      },
    });
    const agentLogger = createLogger({ name: "agent", level: "debug", destination: sink });
    const agent = startAgent({
      relayUrl: `ws://127.0.0.1:${stack.relay.tunnelAddress.port}/tunnel`,
      token: stack.agentToken,
      policy: allowAll(),
      logger: agentLogger,
      backoff: { baseMs: 50, maxMs: 500 },
    });
    stack.agent = agent;
    await agent.waitUp(1, 15_000);
    await stack.addMapping({
      virtualHost: "svc.corp",
      virtualPort: 21,
      internalHost: "127.0.0.1",
      internalPort: target.port,
    });
  });

  after(async () => {
    await stack.agent?.close();
    await stack?.close();
    await target?.close();
  });

  it("keeps tokens and passwords out of relay and agent logs and out of the data dir", async () => {
    const ok = await socksConnect(stack.socksPort, stack.client, "svc.corp", 21);
    assert.equal((await readAll(ok, 11)).toString(), "220 ready\r\n");
    ok.destroy();
    const wrongPassword = "wrong-password-0xDEADBEEF";
    const bad = await socksReply(
      stack.socksPort,
      { username: stack.client.username, password: wrongPassword },
      "svc.corp",
      21,
    );
    bad.socket.destroy();
    assert.equal(bad.reply, "auth-failed");
    const wrongToken = "upagt_wrong-token-0123456789abcdef";
    const impostor = startAgent({
      relayUrl: `ws://127.0.0.1:${stack.relay.tunnelAddress.port}/tunnel`,
      token: wrongToken,
      policy: allowAll(),
      logger: createLogger({
        name: "impostor",
        level: "debug",
        destination: new Writable({ write: (_c, _e, cb) => cb() }),
      }),
      backoff: { baseMs: 50, maxMs: 500 },
    });
    try {
      await waitFor(() => impostor.clients[0]!.lastRefusal !== null, {
        timeoutMs: 10_000,
        what: "the wrong token to be refused",
      });
    } finally {
      await impostor.close();
    }
    assert.equal((await stack.api("GET", "/v1/agents")).status, 200);

    const relayText = relayLog
      .lines()
      .map((l) => JSON.stringify(l))
      .join("\n");
    assert.match(relayText, /socks authentication failed/, "the capture really holds the relay's lines");
    assert.match(relayText, /token/i, "the refusal of the wrong token is logged");
    assert.match(agentText, /tunnel up/, "the capture really holds the agent's lines");
    const secrets = {
      "agent token": stack.agentToken,
      "client password": stack.client.password,
      "wrong password": wrongPassword,
      "wrong agent token": wrongToken,
      "admin token": ADMIN_TOKEN,
    };
    // the store and the audit trail beside it
    const files = (await readdir(stack.dataDir, { recursive: true, withFileTypes: true }))
      .filter((e) => e.isFile())
      .map((e) => join(e.parentPath, e.name).slice(stack.dataDir.length + 1));
    const stored = (
      await Promise.all(files.map((f) => readFile(join(stack.dataDir, f), "utf8").catch(() => "")))
    ).join("\n");
    assert.ok(stored.length > 0, "the data dir holds the store");
    for (const [what, secret] of Object.entries(secrets)) {
      assert.ok(!relayText.includes(secret), `${what} in the relay log`);
      assert.ok(!agentText.includes(secret), `${what} in the agent log`);
      assert.ok(!stored.includes(secret), `${what} in the data dir`);
    }
  });
});
