/**
 * The private haproxy the cluster tests put in front of relays: it spreads SOCKS connections
 * over every relay (round robin, no affinity), checks each on its admin `/healthz`, and takes a
 * relay that stopped out of rotation within a few check periods.
 */
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { type Haproxy, startHaproxy } from "../helpers/haproxy.js";
import { waitFor } from "../helpers/ports.js";
import { type Stack, socksConnect, startStack } from "../helpers/stack.js";
import { readAll, startTarget, type Target } from "../helpers/targets.js";

describe("haproxy in front of two relays", () => {
  let a: Stack;
  let b: Stack;
  let lb: Haproxy;
  let target: Target;
  const opened = new Map<Stack, number>();

  before(async () => {
    target = await startTarget((s) => s.end(`${(s.address() as { port: number }).port}\n`));
    a = await startStack();
    b = await startStack();
    await a.addMapping({
      virtualHost: "who.corp",
      virtualPort: 1,
      internalHost: "127.0.0.1",
      internalPort: target.port,
    });
    // the same configuration on both relays, as a cluster would have it: one client works on either
    const exported = (await a.api("GET", "/v1/export")).body;
    assert.equal((await b.api("POST", "/v1/import", exported)).status, 200);
    for (const s of [a, b])
      s.relay.events.socksOpened.subscribe(() => opened.set(s, (opened.get(s) ?? 0) + 1));
    lb = await startHaproxy({
      relays: [a, b].map((s, i) => ({
        name: `relay-${i + 1}`,
        socksPort: s.socksPort,
        tunnelPort: s.relay.tunnelAddress.port,
        adminPort: s.relay.adminAddress.port,
      })),
    });
  });
  after(async () => {
    await lb?.stop();
    await a?.close();
    await b?.close();
    await target?.close();
  });

  it("checks both relays healthy, spreads connections over both, and drops one that stops", async () => {
    await waitFor(async () => ((await lb.upServers("socks")).length === 2 ? true : undefined), {
      timeoutMs: 20_000,
      intervalMs: 100,
      what: "both relays up in haproxy",
    });
    await b.startAgent({ token: a.agentToken }).then((agent) => agent.waitUp(1, 20_000));
    for (let i = 0; i < 6; i++) {
      const c = await socksConnect(lb.socksPort, a.client, "who.corp", 1);
      await readAll(c);
    }
    assert.deepEqual(
      [opened.get(a), opened.get(b)],
      [3, 3],
      "round robin: half the connections on each relay",
    );
    await b.close();
    await waitFor(async () => ((await lb.upServers("socks")).join() === "relay-1" ? true : undefined), {
      timeoutMs: 20_000,
      intervalMs: 100,
      what: "the stopped relay out of rotation",
    });
    for (let i = 0; i < 4; i++) {
      const c = await socksConnect(lb.socksPort, a.client, "who.corp", 1);
      await readAll(c);
    }
  });
});
