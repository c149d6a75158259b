/**
 * The metrics listener on its own (cloud/metrics-server.ts) over a real socket: the text and
 * its content type at `/metrics`, 404 elsewhere, 405 for another method, 500 when rendering
 * fails; and a relay started with `metricsListen` serves it and lets the port go on close.
 */
import assert from "node:assert/strict";
import { once } from "node:events";
import type { AddressInfo } from "node:net";
import { describe, it } from "node:test";
import { createMetricsServer, type MetricsText } from "../../cloud/metrics-server.js";
import { silentLogger } from "../../shared/logger.js";
import { parseExposition } from "../helpers/prometheus.js";
import { startStack } from "../helpers/stack.js";

const TEXT = "# HELP up_total Test.\n# TYPE up_total counter\nup_total 3\n";

async function serve(metrics: MetricsText): Promise<{ url: string; close(): Promise<void> }> {
  const server = createMetricsServer(metrics, silentLogger());
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    close: () => new Promise((resolve) => server.close(() => resolve())),
  };
}

describe("metrics listener", () => {
  it("answers GET /metrics with the text and its content type, and nothing else", async () => {
    let renders = 0;
    const s = await serve({
      contentType: "text/plain; version=0.0.4; charset=utf-8",
      render: async () => {
        renders++;
        return TEXT;
      },
    });
    try {
      const res = await fetch(`${s.url}/metrics?name[]=up_total`);
      assert.equal(res.status, 200);
      assert.equal(res.headers.get("content-type"), "text/plain; version=0.0.4; charset=utf-8");
      assert.equal(await res.text(), TEXT);
      assert.equal((await fetch(`${s.url}/nope`)).status, 404);
      const put = await fetch(`${s.url}/metrics`, { method: "PUT", body: "x" });
      assert.equal(put.status, 405);
      assert.equal(renders, 1, "only a GET renders");
    } finally {
      await s.close();
    }
  });

  it("answers 500 when the metrics cannot be rendered, and keeps serving", async () => {
    let fail = true;
    const s = await serve({
      contentType: "text/plain",
      render: async () => {
        if (fail) throw new Error("registry broke");
        return TEXT;
      },
    });
    try {
      const res = await fetch(`${s.url}/metrics`);
      assert.equal(res.status, 500);
      assert.doesNotMatch(await res.text(), /registry broke/, "no internals to an unauthenticated caller");
      fail = false;
      assert.equal((await fetch(`${s.url}/metrics`)).status, 200);
    } finally {
      await s.close();
    }
  });

  it("is served by a relay started with metricsListen, on its own port, closed with the relay", async () => {
    const stack = await startStack({
      agent: false,
      relay: { metricsListen: { host: "127.0.0.1", port: 0 } },
    });
    let port = 0;
    try {
      const at = stack.relay.metricsAddress;
      assert.ok(at);
      port = at.port;
      assert.notEqual(port, stack.relay.adminAddress.port);
      const res = await fetch(`http://127.0.0.1:${port}/metrics`);
      assert.equal(res.status, 200);
      const m = parseExposition(await res.text());
      assert.equal(m.value("underpass_tunnels"), 0);
    } finally {
      await stack.close();
    }
    await assert.rejects(fetch(`http://127.0.0.1:${port}/metrics`), "nothing listens there any more");
  });

  it("is not served when metricsListen is absent", async () => {
    const stack = await startStack({ agent: false });
    try {
      assert.equal(stack.relay.metricsAddress, null);
    } finally {
      await stack.close();
    }
  });
});
