/**
 * Failed admin authentications are limited per source and per presented token over real HTTP:
 * a flood of wrong tokens from one address is answered 429 with Retry-After once past the
 * bound, the right token passes meanwhile from that address and from another, a wrong token
 * retried from many addresses is limited by its own key, the audit trail accounts for every
 * failure in a few entries, and the limit hits are counted. A 429 waits its delay, so a loop
 * that awaits its answers slows to one guess per delay, while the right token is not delayed.
 */
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { Agent, request } from "node:http";
import { after, before, describe, it } from "node:test";
import { LIMIT } from "../../cloud/limits/limit-names.js";
import { waitFor } from "../helpers/ports.js";
import { scrape } from "../helpers/prometheus.js";
import { ADMIN_TOKEN, type Json, type Stack, startStack } from "../helpers/stack.js";

/** Failures of a source or a token answered 401 before 429. */
const FAILURES = 5;
/** Wrong tokens in the flood. */
const FLOOD = 1_000;
/** How long a 429 waits in the flood, in ms: short, so that the flood is quick. */
const FLOOD_DELAY_MS = 5;
/** Audit summaries come this often, in ms. */
const SUMMARY_MS = 500;

interface Answer {
  readonly status: number;
  readonly headers: Record<string, string | string[] | undefined>;
  readonly body: Json;
}

/** GET `path` of the admin port from `localAddress` with `token` (none: no header). */
function get(
  port: number,
  path: string,
  token: string | null,
  localAddress: string,
  agent?: Agent,
): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = request(
      {
        host: "127.0.0.1",
        port,
        path,
        localAddress,
        agent,
        headers: token === null ? {} : { authorization: `Bearer ${token}` },
        timeout: 30_000,
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on("data", (c: Buffer) => chunks.push(c));
        res.on("end", () => {
          const text = Buffer.concat(chunks).toString("utf8");
          resolve({
            status: res.statusCode ?? 0,
            headers: res.headers,
            body: text ? JSON.parse(text) : null,
          });
        });
        res.on("error", reject);
      },
    );
    req.on("timeout", () => req.destroy(new Error(`GET ${path} timed out`)));
    req.on("error", reject);
    req.end();
  });
}

const wrongToken = (): string => `upadm_${randomBytes(24).toString("base64url")}`;

describe("failed admin authentications", () => {
  let stack: Stack;
  let port: number;

  before(async () => {
    stack = await startStack({
      agent: false,
      relay: {
        bounds: {
          adminAuthFailures: FAILURES,
          adminAuthWindowMs: 60_000,
          adminAuthDelayMs: FLOOD_DELAY_MS,
          summaryPeriodMs: SUMMARY_MS,
        },
      },
    });
    port = stack.relay.adminAddress.port;
  });

  after(async () => {
    await stack?.close();
  });

  it("answers a flood of wrong tokens 429 past the bound; the right token passes from the same and another source", async () => {
    const keepAlive = new Agent({ keepAlive: true, maxSockets: 8 });
    const statuses = new Map<number, number>();
    let retryAfter: string | string[] | undefined;
    let limitedBody: Json;
    const rightMs: number[] = [];
    let done = false;
    const started = performance.now();
    try {
      const flood = (async () => {
        let sent = 0;
        const worker = async (): Promise<void> => {
          while (sent < FLOOD) {
            sent++;
            const a = await get(port, "/v1/agents", wrongToken(), "127.0.0.1", keepAlive);
            statuses.set(a.status, (statuses.get(a.status) ?? 0) + 1);
            if (a.status === 429) {
              retryAfter = a.headers["retry-after"];
              limitedBody = a.body;
            }
          }
        };
        await Promise.all(Array.from({ length: 8 }, worker));
        done = true;
      })();
      const legit = (async () => {
        for (let i = 0; !done || i < 4; i++) {
          for (const from of ["127.0.0.1", "127.0.0.2"]) {
            const t0 = performance.now();
            const a = await get(port, "/v1/agents", ADMIN_TOKEN, from);
            assert.equal(a.status, 200, `the right token from ${from} passes: ${JSON.stringify(a.body)}`);
            rightMs.push(performance.now() - t0);
          }
        }
      })();
      await Promise.all([flood, legit]);
    } finally {
      keepAlive.destroy();
    }
    assert.equal(statuses.get(401), FAILURES, `the first ${FAILURES} failures are 401: ${[...statuses]}`);
    assert.equal(statuses.get(429), FLOOD - FAILURES, `the rest are 429: ${[...statuses]}`);
    assert.ok(Number(retryAfter) >= 1 && Number(retryAfter) <= 60, `Retry-After: ${retryAfter}`);
    assert.equal(limitedBody.error, "UP_ERR_RATE_LIMITED");
    assert.match(limitedBody.message, /try again in \d+ s/);
    assert.ok(rightMs.length >= 8, "the right token was tried during the flood");

    // a wrong token from another source is that source's own failure: 401, not 429
    const other = await get(port, "/v1/agents", wrongToken(), "127.0.0.2");
    assert.equal(other.status, 401);
    assert.equal(other.body.error, "UP_ERR_AUTH");
    // no header at all from the flooded source is limited too
    const bare = await get(port, "/v1/agents", null, "127.0.0.1");
    assert.equal(bare.status, 429);

    // the audit trail: a few entries whose summaries account for every failure
    const failures = FLOOD + 2;
    const audit = async (): Promise<Json[]> =>
      (await stack.api("GET", "/v1/audit?event=admin.auth-failed&limit=1000")).body.events as Json[];
    await waitFor(
      async () => {
        const events = await audit();
        const single = events.filter((e) => e.summary !== true).length;
        const suppressed = events.reduce((n, e) => n + (e.summary === true ? e.suppressed : 0), 0);
        return single + suppressed === failures ? true : undefined;
      },
      { timeoutMs: 10_000, what: "the audit entries to account for every failure" },
    );
    const events = await audit();
    // per source: the first entry, then at most one summary per period since the flood began
    const periods = Math.ceil((performance.now() - started) / SUMMARY_MS) + 1;
    assert.ok(
      events.length <= 2 * (1 + periods) && events.length < failures / 10,
      `${events.length} audit entries for ${failures} failures in ${periods} periods`,
    );
    assert.ok(!JSON.stringify(events).includes(ADMIN_TOKEN), "the admin token is never written");
    const first = events.findLast((e) => e.summary !== true && e.remote === "127.0.0.1");
    assert.equal(first?.reason, "invalid");
    assert.match(String(first?.secretId), /^[0-9a-f]{12}$/);

    // the metrics: every failure, every 429 a limit hit
    const m = await scrape(stack);
    assert.equal(m.value("underpass_auth_failures_total", { kind: "admin" }), failures);
    assert.equal(
      m.value("underpass_limit_hits_total", { limit: LIMIT.ADMIN_AUTH_PER_SOURCE }),
      FLOOD - FAILURES + 1,
    );
    const hits = (await stack.api("GET", "/v1/audit?event=limit.hit&limit=1000")).body.events as Json[];
    assert.ok(
      hits.some((e) => e.limit === LIMIT.ADMIN_AUTH_PER_SOURCE),
      "audited as a limit hit",
    );
    const hitPeriods = Math.ceil((performance.now() - started) / SUMMARY_MS) + 1;
    assert.ok(hits.length <= 1 + hitPeriods, `${hits.length} limit.hit entries in ${hitPeriods} periods`);
  });

  it("limits one wrong token retried from many sources by the token's own key", async () => {
    const stale = wrongToken();
    const answers: number[] = [];
    // two tries from each of six fresh sources: no source reaches its bound, the token does
    for (let i = 0; i < 6; i++) {
      for (let j = 0; j < 2; j++) {
        answers.push((await get(port, "/v1/clients", stale, `127.0.1.${i + 1}`)).status);
      }
    }
    assert.deepEqual(answers, [...Array(FAILURES).fill(401), ...Array(12 - FAILURES).fill(429)]);
    // another wrong token from one of those sources is still its source's failure: 401
    assert.equal((await get(port, "/v1/clients", wrongToken(), "127.0.1.6")).status, 401);
    assert.equal((await get(port, "/v1/clients", ADMIN_TOKEN, "127.0.1.6")).status, 200);
    const m = await scrape(stack);
    assert.equal(
      m.value("underpass_limit_hits_total", { limit: LIMIT.ADMIN_AUTH_PER_SECRET }),
      12 - FAILURES,
    );
  });

  it("answers a 429 only after its delay, so a loop that awaits its answers slows down; the right token is not delayed", async () => {
    const DELAY_MS = 400;
    const LOOP_MS = 2_000;
    const slow = await startStack({
      agent: false,
      relay: { bounds: { adminAuthFailures: 2, adminAuthDelayMs: DELAY_MS } },
    });
    try {
      const at = slow.relay.adminAddress.port;
      let attempts = 0;
      const limitedMs: number[] = [];
      const rightMs: number[] = [];
      const until = performance.now() + LOOP_MS;
      const attack = (async () => {
        while (performance.now() < until) {
          const t0 = performance.now();
          const a = await get(at, "/v1/agents", wrongToken(), "127.0.2.1");
          if (a.status === 429) limitedMs.push(performance.now() - t0);
          attempts++;
        }
      })();
      const legit = (async () => {
        while (performance.now() < until) {
          const t0 = performance.now();
          assert.equal((await get(at, "/v1/agents", ADMIN_TOKEN, "127.0.2.1")).status, 200);
          rightMs.push(performance.now() - t0);
          await new Promise((resolve) => setTimeout(resolve, 100));
        }
      })();
      await Promise.all([attack, legit]);
      // 2 at once, then one per 400 ms: about 7 in 2 s; hundreds without the delay
      assert.ok(attempts <= 2 + LOOP_MS / DELAY_MS + 1, `${attempts} awaited wrong tokens in ${LOOP_MS} ms`);
      assert.ok(limitedMs.length >= 2, "the loop got past the free failures");
      assert.ok(
        limitedMs.every((ms) => ms >= DELAY_MS - 5),
        `each 429 waited its delay: ${limitedMs.map((ms) => ms.toFixed(0)).join(", ")} ms`,
      );
      assert.ok(rightMs.length >= 5, "the right token was tried meanwhile");
      const sorted = [...rightMs].sort((x, y) => x - y);
      assert.ok(
        sorted[Math.floor(sorted.length / 2)]! < DELAY_MS / 2,
        `the right token from the same source is not delayed: ${rightMs.map((ms) => ms.toFixed(0)).join(", ")} ms`,
      );
    } finally {
      await slow.close();
    }
  });
});
