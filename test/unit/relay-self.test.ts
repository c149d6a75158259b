import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { advertisedUrl, defaultRelayId, RELAY_ID } from "../../cloud/cluster/relay-self.js";
import { relayConfigFromEnv } from "../../cloud/config.js";
import { ValidationError } from "../../shared/errors.js";
import { silentLogger } from "../../shared/logger.js";

const VARS = { url: "UNDERPASS_RELAY_PUBLIC_URL", listen: "UNDERPASS_TUNNEL_LISTEN" };

describe("how a relay names itself", () => {
  it("keeps its id per host and port, and draws one for a port the system picks", () => {
    assert.equal(defaultRelayId("host-a", 8443), defaultRelayId("host-a", 8443));
    assert.notEqual(defaultRelayId("host-a", 8443), defaultRelayId("host-b", 8443));
    assert.notEqual(defaultRelayId("host-a", 8443), defaultRelayId("host-a", 8444));
    assert.notEqual(defaultRelayId("host-a", 0), defaultRelayId("host-a", 0));
    assert.match(defaultRelayId("host-a", 8443), /^rl_[0-9a-f]{12}$/);
    assert.match(defaultRelayId("host-a", 8443), RELAY_ID);
  });

  it("advertises the given URL, else the bound address, and nothing for a wildcard", () => {
    const bound = { host: "10.1.2.3", port: 8443 };
    assert.deepEqual(advertisedUrl("wss://r.example/tunnel", bound, "ws", "/tunnel", VARS), {
      url: "wss://r.example/tunnel",
    });
    assert.deepEqual(advertisedUrl(undefined, bound, "wss", "/tunnel", VARS), {
      url: "wss://10.1.2.3:8443/tunnel",
    });
    assert.deepEqual(advertisedUrl(undefined, { host: "::1", port: 1 }, "ws", "/tunnel", VARS), {
      url: "ws://[::1]:1/tunnel",
    });
    for (const host of ["0.0.0.0", "::"]) {
      const a = advertisedUrl(undefined, { host, port: 8443 }, "ws", "/tunnel", VARS);
      assert.equal(a.url, null);
      assert.ok(!a.url && /UNDERPASS_RELAY_PUBLIC_URL/.test(a.why), host);
    }
  });

  it("reads its settings from the environment and refuses what it cannot use, naming it", () => {
    const c = relayConfigFromEnv(
      {
        UNDERPASS_RELAY_ID: "relay-1",
        UNDERPASS_RELAY_PUBLIC_URL: "wss://relay-1.example:8443/tunnel",
        UNDERPASS_RELAY_ADMIN_URL: "https://relay-1.internal:8081/",
        UNDERPASS_RELAY_HEARTBEAT_MS: "500",
      },
      silentLogger(),
    );
    assert.equal(c.relayId, "relay-1");
    assert.equal(c.publicUrl, "wss://relay-1.example:8443/tunnel");
    assert.equal(c.adminUrl, "https://relay-1.internal:8081");
    assert.deepEqual(c.membership, { heartbeatMs: 500, liveMs: 5_000 });
    for (const [name, value] of [
      ["UNDERPASS_RELAY_ID", "has space"],
      ["UNDERPASS_RELAY_PUBLIC_URL", "http://x/tunnel"],
      ["UNDERPASS_RELAY_ADMIN_URL", "ws://x:1"],
      ["UNDERPASS_RELAY_LIVE_MS", "1500"],
    ] as const) {
      assert.throws(
        () => relayConfigFromEnv({ [name]: value }, silentLogger()),
        (e: unknown) => e instanceof ValidationError && e.message.includes(name),
        name,
      );
    }
  });
});
