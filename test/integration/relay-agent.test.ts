import assert from "node:assert/strict";
import { createHash, randomBytes } from "node:crypto";
import { once } from "node:events";
import type { Socket } from "node:net";
import { after, before, describe, it } from "node:test";
import { freePortRange, waitFor } from "../helpers/ports.js";
import { type Stack, socksConnect, socksReply, startStack } from "../helpers/stack.js";
import { bannerEcho, readAll, startTarget, type Target } from "../helpers/targets.js";

describe("relay and agent over real sockets", () => {
  let stack: Stack;
  let banner: Target;
  let ranged: Target[] = [];
  let rangeStart = 0;
  const open: Socket[] = [];
  const track = (s: Socket): Socket => {
    open.push(s);
    return s;
  };

  before(async () => {
    banner = await startTarget(bannerEcho());
    const range = await freePortRange(3);
    rangeStart = range.start;
    ranged = await Promise.all(
      [0, 1, 2].map((i) => startTarget((s) => s.end(`port ${range.start + i}\n`), { port: range.start + i })),
    );
    stack = await startStack();
    await stack.addMapping({
      virtualHost: "ftp.corp.example",
      virtualPort: 21,
      internalHost: "127.0.0.1",
      internalPort: banner.port,
    });
    await stack.addMapping({
      virtualHost: "10.99.0.1",
      virtualPort: 2121,
      internalHost: "127.0.0.1",
      internalPort: banner.port,
    });
    await stack.addMapping({
      virtualHost: "fd00::21",
      virtualPort: 21,
      internalHost: "127.0.0.1",
      internalPort: banner.port,
    });
    await stack.addMapping({
      virtualHost: "ftp.corp.example",
      virtualPort: "50000-50002",
      internalHost: "127.0.0.1",
      internalPort: `${range.start}-${range.end}`,
    });
    await stack.addMapping({
      virtualHost: "refused.corp",
      virtualPort: 1,
      internalHost: "127.0.0.1",
      internalPort: 1,
    });
    await stack.addMapping({
      virtualHost: "nowhere.corp",
      virtualPort: 21,
      internalHost: "does-not-exist.invalid",
      internalPort: 21,
    });
  });

  after(async () => {
    for (const s of open) s.destroy();
    await stack?.close();
    await banner?.close();
    for (const t of ranged) await t.close();
  });

  it("connects by domain name; the target's greeting arrives right after the reply", async () => {
    const s = track(await socksConnect(stack.socksPort, stack.client, "ftp.corp.example", 21));
    const greeting = await readAll(s, 11);
    assert.equal(greeting.toString(), "220 ready\r\n");
    s.write("NOOP\r\n");
    assert.equal((await readAll(s, 6)).toString(), "NOOP\r\n");
  });

  it("matches the virtual host case-insensitively", async () => {
    const s = track(await socksConnect(stack.socksPort, stack.client, "FTP.Corp.EXAMPLE", 21));
    assert.equal((await readAll(s, 11)).toString(), "220 ready\r\n");
  });

  it("connects by IPv4 and IPv6 literal", async () => {
    const v4 = track(await socksConnect(stack.socksPort, stack.client, "10.99.0.1", 2121));
    assert.equal((await readAll(v4, 11)).toString(), "220 ready\r\n");
    const v6 = track(await socksConnect(stack.socksPort, stack.client, "fd00:0:0:0::21", 21));
    assert.equal((await readAll(v6, 11)).toString(), "220 ready\r\n");
  });

  it("translates a port range with the offset arithmetic", async () => {
    for (let i = 0; i < 3; i++) {
      const s = track(await socksConnect(stack.socksPort, stack.client, "ftp.corp.example", 50000 + i));
      assert.equal((await readAll(s)).toString(), `port ${rangeStart + i}\n`);
    }
  });

  it("carries a half-close end to end, and the other direction keeps flowing", async () => {
    const s = track(await socksConnect(stack.socksPort, stack.client, "ftp.corp.example", 21));
    await readAll(s, 11);
    s.end("last words\r\n");
    const rest = await readAll(s);
    assert.equal(rest.toString(), "last words\r\nbye\r\n");
  });

  it("moves 32 MiB both ways intact", async () => {
    const echo = await startTarget((sock) => sock.pipe(sock));
    try {
      const m = await stack.addMapping({
        virtualHost: "echo.corp",
        virtualPort: 7,
        internalHost: "127.0.0.1",
        internalPort: echo.port,
      });
      assert.ok(m.id);
      const s = track(await socksConnect(stack.socksPort, stack.client, "echo.corp", 7));
      const data = randomBytes(32 * 1024 * 1024);
      const received = readAll(s, data.length, 60_000);
      s.end(data);
      const got = await received;
      assert.equal(
        createHash("sha256").update(got).digest("hex"),
        createHash("sha256").update(data).digest("hex"),
      );
    } finally {
      await echo.close();
    }
  });

  it("answers the reply codes of the contract", async () => {
    const c = stack.client;
    const cases: Array<[string, number, number | string]> = [
      ["ftp.corp.example", 22, 0x02], // unmapped port
      ["other.corp.example", 21, 0x02], // unmapped host
      ["127.0.0.1", banner.port, 0x02], // the internal address used directly
      ["refused.corp", 1, 0x05], // target refuses
      ["nowhere.corp", 21, 0x04], // internal host does not resolve
    ];
    for (const [host, port, want] of cases) {
      const { reply, socket } = await socksReply(stack.socksPort, c, host, port);
      track(socket);
      assert.equal(reply, want, `${host}:${port}`);
    }
    const udp = await socksReply(stack.socksPort, c, "ftp.corp.example", 21, 0x03);
    track(udp.socket);
    assert.equal(udp.reply, 0x07);
  });

  it("refuses bad credentials and clients that offer no password method", async () => {
    const bad = await socksReply(
      stack.socksPort,
      { username: stack.client.username, password: "wrong" },
      "ftp.corp.example",
      21,
    );
    track(bad.socket);
    assert.equal(bad.reply, "auth-failed");
    const none = await socksReply(stack.socksPort, null, "ftp.corp.example", 21);
    track(none.socket);
    assert.equal(none.reply, "no-method");
  });

  it("keeps a client to its own location's mappings, and says 0x03 when no agent serves it", async () => {
    const other = await stack.addClient("flow-b", "berlin");
    const denied = await socksReply(stack.socksPort, other, "ftp.corp.example", 21);
    track(denied.socket);
    assert.equal(denied.reply, 0x02, "a berlin client cannot reach default's mapping");
    await stack.addMapping({
      virtualHost: "ftp.berlin",
      virtualPort: 21,
      internalHost: "127.0.0.1",
      internalPort: banner.port,
      location: "berlin",
    });
    const noAgent = await socksReply(stack.socksPort, other, "ftp.berlin", 21);
    track(noAgent.socket);
    assert.equal(noAgent.reply, 0x03);
  });

  it("resets the client when the target resets", async () => {
    const rst = await startTarget((sock) => {
      sock.write("partial");
      sock.on("data", () => sock.resetAndDestroy());
    });
    try {
      await stack.addMapping({
        virtualHost: "rst.corp",
        virtualPort: 9,
        internalHost: "127.0.0.1",
        internalPort: rst.port,
      });
      const s = track(await socksConnect(stack.socksPort, stack.client, "rst.corp", 9));
      const outcome = await new Promise<string>((resolve) => {
        s.on("error", (err: NodeJS.ErrnoException) => resolve(err.code ?? err.message));
        s.on("end", () => resolve("clean end"));
        s.once("data", () => s.write("go"));
      });
      assert.equal(outcome, "ECONNRESET");
    } finally {
      await rst.close();
    }
  });

  it("enforces the agent's local policy: 0x02 for a target it refuses, 0x04 for a name it cannot resolve", async () => {
    const guarded = await startStack({ allow: `127.0.0.1:${banner.port};does-not-exist.invalid:21` });
    try {
      await guarded.addMapping({
        virtualHost: "ok.corp",
        virtualPort: 21,
        internalHost: "127.0.0.1",
        internalPort: banner.port,
      });
      await guarded.addMapping({
        virtualHost: "other.corp",
        virtualPort: 21,
        internalHost: "127.0.0.1",
        internalPort: banner.port + 1,
      });
      await guarded.addMapping({
        virtualHost: "ghost.corp",
        virtualPort: 21,
        internalHost: "does-not-exist.invalid",
        internalPort: 21,
      });
      const ok = await socksReply(guarded.socksPort, guarded.client, "ok.corp", 21);
      const refused = await socksReply(guarded.socksPort, guarded.client, "other.corp", 21);
      const ghost = await socksReply(guarded.socksPort, guarded.client, "ghost.corp", 21);
      for (const r of [ok, refused, ghost]) track(r.socket);
      assert.deepEqual([ok.reply, refused.reply, ghost.reply], [0x00, 0x02, 0x04]);
    } finally {
      await guarded.close();
    }
  });

  it("stops reading a refused client and closes its connection", async () => {
    const { createConnection } = await import("node:net");
    const s = track(createConnection({ host: "127.0.0.1", port: stack.socksPort }));
    await once(s, "connect");
    s.write(Buffer.from([0x05, 0x01, 0x00])); // no-auth only, while a password is required
    const answer = readAll(s, 2);
    assert.deepEqual([...(await answer)], [0x05, 0xff]);
    // whatever it sends next is not buffered, and the relay closes the connection
    s.on("error", () => {});
    s.write(Buffer.alloc(256 * 1024, 0x41), () => {});
    await waitFor(() => s.closed, { timeoutMs: 10_000, what: "the relay to close the refused connection" });
    assert.equal(s.bytesRead, 2, "nothing follows the method refusal");
  });

  it("closes a SOCKS handshake that stalls", async () => {
    const slow = await startStack({ relay: { socksHandshakeTimeoutMs: 300 }, agent: false });
    try {
      const { createConnection } = await import("node:net");
      const s = track(createConnection({ host: "127.0.0.1", port: slow.socksPort }));
      await once(s, "connect");
      const t0 = performance.now();
      s.write(Buffer.from([0x05])); // half a greeting, then nothing
      s.resume();
      await waitFor(() => s.closed, { timeoutMs: 10_000, what: "the relay to close the stalled handshake" });
      assert.ok(s.readableEnded, "the relay ended the connection (a FIN, not an error)");
      assert.equal(s.bytesRead, 0, "no reply to half a greeting");
      assert.ok(performance.now() - t0 >= 250, "closed by the 300 ms handshake timeout, not at once");
    } finally {
      await slow.close();
    }
  });

  it("lists live connections and kills one", async () => {
    const s = track(await socksConnect(stack.socksPort, stack.client, "ftp.corp.example", 21));
    await readAll(s, 11);
    const list = await stack.api("GET", "/v1/connections");
    assert.equal(list.status, 200);
    const mine = list.body.find(
      (c: { remoteAddress: string }) => c.remoteAddress === `127.0.0.1:${s.localPort}`,
    );
    assert.ok(mine, "the connection is listed");
    assert.ok(mine.bytesDown >= 11);
    const closed = new Promise<string>((resolve) => {
      s.on("error", (e: NodeJS.ErrnoException) => resolve(e.code ?? "error"));
      s.on("close", () => resolve("closed"));
    });
    assert.equal((await stack.api("DELETE", `/v1/connections/${mine.id}`)).status, 204);
    assert.equal(await closed, "ECONNRESET");
  });

  it("checks a mapping by really dialling the target", async () => {
    const list = await stack.api("GET", "/v1/mappings");
    const good = list.body.find(
      (m: { virtualHost: string; virtualPort: number }) =>
        m.virtualHost === "ftp.corp.example" && m.virtualPort === 21,
    );
    const bad = list.body.find((m: { virtualHost: string }) => m.virtualHost === "refused.corp");
    const ok = await stack.api("POST", `/v1/mappings/${good.id}/check`);
    assert.equal(ok.body.reachable, true);
    assert.equal(typeof ok.body.latencyMs, "number");
    const no = await stack.api("POST", `/v1/mappings/${bad.id}/check`);
    assert.equal(no.body.reachable, false);
    assert.match(no.body.error, /REFUSED/);
  });

  it("shows the agent connected, and deleting it closes its tunnel", async () => {
    const extra = await stack.addAgent("site-temp");
    const agent = await stack.startAgent({ token: extra.token });
    await agent.waitUp(1, 15_000);
    const list = await stack.api("GET", "/v1/agents");
    const row = list.body.find((a: { id: string }) => a.id === extra.id);
    assert.equal(row.connected, true);
    assert.match(row.remoteAddress, /127\.0\.0\.1/);
    assert.equal((await stack.api("DELETE", `/v1/agents/${extra.id}`)).status, 204);
    await waitFor(() => agent.upCount() === 0, {
      timeoutMs: 10_000,
      what: "the revoked agent's tunnel to close",
    });
    assert.match(agent.clients[0]!.lastRefusal ?? "", /revoked|deleted|unknown/);
    await agent.close();
  });
});
