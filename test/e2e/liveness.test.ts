/**
 * A silent peer is noticed within 10 s on both sides with the default timers: a real
 * `underpass agent` stopped with SIGSTOP (a hung host, or a network that drops every packet:
 * the socket stays open, nothing arrives) is dropped by the relay, which then shows it as not
 * connected; a stopped `underpass cloud` is left by the agent, which logs the ping timeout and
 * dials again. Every stopped process gets SIGCONT before it is stopped.
 */
import assert from "node:assert/strict";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, it } from "node:test";
import { DEFAULT_TIMERS, GOAWAY_CODE } from "../../shared/tunnel/constants.js";
import { ChildRegistry } from "../helpers/clients.js";
import { waitFor } from "../helpers/ports.js";
import { type CliProcess, type LogLine, startAgentProcess, startCloud } from "../helpers/processes.js";
import { captureRelayLog } from "../helpers/relay-log.js";
import { type Stack, startStack } from "../helpers/stack.js";

/** The bound the defaults promise for noticing a silent peer, in ms. */
const NOTICED_WITHIN_MS = 10_000;
/** What a wait for that is allowed before it fails (it reports the time it measured), in ms. */
const WAIT_MS = NOTICED_WITHIN_MS + 5_000;

/** SIGCONT (a stopped process handles no SIGTERM), then the usual stop. */
async function resumeAndStop(p: CliProcess | undefined): Promise<void> {
  if (p === undefined || !p.running()) return;
  p.kill("SIGCONT");
  await p.stop();
}

function time(line: LogLine): number {
  return Number(line["time"]);
}

describe("liveness with the default timers", () => {
  const children = new ChildRegistry();
  const cleanups: Array<() => Promise<void>> = [];
  after(async () => {
    for (const f of cleanups.reverse()) await f();
    await children.killAll();
  });

  it("the relay drops the tunnel of a SIGSTOPped agent within 10 s, and the agent comes back after SIGCONT", async (t) => {
    const log = captureRelayLog();
    const stack: Stack = await startStack({ agent: false, relay: { logger: log.logger } });
    cleanups.push(() => stack.close());
    const agent = startAgentProcess({
      relayUrl: `ws://127.0.0.1:${stack.relay.tunnelAddress.port}/tunnel`,
      token: stack.agentToken,
      registry: children,
    });
    cleanups.push(() => resumeAndStop(agent));
    const connected = async (): Promise<boolean> => {
      const list = (await stack.api("GET", "/v1/agents")).body as Array<{ id: string; connected: boolean }>;
      return list.find((a) => a.id === stack.agentId)?.connected === true;
    };
    await waitFor(connected, { timeoutMs: 20_000, what: `agent connected\n${agent.describe()}` });

    agent.kill("SIGSTOP");
    const stoppedAt = Date.now();
    await waitFor(async () => !(await connected()), {
      timeoutMs: WAIT_MS,
      intervalMs: 100,
      what: "GET /v1/agents to show the stopped agent as not connected",
    });
    const tookMs = Date.now() - stoppedAt;
    t.diagnostic(`the relay dropped the stopped agent after ${tookMs} ms`);
    assert.ok(tookMs < NOTICED_WITHIN_MS, `the relay noticed the stopped agent after ${tookMs} ms`);
    // not some other failure: the ping timeout, which cannot run out before a full timeout of silence
    assert.ok(
      tookMs >= DEFAULT_TIMERS.pingTimeoutMs - DEFAULT_TIMERS.pingIntervalMs,
      `dropped after only ${tookMs} ms of a stopped agent`,
    );
    const closed = log.lines().find((l) => l.msg === "tunnel closed" && l["agentId"] === stack.agentId);
    assert.equal(closed?.["code"], GOAWAY_CODE.PING_TIMEOUT, JSON.stringify(closed));

    agent.kill("SIGCONT");
    await waitFor(connected, {
      timeoutMs: 20_000,
      what: `the resumed agent to reconnect\n${agent.describe()}`,
    });
  });

  it("the agent leaves a SIGSTOPped relay within 10 s: it logs the ping timeout and dials again", async (t) => {
    const dataDir = await mkdtemp(join(tmpdir(), "underpass-e2e-liveness-"));
    cleanups.push(() => rm(dataDir, { recursive: true, force: true }));
    const cloud = await startCloud({
      dataDir,
      adminToken: "liveness-admin-token-0123456789",
      registry: children,
    });
    cleanups.push(() => resumeAndStop(cloud));
    const rec = await cloud.admin.addAgent("liveness-agent");
    const agent = startAgentProcess({ relayUrl: cloud.relayUrl, token: rec.token, registry: children });
    cleanups.push(() => resumeAndStop(agent));
    await cloud.admin.waitAgentConnected(rec.id);
    await agent.waitForLog((l) => l.msg === "tunnel up");

    cloud.kill("SIGSTOP");
    const stoppedAt = Date.now();
    const [down] = await agent.waitForLog(
      (l) => l.msg === "tunnel down" && l["code"] === GOAWAY_CODE.PING_TIMEOUT,
      { timeoutMs: WAIT_MS },
    );
    const [redial] = await agent.waitForLog(
      (l) => l.msg === "reconnecting to the relay" && time(l) >= time(down!),
      { timeoutMs: WAIT_MS },
    );
    const downMs = time(down!) - stoppedAt;
    const redialMs = time(redial!) - stoppedAt;
    t.diagnostic(`the agent left the stopped relay after ${downMs} ms and redialled after ${redialMs} ms`);
    assert.ok(downMs < NOTICED_WITHIN_MS, `the agent noticed the stopped relay after ${downMs} ms`);
    assert.ok(redialMs < NOTICED_WITHIN_MS, `the agent started to reconnect after ${redialMs} ms`);
    assert.match(String(down!["reason"]), /nothing heard for \d+ ms/, agent.describe());
    assert.ok(agent.running(), agent.describe());
  });
});
