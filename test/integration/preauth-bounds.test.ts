/**
 * Connections before authentication are bounded per source address on every port of the
 * relay, with a deadline: one source that opens many silent connections to the SOCKS, tunnel
 * and admin ports holds no more than its bound of the relay's descriptors, loses them at the
 * deadline, and a second source (127.0.0.2; all of 127.0.0.0/8 is loopback) is served meanwhile.
 */
import assert from "node:assert/strict";
import { request } from "node:http";
import { after, before, describe, it } from "node:test";
import type { LimitHit } from "../../cloud/events.js";
import { LIMIT } from "../../cloud/limits/limit-names.js";
import { connectFrom, flood, helloFrom, openDescriptors } from "../helpers/flood.js";
import { waitFor } from "../helpers/ports.js";
import { type Stack, socksReply, startStack } from "../helpers/stack.js";
import { readAll, startTarget, type Target } from "../helpers/targets.js";

/** Connections before authentication one source may hold per port. */
const PER_SOURCE = 8;
/** The deadline of a connection before authentication on each port, in ms. */
const DEADLINE_MS = 1500;

/** A raw SOCKS5 CONNECT from `localAddress` (socksReply's, with a source address). */
async function socksFrom(stack: Stack, localAddress: string): Promise<number | string> {
  const s = await connectFrom(stack.socksPort, localAddress);
  const { username, password } = stack.client;
  const answer = readAll(s, 2 + 2 + 10 + 6, 10_000);
  const u = Buffer.from(username);
  const p = Buffer.from(password);
  const name = Buffer.from("echo.bounds");
  s.write(
    Buffer.concat([
      Buffer.from([5, 1, 2]),
      Buffer.from([1, u.length]),
      u,
      Buffer.from([p.length]),
      p,
      Buffer.from([5, 1, 0, 3, name.length]),
      name,
      Buffer.from([0, 7]),
    ]),
  );
  s.write("ping\r\n");
  const b = await answer.finally(() => s.destroy());
  // method reply, RFC 1929 status, the reply (IPv4 BND: 10 bytes), then the echo
  if (b[3] !== 0) return "auth-failed";
  return b[5] === 0 ? b.subarray(14).toString() : (b[5] ?? "none");
}

function healthzFrom(port: number, localAddress: string, path = "/healthz"): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = request({ host: "127.0.0.1", port, path, localAddress }, (res) => {
      res.resume();
      resolve(res.statusCode ?? 0);
    });
    req.on("error", reject);
    req.setTimeout(10_000, () => req.destroy(new Error("no answer")));
    req.end();
  });
}

describe("connections before authentication, per source", () => {
  let stack: Stack;
  let echo: Target;
  const hits: LimitHit[] = [];
  let stop = (): void => {};

  before(async () => {
    echo = await startTarget((s) => s.pipe(s));
    stack = await startStack({
      relay: {
        socksHandshakeTimeoutMs: DEADLINE_MS,
        metricsListen: { host: "127.0.0.1", port: 0 },
        bounds: {
          socksPreauthPerSource: PER_SOURCE,
          tunnelPreauthPerSource: PER_SOURCE,
          adminPreauthPerSource: PER_SOURCE,
          tunnelPreauthTimeoutMs: DEADLINE_MS,
          adminPreauthTimeoutMs: DEADLINE_MS,
        },
      },
    });
    await stack.addMapping({
      virtualHost: "echo.bounds",
      virtualPort: 7,
      internalHost: "127.0.0.1",
      internalPort: echo.port,
    });
    stop = stack.relay.events.limitHit.subscribe((m) => hits.push(m));
  });

  after(async () => {
    stop();
    await stack?.close();
    await echo?.close();
  });

  it("holds at most its bound per port, serves a second source meanwhile, and closes the silent ones at the deadline", async () => {
    const metricsPort = stack.relay.metricsAddress?.port ?? 0;
    const ports = [
      stack.socksPort,
      stack.relay.tunnelAddress.port,
      stack.relay.adminAddress.port,
      metricsPort,
    ];
    const silent = 3 * PER_SOURCE;
    const base = openDescriptors();
    const f = flood(ports, silent);
    try {
      let peak = base;
      await waitFor(
        () => {
          peak = Math.max(peak, openDescriptors());
          const st = f.state();
          return st.open >= ports.length * silent;
        },
        {
          timeoutMs: 15_000,
          intervalMs: 20,
          what: () => `the silent connections (${JSON.stringify(f.state())})`,
        },
      );
      peak = Math.max(peak, openDescriptors());
      // the bound per port, and a little for the relay's own work (a log write, a timer)
      const bound = ports.length * PER_SOURCE + 6;
      assert.ok(
        peak - base <= bound,
        `the relay held ${peak - base} more descriptors under ${ports.length * silent} silent connections (bound ${bound})`,
      );
      await waitFor(() => f.state().closed >= ports.length * (silent - PER_SOURCE), {
        timeoutMs: DEADLINE_MS / 2,
        what: () => `the connections over the bound closed at once (${JSON.stringify(f.state())})`,
      });

      // a second source is served on every port while the first holds its bound
      assert.equal(await socksFrom(stack, "127.0.0.2"), "ping\r\n");
      assert.equal(await healthzFrom(stack.relay.adminAddress.port, "127.0.0.2"), 200);
      assert.equal(await healthzFrom(metricsPort, "127.0.0.2", "/metrics"), 200);
      const welcome = await helloFrom(stack.relay.tunnelAddress.port, stack.agentToken, "127.0.0.2");
      assert.ok(
        typeof welcome !== "number" && welcome.type === "welcome",
        `a welcome, not ${JSON.stringify(welcome)}`,
      );

      // and the first source's silent connections are gone after the deadline
      await waitFor(() => f.state().closed >= ports.length * silent, {
        timeoutMs: DEADLINE_MS + 8_000,
        what: () => `every silent connection closed (${JSON.stringify(f.state())})`,
      });
      await waitFor(() => openDescriptors() <= base + 6, {
        timeoutMs: 5_000,
        what: () => `the relay's descriptors back to ${base} (${openDescriptors()})`,
      });
    } finally {
      f.stop();
    }
    const names = new Set(hits.map((h) => h.limit));
    for (const limit of [
      LIMIT.SOCKS_PREAUTH_PER_SOURCE,
      LIMIT.TUNNEL_PREAUTH_PER_SOURCE,
      LIMIT.ADMIN_PREAUTH_PER_SOURCE,
      LIMIT.SOCKS_HANDSHAKE_DEADLINE,
      LIMIT.TUNNEL_PREAUTH_DEADLINE,
      LIMIT.ADMIN_PREAUTH_DEADLINE,
      LIMIT.METRICS_PREAUTH_PER_SOURCE,
      LIMIT.METRICS_PREAUTH_DEADLINE,
    ]) {
      assert.ok(names.has(limit), `${limit} was counted (${[...names].join(", ")})`);
    }
    assert.ok(
      hits.every((h) => h.key === "127.0.0.1"),
      "every hit names the flooding source",
    );
  });

  it("counts the hits in underpass_limit_hits_total by limit", async () => {
    const res = await stack.relay.admin.inject({
      method: "GET",
      url: "/metrics",
      headers: { authorization: "Bearer test-admin-token-0123456789" },
    });
    const line = res.body
      .split("\n")
      .find((l) => l.startsWith('underpass_limit_hits_total{limit="socks_preauth_per_source"}'));
    assert.ok(line, "the counter has a series per limit");
    assert.ok(Number(line.split(" ").at(-1)) >= 2 * PER_SOURCE, line);
    assert.ok(res.body.includes('underpass_limit_hits_total{limit="buffer_budget"} 0'), "every limit from 0");
  });
});

describe("a source at its bound", () => {
  it("a client of the same source still gets in once a slot is free", async () => {
    const stack = await startStack({ relay: { bounds: { socksPreauthPerSource: 2 } }, agent: false });
    try {
      const a = await connectFrom(stack.socksPort, "127.0.0.1");
      const b = await connectFrom(stack.socksPort, "127.0.0.1");
      // the third of the same source is closed at once
      const c = await connectFrom(stack.socksPort, "127.0.0.1");
      await new Promise((r) => c.once("close", r));
      a.destroy();
      b.destroy();
      // a fourth is admitted once the relay saw the first two go: it gets its method reply
      await waitFor(
        async () => {
          const d = await connectFrom(stack.socksPort, "127.0.0.1");
          d.write(Buffer.from([5, 1, 2]));
          const got = await readAll(d, 2, 1_000).catch(() => Buffer.alloc(0));
          d.destroy();
          return got.length === 2 && got[1] === 2;
        },
        { timeoutMs: 5_000, what: "a method reply once the first two left" },
      );
      const r = await socksReply(stack.socksPort, stack.client, "none.example", 1);
      r.socket.destroy();
      assert.equal(r.reply, 0x02, "and the whole handshake (no mapping: 0x02)");
    } finally {
      await stack.close();
    }
  });
});
