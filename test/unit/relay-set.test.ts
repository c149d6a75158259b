import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { agentConfigFromEnv } from "../../agent/config.js";
import { learnedRelays, type RelayReport } from "../../agent/relay-set.js";
import { silentLogger } from "../../shared/logger.js";

const A = { id: "relay-a", url: "wss://a.example/tunnel" };
const B = { id: "relay-b", url: "wss://b.example/tunnel" };
const C = { id: "relay-c", url: "wss://c.example/tunnel" };
const BALANCER = "wss://relays.example/tunnel";

function report(url: string, relayId: string | null, relays: RelayReport["relays"], up = true): RelayReport {
  return { url, up, relayId, relays };
}

describe("the relays an agent learns", () => {
  it("keeps a pool to every relay a connected relay names, not twice the one it bootstrapped with", () => {
    assert.deepEqual(learnedRelays([A.url], [report(A.url, A.id, [A, B, C])]), [B.url, C.url]);
    // bootstrapped through a balancer that landed on B: B is not dialled again by its own URL
    assert.deepEqual(learnedRelays([BALANCER], [report(BALANCER, B.id, [A, B, C])]), [A.url, C.url]);
  });

  it("hears the union of the relays that are up, and none that are down", () => {
    const reports = [
      report(A.url, A.id, [A, B]),
      report(B.url, B.id, [A, B]),
      // C lost its database: it still names itself, and is kept while its tunnel is up
      report(C.url, C.id, [A, B, C]),
    ];
    assert.deepEqual(learnedRelays([A.url], reports), [B.url, C.url]);
    // C is down: only A and B are heard, and they no longer name it
    const down = [
      report(A.url, A.id, [A, B]),
      report(B.url, B.id, [A, B]),
      report(C.url, C.id, [A, B, C], false),
    ];
    assert.deepEqual(learnedRelays([A.url], down), [B.url]);
  });

  it("changes nothing while it hears no relay at all", () => {
    assert.equal(
      learnedRelays([A.url], [report(A.url, A.id, [A, B], false), report(B.url, B.id, [A, B], false)]),
      null,
    );
    // an older relay tells no set: nothing is learned from it, nothing dropped
    assert.equal(learnedRelays([A.url], [report(A.url, null, null)]), null);
    assert.deepEqual(learnedRelays([A.url], [report(A.url, A.id, [])]), []);
  });
});

describe("the relays an agent may dial when told", () => {
  const env = (extra: Record<string, string> = {}) => ({
    UNDERPASS_RELAY_URL: "wss://relay-a.example/tunnel",
    UNDERPASS_AGENT_TOKEN: "upa_0123456789abcdef0123",
    UNDERPASS_ALLOW: "10.0.0.0/8:21",
    ...extra,
  });

  it("holds a told URL to the rule of UNDERPASS_RELAY_URL: no ws:// across a network unless allowed", () => {
    const strict = agentConfigFromEnv(env(), silentLogger());
    assert.equal(strict.mayDial?.("wss://relay-b.example/tunnel"), true);
    assert.equal(strict.mayDial?.("ws://127.0.0.1:8443/tunnel"), true);
    assert.equal(strict.mayDial?.("ws://relay-b.example:8443/tunnel"), false);
    const insecure = agentConfigFromEnv(env({ UNDERPASS_INSECURE_TUNNEL: "1" }), silentLogger());
    assert.equal(insecure.mayDial?.("ws://relay-b.example:8443/tunnel"), true);
  });
});
