/**
 * The admin listener over HTTPS (UNDERPASS_ADMIN_TLS_CERT / UNDERPASS_ADMIN_TLS_KEY): the
 * console signs in through TLS and its cookie becomes Secure with the `__Host-` prefix; plain
 * HTTP gets no answer from that port; a pair that is incomplete or unreadable stops the relay
 * at start with exit 2, naming the variable.
 */
import assert from "node:assert/strict";
import { mkdtemp, rm } from "node:fs/promises";
import { request } from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { type BrowserUnderTest, openBrowser, screenshot, signIn } from "../helpers/browser.js";
import { ChildRegistry, formatResult, spawnBounded } from "../helpers/clients.js";
import {
  CLI,
  type CliProcess,
  cliEnv,
  cloudEnv,
  freeCloudPorts,
  isRelayListening,
  REPO_ROOT,
  spawnCli,
} from "../helpers/processes.js";
import { makeSelfSignedCert, type SelfSignedCert } from "../helpers/tls.js";

const ADMIN_TOKEN = "console-tls-admin-token-0123456789";
const SHOWN_MS = 20_000;

/** One plain-HTTP request; resolves with its status, or with the error that ended it. */
function plainHttp(port: number): Promise<number | string> {
  return new Promise((resolve) => {
    const req = request({ host: "127.0.0.1", port, path: "/healthz", timeout: 5000 }, (res) => {
      res.resume();
      resolve(res.statusCode ?? 0);
    });
    req.on("timeout", () => req.destroy(new Error("timeout")));
    req.on("error", (err) => resolve((err as NodeJS.ErrnoException).code ?? err.message));
    req.end();
  });
}

describe("console: the admin listener over HTTPS", () => {
  const registry = new ChildRegistry();
  let work = "";
  let cert: SelfSignedCert;
  let cloud: CliProcess;
  let adminPort = 0;
  let b: BrowserUnderTest;

  before(async () => {
    work = await mkdtemp(join(tmpdir(), "underpass-console-tls-"));
    cert = await makeSelfSignedCert();
    const ports = await freeCloudPorts();
    adminPort = ports.admin;
    cloud = spawnCli(
      ["cloud"],
      cliEnv({
        ...cloudEnv(ports, join(work, "data")),
        UNDERPASS_ADMIN_TOKEN: ADMIN_TOKEN,
        UNDERPASS_ADMIN_TLS_CERT: cert.certFile,
        UNDERPASS_ADMIN_TLS_KEY: cert.keyFile,
      }),
      registry,
    );
    const [listening] = await cloud.waitForLog(isRelayListening);
    assert.equal(listening?.["adminTls"], true);
    b = await openBrowser({ baseURL: `https://127.0.0.1:${adminPort}`, ignoreHTTPSErrors: true });
  });

  after(async () => {
    await b?.close();
    await cloud?.stop();
    await registry.killAll();
    await cert?.close();
    if (work) await rm(work, { recursive: true, force: true });
  });

  it("signs in over HTTPS; the session cookie is Secure and __Host- prefixed", async () => {
    const { page } = b;
    await signIn(page, ADMIN_TOKEN, SHOWN_MS);
    const cookies = await b.context.cookies();
    assert.deepEqual(
      cookies.map((c) => [c.name, c.secure, c.httpOnly, c.sameSite, c.path]),
      [["__Host-underpass_session", true, true, "Strict", "/"]],
    );
    assert.equal(await page.evaluate("window.isSecureContext"), true);
    await screenshot(page, "console-https");
  });

  it("answers nothing but TLS on the admin port", async () => {
    const answer = await plainHttp(adminPort);
    assert.notEqual(answer, 200, `plain HTTP got ${answer}`);
  });

  for (const [what, env, variable] of [
    ["a certificate without its key", { UNDERPASS_ADMIN_TLS_CERT: "cert" }, "UNDERPASS_ADMIN_TLS_KEY"],
    [
      "a key file that does not exist",
      { UNDERPASS_ADMIN_TLS_CERT: "cert", UNDERPASS_ADMIN_TLS_KEY: "/nonexistent/key.pem" },
      "UNDERPASS_ADMIN_TLS_KEY",
    ],
    [
      "a certificate that is not PEM",
      { UNDERPASS_ADMIN_TLS_CERT: join(REPO_ROOT, "package.json"), UNDERPASS_ADMIN_TLS_KEY: "key" },
      "UNDERPASS_ADMIN_TLS_CERT",
    ],
  ] as const) {
    it(`refuses to start with ${what}: exit 2 naming ${variable}`, async () => {
      const resolved = Object.fromEntries(
        Object.entries(env).map(([k, v]) => [
          k,
          v === "cert" ? cert.certFile : v === "key" ? cert.keyFile : v,
        ]),
      );
      const dataDir = join(work, `refused-${variable}-${what.length}`);
      const r = await spawnBounded(process.execPath, [CLI, "cloud"], {
        timeoutMs: 20_000,
        env: cliEnv({
          ...cloudEnv(await freeCloudPorts(), dataDir),
          UNDERPASS_ADMIN_TOKEN: ADMIN_TOKEN,
          ...resolved,
        }),
        cwd: REPO_ROOT,
        registry,
        display: "underpass cloud",
      });
      assert.equal(r.code, 2, formatResult(r));
      assert.match(r.stderr, new RegExp(variable), formatResult(r));
    });
  }
});
