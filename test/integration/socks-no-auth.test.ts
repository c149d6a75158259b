/**
 * `UNDERPASS_SOCKS_NO_AUTH`: read from the environment as `underpass cloud` reads it, then a
 * relay started with it serves clients without credentials in their own location, still
 * honours credentials offered, and turns wrong ones into an anonymous client.
 */
import assert from "node:assert/strict";
import type { Socket } from "node:net";
import { after, before, describe, it } from "node:test";
import { SocksClient } from "socks";
import { relayConfigFromEnv } from "../../cloud/config.js";
import type { SocksAuthenticated } from "../../cloud/events.js";
import { silentLogger } from "../../shared/logger.js";
import { waitFor } from "../helpers/ports.js";
import { type Stack, socksConnect, socksReply, startStack } from "../helpers/stack.js";
import { bannerEcho, readAll, startTarget, type Target } from "../helpers/targets.js";

describe("SOCKS without authentication (UNDERPASS_SOCKS_NO_AUTH)", () => {
  let stack: Stack;
  let target: Target;
  const open: Socket[] = [];
  const track = (s: Socket): Socket => {
    open.push(s);
    return s;
  };
  const authenticated: SocksAuthenticated[] = [];
  let stop = (): void => {};

  it("is read from the environment: on for 1/true/yes/on, off when unset, with its location", () => {
    const base = { UNDERPASS_DATA_DIR: "/nonexistent" };
    for (const v of ["1", "true", "YES", "on"]) {
      const c = relayConfigFromEnv({ ...base, UNDERPASS_SOCKS_NO_AUTH: v }, silentLogger());
      assert.equal(c.socksNoAuth, true, v);
      assert.equal(c.anonymousLocation, "default");
    }
    for (const env of [{}, { UNDERPASS_SOCKS_NO_AUTH: "0" }, { UNDERPASS_SOCKS_NO_AUTH: "no" }]) {
      assert.equal(relayConfigFromEnv({ ...base, ...env }, silentLogger()).socksNoAuth, false);
    }
    const yard = relayConfigFromEnv(
      { ...base, UNDERPASS_SOCKS_NO_AUTH: "1", UNDERPASS_SOCKS_NO_AUTH_LOCATION: "yard" },
      silentLogger(),
    );
    assert.equal(yard.anonymousLocation, "yard");
  });

  before(async () => {
    const env = relayConfigFromEnv(
      { UNDERPASS_SOCKS_NO_AUTH: "1", UNDERPASS_SOCKS_NO_AUTH_LOCATION: "yard" },
      silentLogger(),
    );
    target = await startTarget(bannerEcho());
    stack = await startStack({
      relay: { socksNoAuth: env.socksNoAuth ?? false, anonymousLocation: env.anonymousLocation ?? "" },
    });
    const yardAgent = await stack.addAgent("yard-agent", "yard");
    const agent = await stack.startAgent({ token: yardAgent.token });
    await agent.waitUp(1, 15_000);
    for (const [virtualHost, location] of [
      ["ftp.yard", "yard"],
      ["ftp.default", "default"],
    ] as const) {
      await stack.addMapping({
        virtualHost,
        virtualPort: 21,
        internalHost: "127.0.0.1",
        internalPort: target.port,
        location,
      });
    }
    stop = stack.relay.events.socksAuthenticated.subscribe((m) => authenticated.push(m));
  });

  after(async () => {
    stop();
    for (const s of open) s.destroy();
    await stack?.close();
    await target?.close();
  });

  it("serves a client without credentials in the anonymous location, and nowhere else", async () => {
    authenticated.length = 0;
    const s = track(await socksConnect(stack.socksPort, null, "ftp.yard", 21));
    assert.equal((await readAll(s, 11)).toString(), "220 ready\r\n");
    const elsewhere = await socksReply(stack.socksPort, null, "ftp.default", 21);
    track(elsewhere.socket);
    assert.equal(elsewhere.reply, 0x02, "the default location's mapping is out of reach");
    await waitFor(() => authenticated.length === 2, { timeoutMs: 5_000, what: "two authenticated events" });
    for (const a of authenticated) {
      assert.deepEqual([a.method, a.clientId, a.clientName, a.location], ["none", null, null, "yard"]);
    }
  });

  it("honours credentials a client offers anyway: it reaches its own location", async () => {
    authenticated.length = 0;
    const right = await socksReply(stack.socksPort, stack.client, "ftp.default", 21);
    track(right.socket);
    assert.equal(right.reply, 0x00);
    await waitFor(() => authenticated.length === 1, { timeoutMs: 5_000, what: "an authenticated event" });
    assert.deepEqual(
      [authenticated[0]?.method, authenticated[0]?.clientId, authenticated[0]?.location],
      ["password", stack.client.id, "default"],
    );
  });

  it("turns wrong credentials into an anonymous client rather than a refusal", async () => {
    const wrong = { username: stack.client.username, password: "not-it" };
    const yard = await socksReply(stack.socksPort, wrong, "ftp.yard", 21);
    track(yard.socket);
    assert.equal(yard.reply, 0x00);
    const other = await socksReply(stack.socksPort, wrong, "ftp.default", 21);
    track(other.socket);
    assert.equal(other.reply, 0x02);
  });

  it("lets an anonymous client BIND beside its own live connection, known by its address", async () => {
    const control = track(await socksConnect(stack.socksPort, null, "ftp.yard", 21));
    await readAll(control, 11);
    const client = new SocksClient({
      proxy: { host: "127.0.0.1", port: stack.socksPort, type: 5 },
      command: "bind",
      destination: { host: "0.0.0.0", port: 0 },
      timeout: 20_000,
    });
    const bound = new Promise<{ host: string; port: number }>((resolve, reject) => {
      client.once("bound", (info) => {
        track(info.socket as Socket);
        resolve(info.remoteHost!);
      });
      client.once("error", reject);
    });
    client.connect();
    const at = await bound;
    assert.equal(at.host, "127.0.0.1", "the agent listens where the target reaches it");
    assert.ok(at.port > 0);
  });
});
