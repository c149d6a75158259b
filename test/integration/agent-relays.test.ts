/**
 * The agent's relays come and go at run time, a pool of tunnels each (agent/relay-pool.ts):
 * `addRelay()` brings tunnels up to one more relay, `removeRelay()` closes those to one and
 * leaves the others alone. Two relays in this process on port 0 share the agent through a copy
 * of one store.
 */
import assert from "node:assert/strict";
import { mkdir, mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { type Agent, startAgent } from "../../agent/agent.js";
import { allowAll } from "../../agent/policy.js";
import { waitFor } from "../helpers/ports.js";
import { type Stack, startStack, testLogger } from "../helpers/stack.js";
import { copyStoreFiles } from "../helpers/store-files.js";

describe("the agent's relays at run time", () => {
  let work: string;
  let a: Stack;
  let b: Stack;
  let agent: Agent | undefined;
  const urlOf = (s: Stack): string => `ws://127.0.0.1:${s.relay.tunnelAddress.port}/tunnel`;
  const connected = async (s: Stack, id: string): Promise<{ connected: boolean; tunnels: number }> => {
    const list = (await s.api("GET", "/v1/agents")).body as Array<{
      id: string;
      connected: boolean;
      tunnels: number;
    }>;
    const entry = list.find((x) => x.id === id);
    assert.ok(entry, `agent ${id} on the relay`);
    return entry;
  };

  before(async () => {
    work = await mkdtemp(join(tmpdir(), "underpass-relays-"));
    await mkdir(join(work, "a"));
    await mkdir(join(work, "b"));
    a = await startStack({ agent: false, dataDir: join(work, "a") });
    await copyStoreFiles(join(work, "a"), join(work, "b"));
    b = await startStack({ agent: false, dataDir: join(work, "b") });
  });

  after(async () => {
    await agent?.close();
    await a?.close();
    await b?.close();
    if (work) await rm(work, { recursive: true, force: true });
  });

  it("adds a relay's pool, then removes another's, the rest untouched", async () => {
    agent = startAgent({
      relayUrls: [urlOf(a)],
      token: a.agentToken,
      policy: allowAll(),
      logger: testLogger("agent"),
      tunnels: 2,
      backoff: { baseMs: 50, maxMs: 500 },
    });
    await agent.waitUp(2, 15_000);
    assert.deepEqual(agent.relays(), [urlOf(a)]);

    agent.addRelay(urlOf(b));
    agent.addRelay(urlOf(b)); // once is enough
    assert.deepEqual(agent.relays(), [urlOf(a), urlOf(b)]);
    await agent.waitUp(4, 15_000);
    assert.equal(agent.upCount(urlOf(b)), 2);
    assert.equal(agent.clients.length, 4);
    await waitFor(async () => (await connected(b, a.agentId)).tunnels === 2, {
      what: "two tunnels on the added relay",
    });

    await agent.removeRelay(urlOf(a));
    assert.deepEqual(agent.relays(), [urlOf(b)]);
    await waitFor(async () => !(await connected(a, a.agentId)).connected, {
      what: "the removed relay to see the agent gone",
    });
    assert.equal(agent.upCount(), 2);
    assert.equal((await connected(b, a.agentId)).tunnels, 2, "the other relay's tunnels stay up");
    await agent.waitUp(undefined, 1_000); // all of the remaining ones
  });
});
