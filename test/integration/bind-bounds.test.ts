/**
 * BIND listeners on premises live no longer than their client: when the SOCKS client that
 * asked for a BIND goes away, or its control connection does, the agent's listening port is
 * closed within moments (not at the end of its timeout). And a client, or an agent, holds at
 * most so many listeners at once.
 */
import assert from "node:assert/strict";
import { connect, type Socket } from "node:net";
import { after, before, describe, it } from "node:test";
import { BIND_LISTENERS } from "../../agent/bind-listener.js";
import { LIMIT } from "../../cloud/limits/limit-names.js";
import { connectFrom } from "../helpers/flood.js";
import { waitFor } from "../helpers/ports.js";
import { type Credentials, type Stack, socksConnect, startStack } from "../helpers/stack.js";
import { bannerEcho, readAll, startTarget, type Target } from "../helpers/targets.js";

/** A raw SOCKS5 BIND (DST 0.0.0.0:0, as socksify sends): the first reply's REP and BND. */
async function bind(
  stack: Stack,
  creds: Credentials,
): Promise<{ socket: Socket; reply: number; port: number }> {
  const s = connect({ host: "127.0.0.1", port: stack.socksPort });
  await new Promise((resolve, reject) => {
    s.once("connect", resolve);
    s.once("error", reject);
  });
  const u = Buffer.from(creds.username);
  const p = Buffer.from(creds.password);
  s.write(
    Buffer.concat([
      Buffer.from([5, 1, 2, 1, u.length]),
      u,
      Buffer.from([p.length]),
      p,
      Buffer.from([5, 2, 0, 1, 0, 0, 0, 0, 0, 0]),
    ]),
  );
  // method reply, RFC 1929 status, then the reply with an IPv4 BND (10 bytes)
  const b = await readAll(s, 2 + 2 + 10, 10_000);
  return { socket: s, reply: b[5] ?? -1, port: b.length >= 14 ? b.readUInt16BE(12) : 0 };
}

/**
 * The port on premises stops accepting connections. Probed from 127.0.0.2, which is not the
 * expected peer (the FTP server's 127.0.0.1): the listener turns a probe away and keeps
 * waiting, so probing cannot complete the BIND.
 */
function closedSoon(port: number, what: string): Promise<true> {
  return waitFor(
    async () => {
      try {
        await connectFrom(port, "127.0.0.2").then((s) => s.destroy());
        return undefined;
      } catch {
        return true as const;
      }
    },
    { timeoutMs: 3_000, intervalMs: 50, what },
  );
}

describe("BIND listeners on premises", () => {
  let stack: Stack;
  let ftp: Target;
  const open: Socket[] = [];

  before(async () => {
    ftp = await startTarget(bannerEcho());
    // the relay's and the agent's default BIND timeouts (60 s, 120 s): the listener must not wait for them
    stack = await startStack({ relay: { bounds: { bindPerClient: 2, bindPerAgent: 3 } } });
    await stack.addMapping({
      virtualHost: "ftp.bind-bounds",
      virtualPort: 21,
      internalHost: "127.0.0.1",
      internalPort: ftp.port,
    });
  });

  after(async () => {
    for (const s of open) s.destroy();
    await stack?.close();
    await ftp?.close();
  });

  async function control(creds: Credentials): Promise<Socket> {
    const c = await socksConnect(stack.socksPort, creds, "ftp.bind-bounds", 21);
    open.push(c);
    await readAll(c, 11);
    return c;
  }

  it("closes the agent's listener when the BIND's client goes away", async () => {
    await control(stack.client);
    const b = await bind(stack, stack.client);
    assert.equal(b.reply, 0x00);
    assert.ok(b.port > 0, "the first reply names the listener");
    b.socket.destroy();
    await closedSoon(b.port, `the listener ${b.port} of a BIND whose client left to close`);
  });

  it("closes it when the BIND's control connection goes away, and says so in the second reply", async () => {
    const ctl = await control(stack.client);
    const b = await bind(stack, stack.client);
    assert.equal(b.reply, 0x00);
    const second = readAll(b.socket, 10, 5_000);
    ctl.destroy();
    await closedSoon(b.port, `the listener ${b.port} of a BIND whose control connection left to close`);
    const r = await second;
    assert.ok(r.length === 0 || r[1] !== 0x00, "no success reply: a failure or the close");
    b.socket.destroy();
  });

  it("holds at most its bound of listeners per client and per agent", async (t) => {
    const hits: string[] = [];
    const stop = stack.relay.events.limitHit.subscribe((m) => hits.push(m.limit));
    t.after(stop);
    await control(stack.client);
    const one = await bind(stack, stack.client);
    const two = await bind(stack, stack.client);
    const three = await bind(stack, stack.client);
    open.push(one.socket, two.socket, three.socket);
    assert.deepEqual(
      [one.reply, two.reply, three.reply],
      [0x00, 0x00, 0x01],
      "the third of one client: 0x01",
    );
    assert.ok(hits.includes(LIMIT.BIND_PER_CLIENT));
    // another client on the same agent: the agent's bound (3) bites at its second
    const other = await stack.addClient("bind-other");
    await control(other);
    const four = await bind(stack, other);
    const five = await bind(stack, other);
    open.push(four.socket, five.socket);
    assert.deepEqual([four.reply, five.reply], [0x00, 0x01], "the agent's fourth listener: 0x01");
    assert.ok(hits.includes(LIMIT.BIND_PER_AGENT));
    // a listener given back (its client left) makes room again
    one.socket.destroy();
    await closedSoon(one.port, "the first listener to close");
    const again = await bind(stack, stack.client);
    open.push(again.socket);
    assert.equal(again.reply, 0x00);
  });
});

describe("the agent's own bound on BIND listeners", () => {
  it("answers a BIND past it with 0x01, whatever the relay allows", async () => {
    const saved = BIND_LISTENERS.max;
    const ftp = await startTarget(bannerEcho());
    const stack = await startStack();
    try {
      await stack.addMapping({
        virtualHost: "ftp.agent-bound",
        virtualPort: 21,
        internalHost: "127.0.0.1",
        internalPort: ftp.port,
      });
      const c = await socksConnect(stack.socksPort, stack.client, "ftp.agent-bound", 21);
      await readAll(c, 11);
      BIND_LISTENERS.max = BIND_LISTENERS.held + 1;
      const one = await bind(stack, stack.client);
      const two = await bind(stack, stack.client);
      assert.deepEqual([one.reply, two.reply], [0x00, 0x01]);
      one.socket.destroy();
      two.socket.destroy();
      c.destroy();
      await waitFor(() => BIND_LISTENERS.held === 0, { timeoutMs: 3_000, what: "the listener given back" });
    } finally {
      BIND_LISTENERS.max = saved;
      await stack.close();
      await ftp.close();
    }
  });
});
