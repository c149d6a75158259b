/**
 * The console's session in Debian's chromium against a real `underpass cloud`: signing in from
 * the keyboard, the cookie's flags as the browser stores them, a change without the CSRF proof
 * refused (from the page itself and from another origin), sign-out ending the session on the
 * relay, the sign-in backoff shown and lifted, and the page on a narrow window.
 */
import assert from "node:assert/strict";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import type { Cookie } from "playwright-core";
import { type BrowserUnderTest, openBrowser, screenshot, signIn, textOf } from "../helpers/browser.js";
import { ChildRegistry } from "../helpers/clients.js";
import { type CloudProcess, startCloud } from "../helpers/processes.js";

const ADMIN_TOKEN = "console-session-admin-token-0123456789";
const COOKIE = "underpass_session";
/** Bound on any one thing the page must show, in ms. */
const SHOWN_MS = 20_000;

describe("console: the session in a real browser", () => {
  const registry = new ChildRegistry();
  let dataDir = "";
  let cloud: CloudProcess;
  let b: BrowserUnderTest;
  let base = "";

  before(async () => {
    dataDir = await mkdtemp(join(tmpdir(), "underpass-console-session-"));
    cloud = await startCloud({ dataDir, adminToken: ADMIN_TOKEN, registry });
    base = `http://127.0.0.1:${cloud.ports.admin}`;
    b = await openBrowser({ baseURL: base });
  });

  after(async () => {
    await b?.close();
    await cloud?.stop();
    await registry.killAll();
    if (dataDir) await rm(dataDir, { recursive: true, force: true });
  });

  const sessionCookie = async (): Promise<Cookie | undefined> =>
    (await b.context.cookies()).find((c) => c.name === COOKIE);

  /** A request from outside the browser, carrying the browser's cookie. */
  const withCookie = (path: string, cookie: string, init: RequestInit = {}): Promise<Response> =>
    fetch(`${base}${path}`, {
      ...init,
      headers: { cookie: `${COOKIE}=${cookie}`, ...(init.headers as Record<string, string>) },
      signal: AbortSignal.timeout(10_000),
    });

  it("signs in from the keyboard; the cookie is HttpOnly, SameSite=Strict, Path=/ and expires in 12 h", async () => {
    const { page } = b;
    await page.goto("/");
    await page.getByLabel("Admin token").waitFor();
    await screenshot(page, "console-sign-in");
    // the token field has the focus on arrival: type, Enter
    const answer = page.waitForResponse(
      (r) => r.url().endsWith("/v1/session") && r.request().method() === "POST",
    );
    await page.keyboard.type(ADMIN_TOKEN);
    await page.keyboard.press("Enter");
    const res = await answer;
    assert.equal(res.status(), 200);
    assert.match(
      (await res.allHeaders())["set-cookie"] ?? "",
      /; Path=\/; HttpOnly; SameSite=Strict; Max-Age=43200$/,
    );
    await page.getByTestId("live-status").filter({ hasText: "live" }).waitFor({ timeout: SHOWN_MS });

    const c = await sessionCookie();
    assert.ok(c, "the session cookie is set");
    assert.equal(c.httpOnly, true);
    assert.equal(c.sameSite, "Strict");
    assert.equal(c.path, "/");
    assert.equal(c.secure, false, "plain HTTP here; console-tls checks Secure");
    const hours = (c.expires * 1000 - Date.now()) / 3_600_000;
    assert.ok(hours > 11.9 && hours <= 12, `expires in ${hours} h`);
    assert.equal(await page.evaluate("document.cookie"), "", "the page's scripts cannot read it");
    assert.ok(
      !cloud.stderr().includes(ADMIN_TOKEN) && !cloud.stdout().includes(ADMIN_TOKEN),
      "no log line has the token",
    );

    // the keyboard reaches the page with a visible focus: first the skip link, then the pages
    await page.keyboard.press("Tab");
    assert.equal(await page.evaluate("document.activeElement.textContent"), "Skip to content");
    await page.keyboard.press("Tab");
    await page.keyboard.press("Tab");
    assert.equal(await page.evaluate("document.activeElement.textContent"), "Overview");
    assert.equal(await page.evaluate("getComputedStyle(document.activeElement).outlineStyle"), "solid");
  });

  it("refuses a change carrying the session cookie without its CSRF token, or from another origin", async () => {
    const { page } = b;
    // the page's own fetch: same origin, the browser adds the cookie, but no x-csrf-token
    const inPage = (await page.evaluate(`fetch("/v1/agents", {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ name: "forged" }),
      }).then(async (r) => ({ status: r.status, body: await r.json() }))`)) as {
      status: number;
      body: { error: string };
    };
    assert.equal(inPage.status, 403);
    assert.equal(inPage.body.error, "UP_ERR_FORBIDDEN");

    const c = await sessionCookie();
    assert.ok(c);
    const session = (await (await withCookie("/v1/session", c.value)).json()) as { csrfToken: string };
    const post = (headers: Record<string, string>) =>
      withCookie("/v1/agents", c.value, {
        method: "POST",
        headers: { "content-type": "application/json", "x-csrf-token": session.csrfToken, ...headers },
        body: JSON.stringify({ name: "from a script" }),
      });
    assert.equal((await post({ origin: "https://evil.example" })).status, 403, "another origin");
    assert.equal((await post({ "sec-fetch-site": "cross-site" })).status, 403, "another site");
    assert.equal((await post({})).status, 201, "with its proof, the cookie may change things");
    const agents = await cloud.admin.expect("GET", "/v1/agents", undefined, 200);
    assert.deepEqual(
      agents.map((a: { name: string }) => a.name),
      ["from a script"],
      "nothing refused was created",
    );
  });

  it("notices a session that ended elsewhere and asks for the token again", async () => {
    const { page } = b;
    const c = await sessionCookie();
    assert.ok(c);
    const session = (await (await withCookie("/v1/session", c.value)).json()) as { csrfToken: string };
    const ended = await withCookie("/v1/session", c.value, {
      method: "DELETE",
      headers: { "x-csrf-token": session.csrfToken },
    });
    assert.equal(ended.status, 204);
    // the relay ends the page's event stream; its reconnection is refused; the page says why
    await page.locator(".notice", { hasText: "Your session ended" }).waitFor({ timeout: SHOWN_MS });
    await signIn(page, ADMIN_TOKEN, SHOWN_MS);
  });

  it("signs out: the relay refuses the old cookie and the page asks for the token again", async () => {
    const { page } = b;
    const old = await sessionCookie();
    assert.ok(old);
    await page.getByTestId("sign-out").click();
    await page.getByLabel("Admin token").waitFor({ timeout: SHOWN_MS });
    assert.match(await textOf(page.locator(".notice")), /Signed out/);
    assert.equal(await sessionCookie(), undefined, "the browser dropped the cookie");
    const res = await withCookie("/v1/agents", old.value);
    assert.equal(res.status, 401);
    assert.equal(((await res.json()) as { error: string }).error, "UP_ERR_AUTH");
    assert.equal((await withCookie("/v1/events", old.value)).status, 401, "nor may it follow the events");
    const ended = await cloud.admin.expect("GET", "/v1/audit?event=console.signed-out", undefined, 200);
    assert.equal(ended.events.length, 2, "this sign-out and the one from outside the page");
  });

  it("backs off after failed sign-ins, says when to retry, and lets the right token in then", async () => {
    const { page } = b;
    const token = page.getByLabel("Admin token");
    const error = page.getByTestId("sign-in-error");
    const submit = page.getByRole("button", { name: "Sign in", exact: true });
    for (let i = 1; i <= 4; i++) {
      await token.fill(`wrong-token-${i}`);
      await submit.click();
      await error.filter({ hasText: "Wrong admin token." }).waitFor({ timeout: SHOWN_MS });
    }
    await token.fill("wrong-token-5");
    await submit.click();
    await error
      .filter({ hasText: /Too many failed sign-ins from this address\. Try again in \d+ s\./ })
      .waitFor({
        timeout: SHOWN_MS,
      });
    assert.equal(await submit.isDisabled(), true, "the form waits out the Retry-After");
    await screenshot(page, "console-rate-limit");
    await page.locator("button[type=submit]:not([disabled])").waitFor({ timeout: SHOWN_MS });
    await token.fill(ADMIN_TOKEN);
    await submit.click();
    await page.getByTestId("live-status").waitFor({ timeout: SHOWN_MS });
    const failed = await cloud.admin.expect("GET", "/v1/audit?event=console.sign-in-failed", undefined, 200);
    assert.equal(failed.events.length, 5);
    assert.ok(!JSON.stringify(failed).includes("wrong-token"), "a wrong token is not written down either");
  });

  it("stays readable on a narrow window: nothing wider than the screen but the tables, which scroll", async () => {
    const { page } = b;
    await page.setViewportSize({ width: 400, height: 800 });
    await page.getByRole("link", { name: "Overview", exact: true }).click();
    await page.getByTestId("traffic-chart").waitFor();
    await page.getByTestId("locations").waitFor();
    assert.ok(
      Number(await page.evaluate("document.documentElement.scrollWidth")) <= 400,
      "no sideways scroll of the page",
    );
    await screenshot(page, "console-narrow");
    assert.deepEqual(b.pageErrors, [], "no uncaught error in the page");
  });
});
