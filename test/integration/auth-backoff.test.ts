/**
 * Failed authentications are rate-limited without locking the right secret out: a loop of
 * wrong passwords (or unknown agent tokens) from one source slows to a few attempts per
 * second, the right password (token) from the same source is answered at once meanwhile, a
 * client that hangs up before its failure is answered does not buy a faster retry, and the
 * audit trail holds the first failure and summaries instead of one entry per attempt.
 */
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { LIMIT } from "../../cloud/limits/limit-names.js";
import { connectFrom, helloFrom } from "../helpers/flood.js";
import { waitFor } from "../helpers/ports.js";
import { type Json, type Stack, socksReply, startStack } from "../helpers/stack.js";
import { readAll } from "../helpers/targets.js";

/** Failures answered at once, and the longest wait after them, in ms. */
const FREE = 3;
const MAX_DELAY_MS = 400;
/** How long each loop of wrong secrets runs, in ms. */
const LOOP_MS = 2_000;
/** Audit summaries come this often, in ms. */
const SUMMARY_MS = 500;

describe("failed authentications", () => {
  let stack: Stack;

  before(async () => {
    stack = await startStack({
      relay: {
        bounds: { authFreeFailures: FREE, authBackoffMaxMs: MAX_DELAY_MS, summaryPeriodMs: SUMMARY_MS },
      },
    });
  });

  after(async () => {
    await stack?.close();
  });

  it("slows a loop of wrong passwords from one source; the right one passes at once meanwhile", async () => {
    const wrong = { username: stack.client.username, password: "ups_wrong-password-0000000000" };
    const rightMs: number[] = [];
    let attempts = 0;
    const until = performance.now() + LOOP_MS;
    const attack = (async () => {
      while (performance.now() < until) {
        const r = await socksReply(stack.socksPort, wrong, "none.example", 1);
        r.socket.destroy();
        assert.equal(r.reply, "auth-failed");
        attempts++;
      }
    })();
    const legit = (async () => {
      while (performance.now() < until) {
        const t0 = performance.now();
        const r = await socksReply(stack.socksPort, stack.client, "none.example", 1);
        r.socket.destroy();
        assert.equal(r.reply, 0x02, "authenticated (and the destination denied)");
        rightMs.push(performance.now() - t0);
        await new Promise((resolve) => setTimeout(resolve, 150));
      }
    })();
    await Promise.all([attack, legit]);
    const perSecond = attempts / (LOOP_MS / 1000);
    // 3 at once, then 100, 200, 400, 400 … ms: about 8 in 2 s; thousands without the backoff
    assert.ok(
      attempts <= FREE + LOOP_MS / 100,
      `${attempts} wrong passwords in ${LOOP_MS} ms (${perSecond}/s)`,
    );
    assert.ok(attempts > FREE, "the loop did run past the free failures");
    assert.ok(rightMs.length >= 5, "the right password was tried meanwhile");
    assert.ok(
      rightMs.every((ms) => ms < MAX_DELAY_MS / 2),
      `the right password is never delayed by the failures: ${rightMs.map((ms) => ms.toFixed(1)).join(", ")} ms`,
    );

    // the audit trail: the first failure, then summaries that count the rest
    await waitFor(
      async () => {
        const events = (await stack.api("GET", "/v1/audit?event=socks.auth-failed&limit=1000")).body
          .events as Json[];
        const single = events.filter((e) => e.summary !== true).length;
        const suppressed = events.reduce((n, e) => n + (e.summary === true ? e.suppressed : 0), 0);
        return single + suppressed === attempts && single <= 1 + LOOP_MS / SUMMARY_MS ? true : undefined;
      },
      { timeoutMs: 5_000, what: "the audit entries to account for every failure" },
    );
    const events = (await stack.api("GET", "/v1/audit?event=socks.auth-failed&limit=1000")).body
      .events as Json[];
    assert.ok(events.length < attempts, `${events.length} audit entries for ${attempts} failures`);
    const limited = (await stack.api("GET", "/v1/audit?event=limit.hit&limit=1000")).body.events as Json[];
    assert.ok(
      limited.some((e) => e.limit === LIMIT.SOCKS_AUTH_BACKOFF),
      "the backoff is a limit hit",
    );
  });

  it("keeps the slot of a client that hangs up before its failure is answered", async () => {
    const tight = await startStack({
      agent: false,
      relay: { bounds: { authFreeFailures: 1, authBackoffMaxMs: 3_000, socksPreauthPerSource: 2 } },
    });
    try {
      const wrong = { username: tight.client.username, password: "ups_wrong-password-0000000000" };
      // five failures waited for: 0, 100, 200, 400 and 800 ms; the next one waits 1.6 s
      for (let i = 0; i < 5; i++) {
        const r = await socksReply(tight.socksPort, wrong, "none.example", 1);
        r.socket.destroy();
        assert.equal(r.reply, "auth-failed");
      }
      const u = Buffer.from(wrong.username);
      const p = Buffer.from(wrong.password);
      const attempt = async (): Promise<number> => {
        const s = await connectFrom(tight.socksPort, "127.0.0.1");
        s.write(Buffer.concat([Buffer.from([5, 1, 2, 1, u.length]), u, Buffer.from([p.length]), p]));
        // the method reply (or nothing: turned away), then no success within 50 ms: hang up
        const got = await readAll(s, 2, 1_000).catch(() => Buffer.alloc(0));
        await new Promise((resolve) => setTimeout(resolve, 50));
        s.destroy();
        return got.length;
      };
      assert.equal(await attempt(), 2, "the first hung-up attempt was taken");
      assert.equal(await attempt(), 2, "the second too");
      // both slots of the source stay taken for their failures' wait, though both hung up
      assert.equal(await attempt(), 0, "a third is turned away: hanging up bought no retry");
    } finally {
      await tight.close();
    }
  });

  it("slows a loop of unknown agent tokens; the right token is welcomed at once meanwhile", async () => {
    let attempts = 0;
    const rightMs: number[] = [];
    const until = performance.now() + LOOP_MS;
    const attack = (async () => {
      while (performance.now() < until) {
        const answer = await helloFrom(stack.relay.tunnelAddress.port, `upa_${"B".repeat(32)}`, "127.0.0.1");
        assert.ok(typeof answer === "number" || answer.type === "goaway", "refused");
        attempts++;
      }
    })();
    const legit = (async () => {
      while (performance.now() < until) {
        const t0 = performance.now();
        const answer = await helloFrom(stack.relay.tunnelAddress.port, stack.agentToken, "127.0.0.1");
        assert.ok(typeof answer !== "number" && answer.type === "welcome", "welcomed");
        rightMs.push(performance.now() - t0);
        await new Promise((resolve) => setTimeout(resolve, 150));
      }
    })();
    await Promise.all([attack, legit]);
    assert.ok(attempts <= FREE + LOOP_MS / 100, `${attempts} unknown tokens in ${LOOP_MS} ms`);
    assert.ok(
      rightMs.every((ms) => ms < MAX_DELAY_MS / 2),
      `the right token is never delayed: ${rightMs.map((ms) => ms.toFixed(1)).join(", ")} ms`,
    );
    const rejected = (await stack.api("GET", "/v1/audit?event=agent.rejected&limit=1000")).body
      .events as Json[];
    assert.ok(rejected.length < attempts, `${rejected.length} audit entries for ${attempts} refused hellos`);
  });
});
