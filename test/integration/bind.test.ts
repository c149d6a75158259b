import assert from "node:assert/strict";
import { once } from "node:events";
import { connect, type Socket } from "node:net";
import { after, before, describe, it } from "node:test";
import { SocksClient } from "socks";
import type { SocksBindListening, SocksClosed, SocksOpened } from "../../cloud/events.js";
import { waitFor } from "../helpers/ports.js";
import { type Credentials, type Stack, socksConnect, socksReply, startStack } from "../helpers/stack.js";
import { bannerEcho, readAll, startTarget, type Target } from "../helpers/targets.js";

interface BindSession {
  readonly control: Socket;
  readonly bound: { host: string; port: number };
  readonly established: Promise<{ socket: Socket; remote: { host: string; port: number } }>;
}

/** A BIND with the `socks` package; DST is garbage on purpose, as socksify sends. */
async function socksBind(stack: Stack, creds: Credentials): Promise<BindSession> {
  const client = new SocksClient({
    proxy: {
      host: "127.0.0.1",
      port: stack.socksPort,
      type: 5,
      userId: creds.username,
      password: creds.password,
    },
    command: "bind",
    destination: { host: "0.0.0.0", port: 0 },
    timeout: 20_000,
  });
  const bound = new Promise<{ socket: Socket; remoteHost: { host: string; port: number } }>(
    (resolve, reject) => {
      client.once("bound", (info) =>
        resolve({ socket: info.socket as Socket, remoteHost: info.remoteHost! }),
      );
      client.once("error", reject);
    },
  );
  const established = new Promise<{ socket: Socket; remote: { host: string; port: number } }>(
    (resolve, reject) => {
      client.once("established", (info) =>
        resolve({ socket: info.socket as Socket, remote: info.remoteHost! }),
      );
      client.once("error", reject);
    },
  );
  established.catch(() => {});
  client.connect();
  const b = await bound;
  return { control: b.socket, bound: b.remoteHost, established };
}

describe("SOCKS5 BIND through the agent", () => {
  let stack: Stack;
  let ftp: Target;
  const open: Socket[] = [];
  const track = <T extends Socket>(s: T): T => {
    open.push(s);
    return s;
  };

  before(async () => {
    ftp = await startTarget(bannerEcho());
    stack = await startStack({ bind: { maxWaitMs: 2_000 } });
    await stack.addMapping({
      virtualHost: "ftp.bind.example",
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

  it("listens on premises, names the listener, then the peer, and carries bytes both ways", async (t) => {
    const events = stack.relay.events;
    const listening: SocksBindListening[] = [];
    const opened: SocksOpened[] = [];
    const closed: SocksClosed[] = [];
    const stops = [
      events.socksBindListening.subscribe((m) => listening.push(m)),
      events.socksOpened.subscribe((m) => opened.push(m)),
      events.socksClosed.subscribe((m) => closed.push(m)),
    ];
    t.after(() => {
      for (const stop of stops) stop();
    });
    const control = track(await socksConnect(stack.socksPort, stack.client, "ftp.bind.example", 21));
    await readAll(control, 11);
    const bind = await socksBind(stack, stack.client);
    track(bind.control);
    assert.equal(bind.bound.host, "127.0.0.1", "the agent listens where the FTP server reaches it");
    assert.ok(bind.bound.port > 0);
    const server = track(connect({ host: bind.bound.host, port: bind.bound.port }));
    await once(server, "connect");
    const { socket, remote } = await bind.established;
    assert.equal(remote.host, "127.0.0.1");
    assert.equal(remote.port, server.localPort, "the second reply names the peer that connected");
    server.write("150 data from the server\r\n");
    assert.equal((await readAll(socket, 26)).toString(), "150 data from the server\r\n");
    socket.end("STOR payload");
    assert.equal((await readAll(server)).toString(), "STOR payload");
    server.end();
    // published: where it listened, the peer's connection opened, and its close with the bytes
    assert.deepEqual(
      listening.map((m) => m.listen),
      [`${bind.bound.host}:${bind.bound.port}`],
    );
    const peer = opened.find((m) => m.grant === "bind");
    assert.ok(peer, "the BIND's peer is opened as a connection");
    assert.deepEqual([peer.internalHost, peer.internalPort], ["127.0.0.1", server.localPort]);
    assert.equal(peer.openMs, null);
    await waitFor(() => closed.some((m) => m.connectionId === peer.connectionId), {
      timeoutMs: 10_000,
      what: "the BIND connection's close",
    });
    const done = closed.find((m) => m.connectionId === peer.connectionId)!;
    assert.deepEqual([done.bytesUp, done.bytesDown], ["STOR payload".length, 26]);
  });

  it("refuses a BIND from a client with no live connection (0x02)", async () => {
    const other = await stack.addClient("flow-without-control");
    const { reply, socket } = await socksReply(stack.socksPort, other, "0.0.0.0", 0, 0x02);
    track(socket);
    assert.equal(reply, 0x02);
  });

  it("turns away an unexpected peer and still takes the expected one", async () => {
    const control = track(await socksConnect(stack.socksPort, stack.client, "ftp.bind.example", 21));
    await readAll(control, 11);
    const bind = await socksBind(stack, stack.client);
    track(bind.control);
    const intruder = track(
      connect({ host: bind.bound.host, port: bind.bound.port, localAddress: "127.0.0.2" }),
    );
    const intruderFate = await new Promise<string>((resolve) => {
      intruder.on("error", (e: NodeJS.ErrnoException) => resolve(e.code ?? "error"));
      intruder.on("close", () => resolve("closed"));
      intruder.resume();
    });
    assert.match(intruderFate, /ECONNRESET|closed/);
    const server = track(connect({ host: bind.bound.host, port: bind.bound.port }));
    await once(server, "connect");
    const { remote } = await bind.established;
    assert.equal(remote.host, "127.0.0.1", "the expected host, not the intruder");
    server.end();
  });

  it("ends with a failure reply when nobody connects in time, and the listener is gone", async () => {
    const control = track(await socksConnect(stack.socksPort, stack.client, "ftp.bind.example", 21));
    await readAll(control, 11);
    const bind = await socksBind(stack, stack.client);
    track(bind.control);
    await assert.rejects(bind.established);
    const late = track(connect({ host: bind.bound.host, port: bind.bound.port }));
    const fate = await new Promise<string>((resolve) => {
      late.on("error", (e: NodeJS.ErrnoException) => resolve(e.code ?? "error"));
      late.on("connect", () => resolve("connected"));
    });
    assert.equal(fate, "ECONNREFUSED");
  });
});
