/**
 * Agent identity on a real relay with real agents: every tunnel is listed with its source
 * address, host name and instance; a pool of one instance is one instance; a second instance
 * of the same token is audited and let in, unless the agent is single-instance, when its hello
 * is refused with a coded reason the agent logs while the first instance keeps serving.
 */
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { type Agent, startAgent } from "../../agent/agent.js";
import { allowAll } from "../../agent/policy.js";
import type { TunnelSecondInstance } from "../../cloud/events.js";
import { GOAWAY_CODE } from "../../shared/tunnel/constants.js";
import { helloFrom } from "../helpers/flood.js";
import { waitFor } from "../helpers/ports.js";
import { scrape } from "../helpers/prometheus.js";
import { captureRelayLog } from "../helpers/relay-log.js";
import { type Json, mapEcho, type Stack, socksConnect, startStack, testLogger } from "../helpers/stack.js";
import { readAll, type Target } from "../helpers/targets.js";

describe("agent identity", () => {
  let stack: Stack;
  let target: Target;
  const agents: Agent[] = [];
  const heard: TunnelSecondInstance[] = [];
  let stopHearing = (): void => {};

  const agentOf = (
    hostName: string,
    instanceId: string,
    tunnels: number,
    logger = testLogger("agent"),
  ): Agent => {
    const a = startAgent({
      relayUrl: `ws://127.0.0.1:${stack.relay.tunnelAddress.port}/tunnel`,
      token: stack.agentToken,
      policy: allowAll(),
      logger,
      tunnels,
      backoff: { baseMs: 50, maxMs: 300 },
      identity: { hostName, instanceId },
    });
    agents.push(a);
    return a;
  };
  const listed = async (): Promise<Json> => {
    const r = await stack.api("GET", "/v1/agents");
    assert.equal(r.status, 200);
    return r.body.find((a: Json) => a.id === stack.agentId);
  };
  const audited = async (): Promise<Json[]> =>
    (await stack.api("GET", "/v1/audit?event=agent.second-instance&limit=1000")).body.events;

  before(async () => {
    stack = await startStack({ agent: false, relay: { bounds: { summaryPeriodMs: 500 } } });
    stopHearing = stack.relay.events.tunnelSecondInstance.subscribe((m) => heard.push(m));
    target = await mapEcho(stack, "echo.corp", "220 site\r\n");
  });

  after(async () => {
    stopHearing();
    for (const a of agents) await a.close();
    await target?.close();
    await stack?.close();
  });

  it("lists each tunnel with its relay, source address, host name and instance; a pool is one instance", async () => {
    const first = agentOf("gw-a.corp", "aaaaaaaaaaaaaaaa", 3);
    await first.waitUp(3, 15_000);
    const a = await listed();
    assert.equal(a.connected, true);
    assert.equal(a.tunnels, 3);
    assert.equal(a.singleInstance, false);
    assert.equal(a.links.length, 3);
    for (const l of a.links) {
      assert.deepEqual(Object.keys(l).sort(), [
        "connectedAt",
        "hostName",
        "instanceId",
        "relayId",
        "remoteAddress",
        "tunnelId",
        "version",
      ]);
      assert.equal(l.relayId, stack.relay.events.relayId);
      assert.match(l.tunnelId, /^tn_/);
      assert.match(l.remoteAddress, /^127\.0\.0\.1:\d+$/);
      assert.equal(l.hostName, "gw-a.corp");
      assert.equal(l.instanceId, "aaaaaaaaaaaaaaaa");
    }
    // the old fields stay as they were: the oldest tunnel's
    assert.equal(a.remoteAddress, a.links[0].remoteAddress);
    assert.equal(a.connectedAt, a.links[0].connectedAt);
    assert.equal(heard.length, 0, "tunnels of one instance are not a second instance");
    assert.deepEqual(await audited(), []);
  });

  it("audits a second instance and lets it in when the agent is not single-instance", async () => {
    const second = agentOf("gw-b.corp", "bbbbbbbbbbbbbbbb", 1);
    await second.waitUp(1, 15_000);
    const a = await listed();
    assert.equal(a.links.length, 4);
    assert.deepEqual([...new Set(a.links.map((l: Json) => l.hostName))].sort(), ["gw-a.corp", "gw-b.corp"]);
    assert.equal(heard.length, 1);
    assert.equal(heard[0]?.refused, false);
    assert.equal(heard[0]?.tunnel.instanceId, "bbbbbbbbbbbbbbbb");
    assert.deepEqual(
      heard[0]?.connected.map((c) => c.instanceId),
      ["aaaaaaaaaaaaaaaa"],
    );
    const entries = await waitFor(async () => {
      const e = await audited();
      return e.length === 1 ? e : undefined;
    });
    assert.equal(entries[0].hostName, "gw-b.corp");
    assert.equal(entries[0].refused, false);
    assert.equal(entries[0].connected[0].hostName, "gw-a.corp");
    await second.close();
    await waitFor(async () => ((await listed()).links.length === 3 ? true : undefined), {
      what: "the second instance's tunnel to go",
    });
  });

  it("refuses a single-instance agent's second instance with a coded reason; the first keeps serving", async () => {
    const set = await stack.api("PATCH", `/v1/agents/${stack.agentId}`, { singleInstance: true });
    assert.equal(set.status, 200, JSON.stringify(set.body));
    assert.equal(set.body.singleInstance, true);
    assert.equal(set.body.links.length, 3, "the tunnels stay");

    const log = captureRelayLog();
    const intruder = agentOf("gw-c.corp", "cccccccccccccccc", 1, log.logger);
    const refusal = await waitFor(() => intruder.clients[0]?.lastRefusal, {
      timeoutMs: 15_000,
      what: "the second instance to be refused",
    });
    assert.match(refusal, /single-instance/);
    assert.match(refusal, /gw-a\.corp/, "it names where the first instance runs");
    const line = await waitFor(() =>
      log.lines().find((l) => l["code"] === "UP_ERR_SECOND_INSTANCE" && l.level >= 50),
    );
    assert.equal(line["goaway"], GOAWAY_CODE.SECOND_INSTANCE);
    assert.equal(intruder.upCount(), 0);

    // an agent that sends no instance id, from another address, is another instance too
    const old = await helloFrom(stack.relay.tunnelAddress.port, stack.agentToken, "127.0.0.3");
    assert.ok(typeof old !== "number" && old.type === "goaway", "refused");
    assert.equal(old.code, GOAWAY_CODE.LIMIT_EXCEEDED, "in a code it knows");
    assert.match(old.reason, /single-instance/);

    // the first instance is untouched: its three tunnels and a connection through them
    const a = await listed();
    assert.deepEqual(
      a.links.map((l: Json) => l.instanceId),
      ["aaaaaaaaaaaaaaaa", "aaaaaaaaaaaaaaaa", "aaaaaaaaaaaaaaaa"],
    );
    const s = await socksConnect(stack.socksPort, stack.client, "echo.corp", 21);
    assert.equal((await readAll(s, 10)).toString(), "220 site\r\n");
    s.destroy();
    const refused = heard.filter((m) => m.refused);
    assert.ok(refused.length >= 2, `${refused.length} refused second instances heard`);
    // audited, rate-limited per agent: one by one, or in a summary that counts them
    await waitFor(
      async () => {
        const e = await audited();
        const one = e.filter((x: Json) => x.refused === true).length;
        const summed = e.reduce((n: number, x: Json) => n + (x.summary === true ? x.suppressed : 0), 0);
        return one + summed >= refused.length ? true : undefined;
      },
      { what: "the refused instances in the audit trail" },
    );
    const m = await scrape(stack);
    assert.equal(m.value("underpass_agent_second_instances_total", { outcome: "admitted" }), 1);
    // the refused instance keeps trying meanwhile: at least those heard so far
    assert.ok(
      (m.value("underpass_agent_second_instances_total", { outcome: "refused" }) ?? 0) >= refused.length,
    );
    const rejected = (await stack.api("GET", "/v1/audit?event=agent.rejected&limit=100")).body.events;
    assert.ok(rejected.some((e: Json) => e.code === "UP_ERR_SECOND_INSTANCE"));

    // once the first instance leaves, the waiting one takes over by itself
    await agents[0]!.close();
    await intruder.waitUp(1, 15_000);
    const now = await listed();
    assert.deepEqual(
      now.links.map((l: Json) => l.hostName),
      ["gw-c.corp"],
    );
  });
});
