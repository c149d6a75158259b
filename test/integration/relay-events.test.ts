/**
 * What a relay publishes (cloud/events.ts) while real clients use it: the life of a SOCKS
 * CONNECT, a denial, a failed authentication, and an FTP-aware control channel's decisions
 * against a small FTP-speaking target. Each test subscribes to its relay's channels.
 */
import assert from "node:assert/strict";
import { once } from "node:events";
import { createServer, connect as netConnect, type Server, type Socket } from "node:net";
import { after, before, describe, it } from "node:test";
import type { EventKey, EventMessages } from "../../cloud/events.js";
import { waitFor } from "../helpers/ports.js";
import { type Stack, socksConnect, socksReply, startStack } from "../helpers/stack.js";
import { readAll, startTarget, type Target } from "../helpers/targets.js";

type Heard = { readonly [K in EventKey]: EventMessages[K][] };

/** An FTP server just large enough for the control channel's decisions. */
function ftpLike(internalIp: string) {
  return (s: Socket): void => {
    s.write("220 fake ftp\r\n");
    let text = "";
    s.on("data", (d: Buffer) => {
      text += d.toString("latin1");
      for (let nl = text.indexOf("\n"); nl >= 0; nl = text.indexOf("\n")) {
        const line = text.slice(0, nl).trim();
        text = text.slice(nl + 1);
        const [verb, arg = ""] = line.split(" ");
        if (verb === "PASV") {
          s.write(`227 Entering Passive Mode (${internalIp.replaceAll(".", ",")},117,48)\r\n`);
        } else if (verb === "PORT") {
          // the relay names the agent's listener: connect to it and send the data
          const p = arg.split(",").map(Number);
          const data = netConnect({ host: p.slice(0, 4).join("."), port: p[4]! * 256 + p[5]! });
          data.on("error", () => {});
          data.on("connect", () => data.end("active data\r\n"));
          s.write("200 PORT command successful\r\n");
        } else {
          s.write("502 not here\r\n");
        }
      }
    });
  };
}

/** Reads CRLF lines from a socket, one at a time. */
function lineReader(s: Socket): () => Promise<string> {
  let text = "";
  const waiting: Array<(line: string) => void> = [];
  const lines: string[] = [];
  s.on("data", (d: Buffer) => {
    text += d.toString("latin1");
    for (let nl = text.indexOf("\r\n"); nl >= 0; nl = text.indexOf("\r\n")) {
      const line = text.slice(0, nl);
      text = text.slice(nl + 2);
      const w = waiting.shift();
      if (w) w(line);
      else lines.push(line);
    }
  });
  return () =>
    new Promise<string>((resolve, reject) => {
      const l = lines.shift();
      if (l !== undefined) return resolve(l);
      const timer = setTimeout(() => reject(new Error("no line within 10 s")), 10_000);
      waiting.push((line) => {
        clearTimeout(timer);
        resolve(line);
      });
    });
}

describe("relay events", () => {
  let stack: Stack;
  let echo: Target;
  let ftp: Target;
  let heard: Heard;
  const stops: Array<() => void> = [];
  const open: Socket[] = [];
  const track = (s: Socket): Socket => {
    open.push(s);
    return s;
  };

  before(async () => {
    echo = await startTarget((s) => s.pipe(s));
    ftp = await startTarget(ftpLike("10.20.30.40"));
    stack = await startStack();
    await stack.addMapping({
      virtualHost: "echo.corp",
      virtualPort: 7,
      internalHost: "127.0.0.1",
      internalPort: echo.port,
    });
    await stack.addMapping({
      virtualHost: "ftp.corp",
      virtualPort: 21,
      internalHost: "127.0.0.1",
      internalPort: ftp.port,
      protocol: "ftp",
    });
  });

  after(async () => {
    for (const stop of stops) stop();
    for (const s of open) s.destroy();
    await stack?.close();
    await echo?.close();
    await ftp?.close();
  });

  /** Subscribe afresh to every channel of the stack's relay. */
  function listenAll(): Heard {
    for (const stop of stops.splice(0)) stop();
    const events = stack.relay.events;
    const out: Record<string, unknown[]> = {};
    for (const key of Object.keys(events).filter((k) => k !== "relayId") as EventKey[]) {
      const list: unknown[] = [];
      out[key] = list;
      stops.push(events[key].subscribe((m: unknown) => list.push(m)));
    }
    return out as unknown as Heard;
  }

  it("has no subscriber on a channel nobody listens to: no message is built", () => {
    assert.equal(stack.relay.events.socksAccepted.active, false);
    assert.equal(stack.relay.events.socksAuthenticated.active, true, "last-used times are noted from it");
    assert.equal(stack.relay.events.socksOpened.active, true, "the audit log and the metrics listen");
  });

  it("publishes a CONNECT's life: accepted, authenticated, opened, closed with the bytes each way", async () => {
    heard = listenAll();
    const s = track(await socksConnect(stack.socksPort, stack.client, "echo.corp", 7));
    const clientPort = s.localPort;
    const payload = Buffer.alloc(3000, 0x61);
    const back = readAll(s);
    s.end(payload);
    assert.equal((await back).length, payload.length);
    await waitFor(() => heard.socksClosed.length === 1, { timeoutMs: 10_000, what: "a closed event" });
    const [accepted] = heard.socksAccepted;
    const [authenticated] = heard.socksAuthenticated;
    const [opened] = heard.socksOpened;
    const [closed] = heard.socksClosed;
    assert.ok(accepted && authenticated && opened && closed);
    assert.equal(accepted.remotePort, clientPort);
    assert.equal(accepted.localPort, stack.socksPort);
    assert.deepEqual(
      [authenticated.method, authenticated.clientId, authenticated.location],
      ["password", stack.client.id, "default"],
    );
    assert.equal(opened.grant, "connect");
    assert.equal(opened.virtualHost, "echo.corp");
    assert.equal(opened.internalPort, echo.port);
    assert.equal(opened.agentId, stack.agentId);
    assert.match(opened.tunnelId, /^tn_/);
    assert.ok(opened.openMs !== null && opened.openMs >= 0 && opened.openMs < 10_000);
    assert.equal(closed.connectionId, opened.connectionId);
    assert.equal(closed.bytesUp, payload.length);
    assert.equal(closed.bytesDown, payload.length);
    assert.ok(closed.durationMs >= 0);
    assert.equal(closed.error, null, "an orderly end");
    assert.equal(heard.socksRefused.length, 0);

    const [requested] = heard.socksRequested;
    assert.ok(requested);
    assert.deepEqual(
      [requested.command, requested.host, requested.port, requested.clientId, requested.location],
      [0x01, "echo.corp", 7, stack.client.id, "default"],
    );
    assert.ok(requested.handshakeMs >= 0 && requested.handshakeMs < 10_000);
    const [dialled] = heard.tunnelOpenResult;
    assert.ok(dialled);
    assert.equal(heard.tunnelOpenResult.length, 1);
    assert.deepEqual(
      [dialled.kind, dialled.code, dialled.tunnelId, dialled.agentId, dialled.location],
      ["connect", null, opened.tunnelId, stack.agentId, "default"],
    );
    assert.ok(dialled.openMs >= 0 && dialled.openMs <= (opened.openMs ?? 0), "the dial is part of the open");
  });

  it("publishes an OPEN the agent could not serve with its code", async () => {
    heard = listenAll();
    const closed = await startTarget(() => {});
    await closed.close(); // nothing listens there any more: the agent's dial is refused
    const mapping = await stack.addMapping({
      virtualHost: "gone.corp",
      virtualPort: 7,
      internalHost: "127.0.0.1",
      internalPort: closed.port,
    });
    try {
      const { reply, socket } = await socksReply(stack.socksPort, stack.client, "gone.corp", 7);
      track(socket);
      assert.equal(reply, 0x05);
      await waitFor(() => heard.socksRefused.length === 1, { timeoutMs: 5_000, what: "a refused event" });
      assert.deepEqual(
        heard.tunnelOpenResult.map((m) => [m.kind, m.code]),
        [["connect", "UP_ERR_CONNECTION_REFUSED"]],
      );
      assert.deepEqual([heard.socksRefused[0]?.reply, heard.socksRefused[0]?.location], [0x05, "default"]);
    } finally {
      await stack.api("DELETE", `/v1/mappings/${mapping.id}`);
    }
  });

  it("publishes a denial with the nearest mappings, and the failure reply", async () => {
    heard = listenAll();
    const { reply, socket } = await socksReply(stack.socksPort, stack.client, "echo.corp", 8);
    track(socket);
    assert.equal(reply, 0x02);
    await waitFor(() => heard.socksRefused.length === 1, { timeoutMs: 5_000, what: "a refused event" });
    const [denied] = heard.socksDenied;
    assert.ok(denied);
    assert.deepEqual([denied.command, denied.host, denied.port], ["connect", "echo.corp", 8]);
    assert.equal(denied.nearest[0], "echo.corp:7");
    assert.deepEqual(
      [heard.socksRefused[0]?.reply, heard.socksRefused[0]?.code, heard.socksRefused[0]?.location],
      [0x02, "UP_ERR_NOT_ALLOWED", "default"],
    );
    assert.equal(heard.socksOpened.length, 0);
    assert.equal(heard.socksRequested.length, 1, "the request was read");
    assert.equal(heard.tunnelOpenResult.length, 0, "nothing was asked of the agent");
  });

  it("publishes a failed authentication with the username and never the password", async () => {
    heard = listenAll();
    const password = "ups_not-the-password-0123";
    const { reply, socket } = await socksReply(
      stack.socksPort,
      { username: stack.client.username, password },
      "echo.corp",
      7,
    );
    track(socket);
    assert.equal(reply, "auth-failed");
    await waitFor(() => heard.socksAuthFailed.length === 1, {
      timeoutMs: 5_000,
      what: "an auth-failed event",
    });
    assert.equal(heard.socksAuthFailed[0]?.username, stack.client.username);
    assert.ok(!JSON.stringify(heard).includes(password));
    assert.equal(heard.socksAuthenticated.length, 0);
    assert.equal(heard.socksRequested.length, 0, "no request is read from a client that failed");
  });

  it("publishes the admin API's refused bearer tokens, never the token", async () => {
    heard = listenAll();
    const wrong = "not-the-admin-token-0123456789";
    const asked = [{ authorization: `Bearer ${wrong}` }, {}, { authorization: "Basic eDp5" }];
    for (const headers of asked) {
      const res = await stack.relay.admin.inject({ method: "GET", url: "/v1/agents", headers });
      assert.equal(res.statusCode, 401);
    }
    const ok = await stack.api("GET", "/v1/agents");
    assert.equal(ok.status, 200);
    const health = await stack.relay.admin.inject({ method: "GET", url: "/healthz" });
    assert.equal(health.statusCode, 200, "a public route asks for no token");
    assert.deepEqual(
      heard.adminAuthFailed.map((m) => m.reason),
      ["invalid", "missing", "missing"],
    );
    assert.equal(heard.adminAuthFailed[0]?.remoteAddress, "127.0.0.1");
    assert.ok(!JSON.stringify(heard).includes(wrong));
  });

  it("publishes the FTP control channel's decisions: a 227 rewrite, a bounce refused, an active-mode dial", async () => {
    heard = listenAll();
    const control = track(await socksConnect(stack.socksPort, stack.client, "ftp.corp", 21));
    const line = lineReader(control);
    assert.equal(await line(), "220 fake ftp");

    control.write("PASV\r\n");
    // the relay's own address, never the internal one the server named
    assert.match(await line(), /^227 Entering Passive Mode \(127,0,0,1,117,48\)/);
    assert.deepEqual(
      heard.ftpPassiveRewrite.map((m) => [m.port, m.announced, m.solicited]),
      [[30000, "127.0.0.1", true]],
    );

    control.write("PORT 10,9,9,9,200,10\r\n");
    assert.match(await line(), /^500 PORT refused/);
    assert.deepEqual(
      heard.ftpBounceRefused.map((m) => [m.verb, m.named, m.clientAddress]),
      [["PORT", "10.9.9.9:51210", "127.0.0.1"]],
    );

    const listener: Server = createServer();
    listener.listen(0, "127.0.0.1");
    await once(listener, "listening");
    try {
      const port = (listener.address() as { port: number }).port;
      const arrived = new Promise<Buffer>((resolve) =>
        listener.once("connection", (s: Socket) => resolve(readAll(s))),
      );
      control.write(`PORT 127,0,0,1,${port >> 8},${port & 0xff}\r\n`);
      assert.equal(await line(), "200 PORT command successful");
      assert.equal((await arrived).toString(), "active data\r\n");
      await waitFor(() => heard.ftpActiveDial.length === 1 && heard.socksClosed.length === 1, {
        timeoutMs: 10_000,
        what: "the active-mode dial and its close",
      });
      const [dial] = heard.ftpActiveDial;
      assert.ok(dial);
      assert.deepEqual(
        heard.tunnelOpenResult.map((m) => [m.kind, m.code]),
        [
          ["connect", null],
          ["bind", null],
        ],
        "the agent dialled the control connection, then listened for the server's data connection",
      );
      assert.equal(dial.outcome, "connected");
      assert.equal(dial.dialBack, `127.0.0.1:${port}`);
      const data = heard.socksOpened.find((m) => m.grant === "ftp-active-data");
      assert.ok(data, "the data connection is opened like any other");
      assert.equal(data.connectionId, dial.dataConnectionId);
      assert.equal(heard.socksClosed[0]?.connectionId, data.connectionId);
      assert.equal(heard.socksClosed[0]?.bytesDown, "active data\r\n".length);
    } finally {
      listener.close();
    }
  });
});
