/**
 * The WebSocket transport against stock `ws` peers over real sockets: an older relay or agent
 * frames with `ws` itself (random masking keys, its own close handshake), so each side of the
 * transport must interoperate with `ws` on the other. And the zero-copy path, which reaches into
 * `ws`'s internals, must be the one in use on both sides, over TCP and over TLS: a `ws` release
 * that moves an internal fails here instead of silently falling back to the slower path.
 */
import assert from "node:assert/strict";
import { once } from "node:events";
import { readFileSync } from "node:fs";
import { createServer, type IncomingMessage, type Server } from "node:http";
import { createServer as createHttpsServer } from "node:https";
import type { AddressInfo } from "node:net";
import type { Duplex } from "node:stream";
import { after, before, describe, it } from "node:test";
import { WebSocket, WebSocketServer } from "ws";
import { WS_MASKINGS, type WsMasking } from "../../shared/tunnel/ws-mask.js";
import { WebSocketTransport } from "../../shared/tunnel/ws-transport.js";
import { waitFor } from "../helpers/ports.js";
import { makeSelfSignedCert, type SelfSignedCert } from "../helpers/tls.js";
import { connectWs as connect } from "../helpers/ws-peers.js";

interface Side {
  readonly ws: WebSocket;
  /** The connection under the WebSocket, as handed to the transport. */
  readonly socket: Duplex;
  readonly transport: WebSocketTransport;
  readonly received: Buffer[];
  text(): string;
}

function side(ws: WebSocket, socket: Duplex, masking?: WsMasking): Side {
  const transport = new WebSocketTransport(ws, socket, masking ? { masking } : {});
  const received: Buffer[] = [];
  ws.on("message", (data: Buffer) => received.push(Buffer.from(data)));
  return { ws, socket, transport, received, text: () => Buffer.concat(received).toString() };
}

/** The `ws` these tests hold the transport to (package.json pins it exactly). */
const WS_VERSION = (
  JSON.parse(readFileSync(new URL("../../../node_modules/ws/package.json", import.meta.url), "utf8")) as {
    version: string;
  }
).version;

/**
 * The client frames in `raw` (what the server's socket read, before anything unmasked it):
 * each one's masking key and its payload unmasked. RFC 6455 §5.2 layout; complete frames only.
 */
function clientFrames(raw: Buffer): Array<{ key: Buffer; payload: Buffer }> {
  const out: Array<{ key: Buffer; payload: Buffer }> = [];
  let at = 0;
  while (at + 2 <= raw.length) {
    assert.ok((raw[at + 1]! & 0x80) !== 0, "every client frame has the MASK bit");
    let len = raw[at + 1]! & 0x7f;
    let head = 2;
    if (len === 126) {
      len = raw.readUInt16BE(at + 2);
      head = 4;
    } else if (len === 127) {
      len = Number(raw.readBigUInt64BE(at + 2));
      head = 10;
    }
    if (at + head + 4 + len > raw.length) break;
    const key = raw.subarray(at + head, at + head + 4);
    const payload = Buffer.from(
      raw.subarray(at + head + 4, at + head + 4 + len).map((b, i) => b ^ key[i & 3]!),
    );
    out.push({ key: Buffer.from(key), payload });
    at += head + 4 + len;
  }
  return out;
}

/** Bytes of every size class: small (copied with its header), 16-bit and 64-bit lengths. */
const PAYLOADS = [Buffer.from("hello"), Buffer.alloc(5_000, 0x61), Buffer.alloc(200_000, 0x62)];
const ALL = Buffer.concat(PAYLOADS).toString();

describe("websocket transport with stock ws peers", () => {
  let server: Server;
  let wss: WebSocketServer;
  let url: string;
  /** Server-side connections, as the transport or as plain `ws`, depending on the test. */
  let useTransportOnServer = true;
  const serverSides: Array<Side | WebSocket> = [];
  /** What each server-side socket read after the upgrade, as it came, masked. */
  const rawIns: Buffer[][] = [];

  before(async () => {
    wss = new WebSocketServer({ noServer: true, perMessageDeflate: false });
    server = createServer();
    server.on("upgrade", (req: IncomingMessage, socket: Duplex, head: Buffer) => {
      // first in line, before a stock server's ws unmasks the bytes in place (the transport on
      // the server side takes the socket only when ws's listener is its one reader)
      const raw: Buffer[] = [Buffer.from(head)];
      if (!useTransportOnServer) socket.on("data", (chunk: Buffer) => raw.push(Buffer.from(chunk)));
      wss.handleUpgrade(req, socket, head, (ws) => {
        serverSides.push(useTransportOnServer ? side(ws, socket) : ws);
        rawIns.push(raw);
      });
    });
    server.listen(0, "127.0.0.1");
    await once(server, "listening");
    url = `ws://127.0.0.1:${(server.address() as AddressInfo).port}/tunnel`;
  });

  after(async () => {
    for (const c of wss.clients) c.terminate();
    for (const s of serverSides) ("transport" in s ? s.ws : s).terminate();
    wss.close();
    server.closeAllConnections();
    await new Promise<void>((r) => server.close(() => r()));
  });

  it("reads a stock client's masked frames and writes frames it reads", async () => {
    useTransportOnServer = true;
    const client = new WebSocket(url, { perMessageDeflate: false });
    const got: Buffer[] = [];
    client.on("message", (d: Buffer) => got.push(Buffer.from(d)));
    await once(client, "open");
    await waitFor(() => serverSides.length === 1, { what: "the server side" });
    const s = serverSides[0] as Side;
    for (const p of PAYLOADS) client.send(p);
    await waitFor(() => s.text().length === ALL.length, { what: "the client's bytes" });
    assert.equal(s.text(), ALL);

    for (const p of PAYLOADS) s.transport.send(p);
    s.transport.sendFrame(Buffer.from("head:"), Buffer.alloc(70_000, 0x63));
    const expected = `${ALL}head:${"c".repeat(70_000)}`;
    await waitFor(() => Buffer.concat(got).length === expected.length, { what: "the server's bytes" });
    assert.equal(Buffer.concat(got).toString(), expected);

    // a ping from the stock side is answered by ws's own receiver
    client.ping(Buffer.from("p1"));
    const [pong] = (await once(client, "pong")) as [Buffer];
    assert.equal(pong.toString(), "p1");

    // the stock client's close reaches the server's ws with its code
    const closed = once(s.ws, "close");
    client.close(4002, "client done");
    const [code, reason] = (await closed) as [number, Buffer];
    assert.equal(code, 4002);
    assert.equal(reason.toString(), "client done");
  });

  for (const masking of WS_MASKINGS) {
    it(`writes frames masked with ${masking} keys that a stock server reads, and closes with its code`, async () => {
      useTransportOnServer = false;
      const before = serverSides.length;
      const { ws, socket } = await connect(url);
      const c = side(ws, socket, masking);
      await waitFor(() => serverSides.length === before + 1, { what: "the server side" });
      const stock = serverSides[before] as WebSocket;
      const got: Buffer[] = [];
      stock.on("message", (d: Buffer) => got.push(Buffer.from(d)));
      // copies: the transport masks what it is given in place
      for (const p of PAYLOADS) c.transport.send(Buffer.from(p));
      c.transport.sendFrame(Buffer.from("head:"), Buffer.alloc(70_000, 0x63));
      const expected = `${ALL}head:${"c".repeat(70_000)}`;
      await waitFor(() => Buffer.concat(got).length === expected.length, { what: "the client's bytes" });
      assert.equal(Buffer.concat(got).toString(), expected);

      // on the wire: one key per frame, fresh and never zero with random keys, zero otherwise
      const frames = clientFrames(Buffer.concat(rawIns[before]!));
      assert.equal(frames.length, PAYLOADS.length + 1);
      assert.equal(Buffer.concat(frames.map((f) => f.payload)).toString(), expected);
      const keys = new Set(frames.map((f) => f.key.toString("hex")));
      if (masking === "random") {
        assert.equal(keys.size, frames.length, `a fresh key for every frame: ${[...keys]}`);
        assert.ok(!keys.has("00000000"), "no all-zero key");
      } else {
        assert.deepEqual([...keys], ["00000000"]);
      }

      for (const p of PAYLOADS) stock.send(p);
      await waitFor(() => c.text().length === ALL.length, { what: "the server's bytes" });
      assert.equal(c.text(), ALL);

      const closed = once(stock, "close");
      c.transport.close(4001, "goaway sent");
      const [code, reason] = (await closed) as [number, Buffer];
      assert.equal(code, 4001);
      assert.equal(reason.toString(), "goaway sent");
      await once(ws, "close");
    });
  }

  it("cuts off a peer that breaks the framing", async () => {
    useTransportOnServer = true;
    const before = serverSides.length;
    const { ws, socket } = await connect(url);
    await waitFor(() => serverSides.length === before + 1, { what: "the server side" });
    const s = serverSides[before] as Side;
    const errors: Error[] = [];
    s.ws.on("error", (e) => errors.push(e));
    // events.once() would reject on the 'error' this test expects
    const closed = new Promise((resolve) => s.ws.once("close", resolve));
    // an unmasked frame from a client, which RFC 6455 §5.1 forbids
    socket.write(Buffer.from([0x82, 0x01, 0x78]));
    await closed;
    assert.match(errors[0]?.message ?? "", /unmasked/);
    ws.terminate();
  });
});

for (const scheme of ["ws", "wss"] as const) {
  describe(`the zero-copy path over ${scheme === "ws" ? "TCP" : "TLS"} (ws ${WS_VERSION})`, () => {
    let server: Server;
    let wss: WebSocketServer;
    let cert: SelfSignedCert | null = null;
    let url: string;
    let ca: Buffer | undefined;
    const serverSides: Side[] = [];

    before(async () => {
      wss = new WebSocketServer({ noServer: true, perMessageDeflate: false });
      if (scheme === "wss") {
        cert = await makeSelfSignedCert({ commonName: "underpass ws-transport test" });
        ca = readFileSync(cert.certFile);
        server = createHttpsServer({ cert: ca, key: readFileSync(cert.keyFile) });
      } else {
        server = createServer();
      }
      // what the relay's gateway does: the transport gets the socket the upgrade came on
      server.on("upgrade", (req: IncomingMessage, socket: Duplex, head: Buffer) => {
        wss.handleUpgrade(req, socket, head, (ws) => serverSides.push(side(ws, socket)));
      });
      server.listen(0, "127.0.0.1");
      await once(server, "listening");
      url = `${scheme}://127.0.0.1:${(server.address() as AddressInfo).port}/tunnel`;
    });

    after(async () => {
      for (const s of serverSides) s.ws.terminate();
      wss.close();
      server.closeAllConnections();
      await new Promise<void>((r) => server.close(() => r()));
      await cert?.close();
    });

    it("is active on the server and on the client side, and carries bytes both ways", async () => {
      // what the agent does: the socket from the client's upgrade response
      const { ws, socket } = await connect(url, ca);
      try {
        const client = side(ws, socket);
        await waitFor(() => serverSides.length === 1, { what: "the server side" });
        const server = serverSides[0]!;
        assert.equal(
          server.transport.direct,
          true,
          "server side: ws's receiver and socket listener were found",
        );
        assert.equal(
          client.transport.direct,
          true,
          "client side: ws's receiver and socket listener were found",
        );
        for (const s of [server, client]) {
          assert.ok(
            s.socket.listeners("data").every((f) => f.name !== "socketOnData"),
            "ws's own socket listener no longer reads the socket",
          );
        }
        // copies: the client masks what it is given in place
        for (const p of PAYLOADS) client.transport.send(Buffer.from(p));
        await waitFor(() => server.text().length === ALL.length, { what: "the client's bytes" });
        assert.equal(server.text(), ALL);
        for (const p of PAYLOADS) server.transport.send(p);
        await waitFor(() => client.text().length === ALL.length, { what: "the server's bytes" });
        assert.equal(client.text(), ALL);
      } finally {
        ws.terminate();
      }
    });
  });
}
