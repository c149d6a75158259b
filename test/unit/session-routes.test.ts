/**
 * The console's session over the admin API, through `inject()` and one real socket: the
 * sign-in cookie and its flags, a cookie standing in for the bearer token, the CSRF and origin
 * proofs a change needs, sign-out ending the session (its event stream included), the
 * per-address backoff on wrong tokens, and the audit entries naming the session.
 */
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import type { InjectOptions, LightMyRequestResponse } from "fastify";
import { silentLogger } from "../../shared/logger.js";
import { type AdminUnderTest, startAdmin } from "../helpers/admin-app.js";
import { waitFor } from "../helpers/ports.js";

const TOKEN = "upadm_session-routes-test-token";

interface Signed {
  readonly cookie: string;
  readonly csrf: string;
  readonly actor: string;
  readonly setCookie: string;
}

describe("console sessions over the admin API", () => {
  let admin: AdminUnderTest;

  before(async () => {
    admin = await startAdmin({ token: TOKEN, logger: silentLogger(), version: "1.2.3" });
  });
  after(async () => {
    await admin.close();
  });

  const inject = (o: InjectOptions): Promise<LightMyRequestResponse> => admin.app.inject(o);

  async function signIn(remoteAddress = "127.0.0.1"): Promise<Signed> {
    const res = await inject({
      method: "POST",
      url: "/v1/session",
      payload: { token: TOKEN },
      remoteAddress,
    });
    assert.equal(res.statusCode, 200, res.body);
    const setCookie = String(res.headers["set-cookie"]);
    const body = res.json() as { csrfToken: string; actor: string };
    return { cookie: setCookie.split(";")[0]!, csrf: body.csrfToken, actor: body.actor, setCookie };
  }

  async function auditOf(event: string): Promise<ReadonlyArray<Record<string, unknown>>> {
    return (await admin.audit.query({ event, limit: 100 })).events;
  }

  it("exchanges the admin token for an HttpOnly, SameSite=Strict, expiring cookie", async () => {
    const s = await signIn();
    assert.match(s.cookie, /^underpass_session=[A-Za-z0-9_-]{43}$/);
    const attrs = s.setCookie.split(";").map((a) => a.trim());
    for (const a of ["Path=/", "HttpOnly", "SameSite=Strict", "Max-Age=43200"])
      assert.ok(attrs.includes(a), a);
    assert.ok(!attrs.includes("Secure"), "plain HTTP: a Secure cookie would never come back");
    assert.match(s.actor, /^console:[0-9a-f]{8}$/);
    const signedIn = await auditOf("console.signed-in");
    assert.equal(signedIn[0]?.["actor"], s.actor);
    assert.ok(!JSON.stringify(signedIn).includes(TOKEN), "the token is in no audit entry");
  });

  it("lets the cookie stand in for the bearer token and answers the session again", async () => {
    const s = await signIn();
    const list = await inject({ method: "GET", url: "/v1/agents", headers: { cookie: s.cookie } });
    assert.equal(list.statusCode, 200);
    const again = await inject({ method: "GET", url: "/v1/session", headers: { cookie: s.cookie } });
    assert.equal(again.statusCode, 200);
    assert.equal(
      (again.json() as { csrfToken: string }).csrfToken,
      s.csrf,
      "a reloaded page gets its CSRF token back",
    );
    const none = await inject({ method: "GET", url: "/v1/session" });
    assert.equal(none.statusCode, 401);
  });

  it("refuses a change made with the cookie but without the CSRF token or from another origin", async () => {
    const s = await signIn();
    const body = { name: "from the console" };
    const tries: Array<[string, Record<string, string>]> = [
      ["no CSRF token", { cookie: s.cookie }],
      ["a wrong CSRF token", { cookie: s.cookie, "x-csrf-token": `${s.csrf}x` }],
      ["another origin", { cookie: s.cookie, "x-csrf-token": s.csrf, origin: "https://evil.example" }],
      ["another site", { cookie: s.cookie, "x-csrf-token": s.csrf, "sec-fetch-site": "cross-site" }],
    ];
    for (const [what, headers] of tries) {
      const res = await inject({ method: "POST", url: "/v1/agents", headers, payload: body });
      assert.equal(res.statusCode, 403, `${what}: ${res.body}`);
      assert.equal((res.json() as { error: string }).error, "UP_ERR_FORBIDDEN", what);
    }
    assert.equal((await auditOf("admin.agent.created")).length, 0, "nothing was created");
    const ok = await inject({
      method: "POST",
      url: "/v1/agents",
      headers: {
        cookie: s.cookie,
        "x-csrf-token": s.csrf,
        origin: "http://localhost:80",
        "sec-fetch-site": "same-origin",
      },
      payload: body,
    });
    assert.equal(ok.statusCode, 201, ok.body);
    const [created] = await auditOf("admin.agent.created");
    assert.equal(created?.["actor"], s.actor, "the audit entry names the session");
    const bearer = await inject({
      method: "POST",
      url: "/v1/agents",
      headers: { authorization: `Bearer ${TOKEN}` },
      payload: body,
    });
    assert.equal(bearer.statusCode, 201, "the bearer token needs no CSRF proof");
    assert.equal((await auditOf("admin.agent.created"))[0]?.["actor"], "admin-token");
  });

  it("signs out on the server: the old cookie is refused and its event stream ends", async () => {
    const s = await signIn();
    await admin.app.listen({ host: "127.0.0.1", port: 0 });
    const { port } = admin.app.server.address() as { port: number };
    const stream = await fetch(`http://127.0.0.1:${port}/v1/events`, { headers: { cookie: s.cookie } });
    assert.equal(stream.status, 200);
    const reader = stream.body!.getReader();
    await reader.read(); // the stream's first bytes: it is open
    const noProof = await inject({ method: "DELETE", url: "/v1/session", headers: { cookie: s.cookie } });
    assert.equal(noProof.statusCode, 403, "sign-out is a change too");
    const out = await inject({
      method: "DELETE",
      url: "/v1/session",
      headers: { cookie: s.cookie, "x-csrf-token": s.csrf },
    });
    assert.equal(out.statusCode, 204);
    assert.match(String(out.headers["set-cookie"]), /^underpass_session=; .*Max-Age=0/);
    const ended = await reader.read().then(
      (r) => r.done,
      () => true,
    );
    assert.equal(ended, true, "the event stream of the session ended with it");
    const refused = await inject({ method: "GET", url: "/v1/agents", headers: { cookie: s.cookie } });
    assert.equal(refused.statusCode, 401);
    assert.equal((refused.json() as { error: string }).error, "UP_ERR_AUTH");
    assert.match(String(refused.headers["www-authenticate"]), /^Bearer/);
    assert.equal((await auditOf("console.signed-out"))[0]?.["actor"], s.actor);
  });

  it("refuses a sign-in from another origin", async () => {
    const res = await inject({
      method: "POST",
      url: "/v1/session",
      payload: { token: TOKEN },
      headers: { origin: "https://evil.example" },
    });
    assert.equal(res.statusCode, 403);
  });

  it("backs off an address that keeps sending wrong tokens, then lets the right one in", async () => {
    const remoteAddress = "192.0.2.50";
    const wrong = {
      method: "POST" as const,
      url: "/v1/session",
      payload: { token: "not-the-token" },
      remoteAddress,
    };
    for (let i = 0; i < 4; i++)
      assert.equal((await inject(wrong)).statusCode, 401, `failure ${i + 1} is free`);
    const fifth = await inject(wrong);
    assert.equal(fifth.statusCode, 429, fifth.body);
    assert.equal(fifth.headers["retry-after"], "1");
    assert.equal((fifth.json() as { error: string }).error, "UP_ERR_RATE_LIMITED");
    const right = { ...wrong, payload: { token: TOKEN } };
    const held = await inject(right);
    assert.equal(held.statusCode, 429, "while the address waits, not even the right token is compared");
    assert.equal(
      (await inject({ ...right, remoteAddress: "192.0.2.51" })).statusCode,
      200,
      "other addresses pass",
    );
    const passed = await waitFor(async () => ((await inject(right)).statusCode === 200 ? true : undefined), {
      timeoutMs: 5000,
      intervalMs: 100,
      what: "the right token once the wait is over",
    });
    assert.equal(passed, true);
    assert.equal((await inject(wrong)).statusCode, 401, "success cleared the record");
    const failed = await auditOf("console.sign-in-failed");
    assert.ok(failed.length >= 6);
    assert.equal(failed[0]?.["remote"], remoteAddress);
  });
});
