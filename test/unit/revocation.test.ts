/**
 * The race revocation must not lose: a connection's store lookups (credentials, mapping) read
 * the old state, the deletion's disconnect runs before the connection is followed, and only the
 * re-check before the success reply can still refuse it. In memory: a store whose records can
 * be taken away, and LiveConnections as the relay has it.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { hashSecret } from "../../cloud/admin/secrets.js";
import type { Principal } from "../../cloud/socks/authenticate.js";
import { LiveConnections } from "../../cloud/socks/connections.js";
import { AccessWatch } from "../../cloud/socks/revocation.js";
import type { ClientRecord, MappingRecord, Store } from "../../cloud/store/store.js";

const POLICY = { requireAuth: true, anonymousLocation: "default" };
const PASSWORD = "ups_right-password-0000000000";
const CLIENT: ClientRecord = {
  id: "cl_1",
  name: "flow",
  location: "default",
  username: "flow-1",
  passwordHash: hashSecret(PASSWORD),
  createdAt: "",
};
const MAPPING: MappingRecord = {
  id: "mp_1",
  virtualHost: "svc.example",
  virtualPort: { start: 21, end: 21 },
  internalHost: "10.0.0.1",
  internalPort: { start: 21, end: 21 },
  location: "default",
  protocol: "tcp",
  description: "",
  createdAt: "",
  updatedAt: "",
};
const WHO: Principal = { clientId: CLIENT.id, clientName: CLIENT.name, location: "default" };
const CREDENTIALS = { username: CLIENT.username, password: PASSWORD };

function store(): {
  store: Store;
  lookups: () => number;
  clients: Map<string, ClientRecord>;
  mappings: Map<string, MappingRecord>;
} {
  const clients = new Map([[CLIENT.username, CLIENT]]);
  const mappings = new Map([[MAPPING.id, MAPPING]]);
  let lookups = 0;
  return {
    clients,
    mappings,
    lookups: () => lookups,
    store: {
      findClientByUsername: async (u: string) => {
        lookups++;
        return clients.get(u);
      },
      getMapping: async (id: string) => {
        lookups++;
        return mappings.get(id);
      },
    } as unknown as Store,
  };
}

describe("a revocation that raced with a connection's lookups", () => {
  it("costs nothing when no revocation happened since the connection began", async () => {
    const s = store();
    const live = new LiveConnections();
    const watch = new AccessWatch(live, () => assert.fail("not revoked"));
    watch.follow(WHO, CREDENTIALS);
    assert.equal(await watch.stillAllowed(s.store, POLICY, WHO, MAPPING), true);
    assert.equal(s.lookups(), 0, "no store lookup");
  });

  it("refuses when the client was deleted before the connection was followed", async () => {
    const s = store();
    const live = new LiveConnections();
    const watch = new AccessWatch(live, () => assert.fail("it was not followed yet"));
    // the deletion: the store first, then its disconnect, before follow()
    s.clients.delete(CLIENT.username);
    live.killByClient(CLIENT.id);
    watch.follow(WHO, CREDENTIALS);
    assert.equal(await watch.stillAllowed(s.store, POLICY, WHO, MAPPING), false);
  });

  it("refuses when the password was rotated, or the mapping changed or deleted, meanwhile", async () => {
    for (const change of ["rotate", "retarget", "delete"] as const) {
      const s = store();
      const live = new LiveConnections();
      const watch = new AccessWatch(live, () => {});
      watch.follow(WHO, CREDENTIALS);
      if (change === "rotate")
        s.clients.set(CLIENT.username, { ...CLIENT, passwordHash: hashSecret("ups_new") });
      if (change === "retarget") s.mappings.set(MAPPING.id, { ...MAPPING, internalHost: "10.0.0.2" });
      if (change === "delete") s.mappings.delete(MAPPING.id);
      live.killByMapping("mp_other"); // any revocation makes a connection that began before check again
      assert.equal(await watch.stillAllowed(s.store, POLICY, WHO, MAPPING), false, change);
    }
  });

  it("reaches a followed connection directly, client or mapping, and forgets it once stopped", () => {
    const live = new LiveConnections();
    const reasons: string[] = [];
    const a = new AccessWatch(live, (r) => reasons.push(`a: ${r}`));
    a.follow(WHO, CREDENTIALS);
    a.mappingId = MAPPING.id;
    const b = new AccessWatch(live, (r) => reasons.push(`b: ${r}`));
    b.follow({ ...WHO, clientId: "cl_2" }, null);
    assert.equal(live.pendingCount, 2);
    assert.equal(live.killByMapping(MAPPING.id), 1);
    b.stop();
    assert.equal(live.killByClient("cl_2"), 0);
    assert.deepEqual(reasons, ["a: mapping changed or deleted"]);
    assert.equal(live.pendingCount, 0);
  });
});
