/**
 * The live event stream over a real HTTP server: a reading subscriber gets every event in
 * order as Server-Sent Events; a subscriber that stops reading is dropped once its buffer
 * passes the bound, and the others keep receiving; a filter narrows the types.
 */
import assert from "node:assert/strict";
import { createServer, get, type IncomingMessage, type Server } from "node:http";
import { connect, type Socket } from "node:net";
import { after, before, describe, it } from "node:test";
import { EventHub, formatSse } from "../../cloud/admin/event-hub.js";
import { waitFor } from "../helpers/ports.js";
import { takeSseEvents } from "../helpers/sse.js";

describe("live event hub (Server-Sent Events)", () => {
  let server: Server;
  let port = 0;
  let hub: EventHub;
  const drops: number[] = [];
  const open: Array<IncomingMessage | Socket> = [];

  before(async () => {
    hub = new EventHub({ maxBufferedBytes: 64 * 1024, heartbeatMs: 60_000, onDrop: (n) => drops.push(n) });
    server = createServer((req, res) => {
      const url = new URL(req.url ?? "/", "http://x");
      const types = url.searchParams.get("types");
      hub.subscribe(res, types ? new Set(types.split(",")) : null, [
        { type: "hello", data: { at: "start" } },
      ]);
    });
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    port = (server.address() as { port: number }).port;
  });

  after(async () => {
    for (const s of open) s.destroy();
    hub.close();
    server.closeAllConnections();
    await new Promise((resolve) => server.close(resolve));
  });

  /** A client that reads and parses the stream. */
  function reader(
    path = "/",
  ): Promise<{ events: Array<{ type: string; data: unknown }>; res: IncomingMessage }> {
    return new Promise((resolve, reject) => {
      get({ host: "127.0.0.1", port, path }, (res) => {
        open.push(res);
        const events: Array<{ type: string; data: unknown }> = [];
        let text = "";
        res.setEncoding("utf8");
        res.on("data", (chunk: string) => {
          const taken = takeSseEvents(text + chunk);
          text = taken.rest;
          events.push(...taken.events);
        });
        resolve({ events, res });
      }).on("error", reject);
    });
  }

  it("formats one event as id, event and a single data line", () => {
    assert.equal(
      formatSse(7, { type: "agent.up", data: { a: "x\ny" } }),
      'id: 7\nevent: agent.up\ndata: {"a":"x\\ny"}\n\n',
    );
  });

  it("delivers events in order, filters by type, and drops a subscriber that does not read", async () => {
    const all = await reader();
    assert.equal(all.res.headers["content-type"], "text/event-stream; charset=utf-8");
    const onlyDenials = await reader("/?types=denial");
    // a raw client that sends its request and then never reads
    const stalled: Socket = connect(port, "127.0.0.1");
    open.push(stalled);
    await new Promise<void>((resolve) => stalled.once("connect", resolve));
    stalled.write("GET / HTTP/1.1\r\nHost: x\r\n\r\n");
    stalled.pause();
    await waitFor(() => (hub.size === 3 ? true : undefined), {
      timeoutMs: 10_000,
      intervalMs: 10,
      what: "3 subscribers",
    });

    const big = "x".repeat(32 * 1024);
    for (let i = 0; i < 1000; i++) {
      hub.publish({ type: i % 10 === 0 ? "denial" : "traffic", data: { i, big } });
      // a subscriber that keeps up: the next event once it has this one
      await waitFor(() => (all.events.length === i + 2 ? true : undefined), {
        timeoutMs: 20_000,
        intervalMs: 1,
        what: `the reading subscriber to get event ${i} (has ${all.events.length}, dropped ${hub.dropped}, size ${hub.size})`,
      });
    }
    await waitFor(() => (all.events.length === 1001 ? true : undefined), {
      timeoutMs: 20_000,
      intervalMs: 20,
      what: "the reading subscriber to get all 1001 events",
    });
    assert.deepEqual(all.events[0], { type: "hello", data: { at: "start" } });
    assert.deepEqual(
      all.events.slice(1).map((e) => (e.data as { i: number }).i),
      Array.from({ length: 1000 }, (_, i) => i),
    );
    await waitFor(() => (onlyDenials.events.length === 101 ? true : undefined), {
      timeoutMs: 20_000,
      intervalMs: 20,
      what: "the filtered subscriber to get the 100 denials",
    });
    assert.ok(onlyDenials.events.slice(1).every((e) => e.type === "denial"));
    assert.equal(hub.dropped, 1, "the stalled subscriber was dropped");
    assert.equal(drops.length, 1);
    assert.ok(drops[0]! > 64 * 1024);
    assert.equal(hub.size, 2);
  });
});
