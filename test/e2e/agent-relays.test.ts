/**
 * One `underpass agent` and several relays in UNDERPASS_RELAY_URL: it keeps its pool of tunnels
 * to every one, each relay sees the agent connected and carries SOCKS streams through it, and a
 * relay that dies takes only its own tunnels along. Two `underpass cloud` processes share the
 * agent because the second starts on a copy of the first's store (same token hash, mappings).
 */
import assert from "node:assert/strict";
import { mkdir, mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { ChildRegistry } from "../helpers/clients.js";
import { waitFor } from "../helpers/ports.js";
import { type CliProcess, type CloudProcess, startAgentProcess, startCloud } from "../helpers/processes.js";
import { socksConnect } from "../helpers/stack.js";
import { copyStoreFiles } from "../helpers/store-files.js";
import { bannerEcho, readAll, startTarget, type Target } from "../helpers/targets.js";

const ADMIN_TOKEN = "agent-relays-admin-token-0123456789";
/** The embedded store's file in a data dir (cloud/store/file-store.ts). */
const TUNNELS = 2;

describe("underpass agent with two relays in UNDERPASS_RELAY_URL", () => {
  const children = new ChildRegistry();
  let work: string;
  let target: Target;
  let a: CloudProcess;
  let b: CloudProcess;
  let agent: CliProcess;
  let agentId: string;
  let client: { username: string; password: string };

  before(async () => {
    work = await mkdtemp(join(tmpdir(), "underpass-e2e-relays-"));
    target = await startTarget(bannerEcho("220 echo\r\n"));
    a = await startCloud({ dataDir: join(work, "a"), adminToken: ADMIN_TOKEN, registry: children });
    const rec = await a.admin.addAgent("two-relay-agent");
    agentId = rec.id;
    client = await a.admin.addClient("two-relay-flow");
    await a.admin.addMapping({
      virtualHost: "echo.corp.example",
      virtualPort: 21,
      internalHost: "127.0.0.1",
      internalPort: target.port,
    });
    // the second relay starts on a copy of the first's store: the same agent, client and mapping
    await mkdir(join(work, "b"));
    await copyStoreFiles(join(work, "a"), join(work, "b"));
    b = await startCloud({ dataDir: join(work, "b"), adminToken: ADMIN_TOKEN, registry: children });
    agent = startAgentProcess({
      relayUrl: `${a.relayUrl},${b.relayUrl}`,
      token: rec.token,
      allow: `127.0.0.1:${target.port}`,
      env: { UNDERPASS_TUNNELS: String(TUNNELS), UNDERPASS_RECONNECT_MAX_MS: "500" },
      registry: children,
    });
  });

  after(async () => {
    await agent?.stop();
    await children.killAll();
    await target?.close();
    if (work) await rm(work, { recursive: true, force: true });
  });

  /** A SOCKS CONNECT through `relay` reaches the echo target and back. */
  async function carries(relay: CloudProcess): Promise<void> {
    const s = await socksConnect(relay.ports.socks, client, "echo.corp.example", 21);
    try {
      assert.equal((await readAll(s, 10)).toString(), "220 echo\r\n");
      s.write("NOOP\r\n");
      assert.equal((await readAll(s, 6)).toString(), "NOOP\r\n");
    } finally {
      s.destroy();
    }
  }

  it("keeps its pool of tunnels to each relay, and each relay carries streams through it", async () => {
    for (const relay of [a, b]) {
      const entry = await waitFor(
        async () => {
          const e = await relay.admin.agent(agentId);
          return e.tunnels === TUNNELS ? e : undefined;
        },
        { timeoutMs: 20_000, what: `${TUNNELS} tunnels to ${relay.relayUrl}\n${agent.describe()}` },
      );
      assert.equal(entry.connected, true);
    }
    // the relays count a tunnel once they said welcome; the agent logs it once it heard that
    const up = await agent.waitForLog((l) => l.msg === "tunnel up", { count: 2 * TUNNELS });
    assert.deepEqual(
      [...new Set(up.map((l) => String(l["relay"])))].sort(),
      [a.relayUrl, b.relayUrl].sort(),
      "the log says which relay each tunnel is to",
    );
    await carries(a);
    await carries(b);
  });

  it("a relay that dies takes only its own tunnels: the other relay carries on, the agent redials", async () => {
    const downBefore = agent
      .logs()
      .filter((l) => l.msg === "tunnel down" && l["relay"] === a.relayUrl).length;
    a.kill("SIGKILL");
    await a.exited;
    await agent.waitForLog((l) => l.msg === "tunnel down" && l["relay"] === a.relayUrl, {
      count: downBefore + TUNNELS,
    });
    assert.equal((await b.admin.agent(agentId)).tunnels, TUNNELS, "the other relay's tunnels stay up");
    await carries(b);
    await agent.waitForLog((l) => l.msg === "reconnecting to the relay" && l["relay"] === a.relayUrl);
    assert.ok(agent.running(), agent.describe());
  });
});
