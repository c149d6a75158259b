/**
 * Clients that never read cannot make the relay hold more than its buffer budget: a relay in
 * a child process (`underpass cloud`), an agent, a target that streams without end, and many
 * connections of one client that never read. The relay's RSS grows by a bounded amount, the
 * connections past the client's budget are refused with 0x01, and another client keeps
 * getting its bytes.
 */
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { createServer, type Server, type Socket } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { type Agent, startAgent } from "../../agent/agent.js";
import { allowAll } from "../../agent/policy.js";
import { DEFAULT_LIMITS } from "../../shared/tunnel/constants.js";
import { waitFor } from "../helpers/ports.js";
import { type CloudProcess, startCloud } from "../helpers/processes.js";
import { type Json, socksReply, testLogger } from "../helpers/stack.js";

const MiB = 1024 * 1024;
/** A stream's initial window: what it holds until it grows. */
const WINDOW = DEFAULT_LIMITS.initialWindow;
/** The hog's budget and the relay's, in bytes: 16 and 32 windows. */
const CLIENT_BUDGET = 16 * WINDOW;
const TOTAL_BUDGET = 32 * WINDOW;
/** The case: 500 non-reading connections, whose windows alone would be 125 MiB. */
const NON_READERS = 500;

function rssMiB(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
  return m ? Number(m[1]) / 1024 : Number.NaN;
}

describe("the buffer budget against clients that never read", () => {
  let dataDir: string;
  let cloud: CloudProcess;
  let agent: Agent;
  let target: Server;
  const sockets = new Set<Socket>();
  const held: Socket[] = [];

  before(async () => {
    dataDir = await mkdtemp(join(tmpdir(), "underpass-budget-"));
    const chunk = Buffer.alloc(256 * 1024, 0x5a);
    target = createServer((s) => {
      sockets.add(s);
      s.on("close", () => sockets.delete(s));
      s.on("error", () => {});
      const pump = (): void => {
        while (!s.destroyed && s.write(chunk)) {
          // fill until the socket says stop; 'drain' resumes
        }
      };
      s.on("drain", pump);
      pump();
    });
    await new Promise<void>((resolve) => target.listen(0, "127.0.0.1", resolve));
    cloud = await startCloud({
      dataDir,
      adminToken: "budget-admin-token-0123456789",
      env: {
        UNDERPASS_CLIENT_BUFFER_BYTES: String(CLIENT_BUDGET),
        UNDERPASS_BUFFER_BUDGET_BYTES: String(TOTAL_BUDGET),
      },
    });
    const address = target.address();
    await cloud.admin.addMapping({
      virtualHost: "stream.budget",
      virtualPort: 9,
      internalHost: "127.0.0.1",
      internalPort: typeof address === "object" && address ? address.port : 0,
    });
    const agentRec = await cloud.admin.addAgent("budget-agent");
    agent = startAgent({
      relayUrl: cloud.relayUrl,
      token: agentRec.token,
      policy: allowAll(),
      logger: testLogger("agent"),
    });
    await agent.waitUp(1, 20_000);
  });

  after(async () => {
    for (const s of held) s.destroy();
    await agent?.close();
    await cloud?.stop();
    for (const s of sockets) s.destroy();
    target?.close();
    if (dataDir) await rm(dataDir, { recursive: true, force: true });
  });

  /** Bytes carried towards clients so far, over the live connections. */
  async function bytesDown(): Promise<number> {
    const list = (await cloud.admin.expect("GET", "/v1/connections", undefined, 200)) as Json[];
    return list.reduce((n, c) => n + c.bytesDown, 0);
  }

  it("keeps the relay's RSS within a bound, refuses past the client's budget, and serves another client", async (t) => {
    const hog = await cloud.admin.addClient("hog");
    const other = await cloud.admin.addClient("other");
    const pid = cloud.child.pid!;
    const before = rssMiB(pid);
    const replies: Record<string, number> = {};
    for (let i = 0; i < NON_READERS; i++) {
      const r = await socksReply(cloud.ports.socks, hog, "stream.budget", 9);
      replies[String(r.reply)] = (replies[String(r.reply)] ?? 0) + 1;
      r.socket.pause(); // never read
      held.push(r.socket);
    }
    // until the admitted streams have filled whatever may be held for them
    let last = -1;
    await waitFor(
      async () => {
        const now = await bytesDown();
        const settled = now === last;
        last = now;
        return settled;
      },
      { timeoutMs: 20_000, intervalMs: 500, what: "the non-reading streams to fill" },
    );
    const peak = rssMiB(pid);
    t.diagnostic(
      `relay RSS ${before.toFixed(0)} MiB before, ${peak.toFixed(0)} MiB with ${NON_READERS} non-readers (${JSON.stringify(replies)})`,
    );
    assert.ok((replies["0"] ?? 0) >= 1, "the first connections are carried");
    assert.ok(
      (replies["1"] ?? 0) >= NON_READERS / 2,
      `the rest are refused with 0x01: ${JSON.stringify(replies)}`,
    );
    // 500 streams of 256 KiB would be 125 MiB, more as their windows grew; the budget lets the hog hold 4 MiB
    assert.ok(peak - before < 100, `the relay's RSS grew by ${(peak - before).toFixed(0)} MiB`);

    // another client is carried meanwhile
    const o = await socksReply(cloud.ports.socks, other, "stream.budget", 9);
    assert.equal(o.reply, 0x00);
    let got = 0;
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`only ${got} bytes in 15 s`)), 15_000);
      o.socket.on("data", (d: Buffer) => {
        got += d.length;
        if (got >= 8 * MiB) {
          clearTimeout(timer);
          resolve();
        }
      });
    });
    o.socket.destroy();

    const metrics = await fetch(`${cloud.admin.baseUrl}/metrics`, {
      headers: { authorization: `Bearer ${cloud.admin.token}` },
    }).then((r) => r.text());
    assert.match(metrics, /underpass_limit_hits_total\{limit="client_buffer_budget"\} [1-9]/);
  });
});
