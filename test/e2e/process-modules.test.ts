/**
 * What `underpass cloud` and `agent` load: a relay over the file store never loads `pg` (its
 * code and heap cost a relay 5-7 MiB of RSS at rest), a relay with UNDERPASS_DATABASE_URL does;
 * an agent without HTTPS_PROXY never loads `https-proxy-agent`, one with a proxy does. A module
 * hook given through NODE_OPTIONS reports every module the process resolves.
 */
import assert from "node:assert/strict";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { pathToFileURL } from "node:url";
import { ChildRegistry } from "../helpers/clients.js";
import { freePort } from "../helpers/ports.js";
import { cliEnv, cloudEnv, freeCloudPorts, spawnCli, startCloud } from "../helpers/processes.js";

/** Registers a resolve hook that writes `module resolved: <url>` to stderr for each module. */
const HOOK = `
import { register } from "node:module";
register("data:text/javascript," + encodeURIComponent(
  "export async function resolve(s, c, next) { const r = await next(s, c); " +
  "process.stderr.write('module resolved: ' + r.url + '\\\\n'); return r; }"
));
`;

const PG = /module resolved: \S*\/node_modules\/pg\//;
const PROXY_AGENT = /module resolved: \S*\/node_modules\/https-proxy-agent\//;

describe("the modules a relay and an agent load", () => {
  const children = new ChildRegistry();
  let work = "";
  let nodeOptions = "";

  before(async () => {
    work = await mkdtemp(join(tmpdir(), "underpass-e2e-modules-"));
    const hook = join(work, "hook.mjs");
    await writeFile(hook, HOOK);
    nodeOptions = `--import ${pathToFileURL(hook).href}`;
  });

  after(async () => {
    await children.killAll();
    await rm(work, { recursive: true, force: true });
  });

  it("over the file store: no pg", async () => {
    const cloud = await startCloud({
      dataDir: join(work, "file-store"),
      adminToken: "modules-admin-token-0123456789",
      env: { NODE_OPTIONS: nodeOptions },
      registry: children,
    });
    try {
      const err = cloud.stderr();
      assert.match(err, /module resolved: \S*\/node_modules\/fastify\//, "the hook reports modules");
      assert.doesNotMatch(err, PG);
    } finally {
      await cloud.stop();
    }
  });

  it("with a database: pg (the control)", async () => {
    // nothing listens there: the relay loads pg, fails to reach the database and says so
    const closed = await freePort();
    const ports = await freeCloudPorts();
    const relay = spawnCli(
      ["cloud"],
      cliEnv({
        ...cloudEnv(ports, join(work, "database")),
        UNDERPASS_ADMIN_TOKEN: "modules-admin-token-0123456789",
        UNDERPASS_DATABASE_URL: `postgres://underpass:secret@127.0.0.1:${closed}/underpass`,
        NODE_OPTIONS: nodeOptions,
      }),
      children,
    );
    try {
      await relay.waitForOutput(PG, { stream: "stderr", timeoutMs: 20_000 });
    } finally {
      await relay.stop();
    }
  });

  /** `underpass agent` towards a relay URL where nothing listens, with `env`, once it failed to connect. */
  async function agentTried(env: Record<string, string>): Promise<string> {
    const closed = await freePort();
    const agent = spawnCli(
      ["agent"],
      cliEnv({
        UNDERPASS_RELAY_URL: `ws://127.0.0.1:${closed}/tunnel`,
        UNDERPASS_AGENT_TOKEN: "modules-agent-token",
        UNDERPASS_ALLOW: "127.0.0.1:*",
        NODE_OPTIONS: nodeOptions,
        ...env,
      }),
      children,
    );
    try {
      await agent.waitForLog((l) => l.msg === "tunnel connection failed", { timeoutMs: 20_000 });
      return agent.stderr();
    } finally {
      await agent.stop();
    }
  }

  it("an agent without a proxy: no https-proxy-agent", async () => {
    const err = await agentTried({});
    assert.match(err, /module resolved: \S*\/node_modules\/ws\//, "the hook reports modules");
    assert.doesNotMatch(err, PROXY_AGENT);
  });

  it("an agent with a proxy: https-proxy-agent (the control)", async () => {
    // nothing listens at the proxy either: the CONNECT fails, which is all this needs
    const proxy = await freePort();
    assert.match(await agentTried({ HTTPS_PROXY: `http://127.0.0.1:${proxy}` }), PROXY_AGENT);
  });
});
