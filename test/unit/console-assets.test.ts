/** The console's files from memory: the page with its security headers, ETags, 404 and "not built". */
import assert from "node:assert/strict";
import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import Fastify from "fastify";
import { consoleAssets } from "../../cloud/admin/console-assets.js";

describe("console assets", () => {
  let dir = "";
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), "underpass-console-assets-"));
    await mkdir(join(dir, "public"));
    await mkdir(join(dir, "build", "api"), { recursive: true });
    await writeFile(join(dir, "public", "index.html"), "<!doctype html><title>t</title>");
    await writeFile(join(dir, "public", "console.css"), "body{}");
    await writeFile(join(dir, "build", "main.js"), "import './api/client.js';");
    await writeFile(join(dir, "build", "api", "client.js"), "export {};");
    await writeFile(join(dir, "build", "main.js.map"), "{}");
    await writeFile(join(dir, "build", ".tsbuildinfo"), "{}");
  });
  after(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it("serves the page at / and its files under /console/, nothing else", async () => {
    const app = Fastify();
    await app.register(consoleAssets, { publicDir: join(dir, "public"), buildDir: join(dir, "build") });
    const page = await app.inject({ method: "GET", url: "/" });
    assert.equal(page.statusCode, 200);
    assert.equal(page.headers["content-type"], "text/html; charset=utf-8");
    assert.match(String(page.headers["content-security-policy"]), /default-src 'none'; script-src 'self'/);
    assert.equal(page.headers["x-frame-options"], "DENY");
    const js = await app.inject({ method: "GET", url: "/console/api/client.js" });
    assert.equal(js.statusCode, 200);
    assert.equal(js.headers["content-type"], "text/javascript; charset=utf-8");
    const again = await app.inject({
      method: "GET",
      url: "/console/api/client.js",
      headers: { "if-none-match": String(js.headers.etag) },
    });
    assert.equal(again.statusCode, 304);
    assert.equal((await app.inject({ method: "GET", url: "/console/console.css" })).statusCode, 200);
    for (const url of [
      "/console/main.js.map",
      "/console/.tsbuildinfo",
      "/console/index.html",
      "/console/../package.json",
    ]) {
      assert.equal((await app.inject({ method: "GET", url })).statusCode, 404, url);
    }
    await app.close();
  });

  it("answers 503 and says so when the scripts were never built", async () => {
    const app = Fastify();
    const missing: string[] = [];
    await app.register(consoleAssets, {
      publicDir: join(dir, "public"),
      buildDir: join(dir, "nowhere"),
      onMissing: (d) => missing.push(d),
    });
    const page = await app.inject({ method: "GET", url: "/" });
    assert.equal(page.statusCode, 503);
    assert.match(page.body, /npm run build/);
    assert.deepEqual(missing, [join(dir, "nowhere")]);
    await app.close();
  });
});
