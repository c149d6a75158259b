/**
 * Revocation that revokes: deleting or rotating a client, deleting or changing a mapping, or
 * deleting an agent refuses a connection whose OPEN is still pending on premises, and the
 * agent's late dial is reset rather than carried. A real agent whose opens wait at a gate
 * (its policy holds each decision) makes the gap between OPEN and OPEN_RESULT as long as the
 * test needs.
 */
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { type GatedAgent, startGatedAgent } from "../helpers/gated-agent.js";
import { waitFor } from "../helpers/ports.js";
import { type Credentials, type Stack, socksReply, startStack } from "../helpers/stack.js";
import { bannerEcho, startTarget, type Target } from "../helpers/targets.js";

describe("revocation of a connection whose OPEN is pending", () => {
  let stack: Stack;
  let target: Target;
  let gated: GatedAgent;
  let n = 0;

  before(async () => {
    target = await startTarget(bannerEcho());
    stack = await startStack({ agent: false });
    gated = startGatedAgent(stack);
    await gated.agent.waitUp(1, 15_000);
  });

  after(async () => {
    gated?.release(true);
    await gated?.agent.close();
    await stack?.close();
    await target?.close();
  });

  /** A client and a mapping of their own; a CONNECT through them that waits at the gate. */
  async function pendingConnect(): Promise<{
    client: Credentials & { id: string };
    mappingId: string;
    reply: Promise<number | string>;
  }> {
    n++;
    const client = await stack.addClient(`revoked-${n}`);
    const host = `svc${n}.revoke.example`;
    const { id: mappingId } = await stack.addMapping({
      virtualHost: host,
      virtualPort: 21,
      internalHost: "127.0.0.1",
      internalPort: target.port,
    });
    const before = gated.waiting();
    const reply = socksReply(stack.socksPort, client, host, 21).then((r) => {
      r.socket.destroy();
      return r.reply;
    });
    await waitFor(() => gated.waiting() > before, {
      timeoutMs: 10_000,
      what: "the OPEN at the agent's gate",
    });
    return { client, mappingId, reply };
  }

  /** The reply comes while the OPEN still waits at the gate; then the agent's late dial is reset. */
  async function refusedWhilePending(reply: Promise<number | string>): Promise<number | string> {
    const answer = await Promise.race([
      reply,
      new Promise<string>((resolve) =>
        setTimeout(() => resolve("no reply while the open is pending"), 5_000),
      ),
    ]);
    assert.ok(gated.waiting() > 0, "the agent has not dialled yet");
    gated.release();
    // the agent's dial that comes after the refusal is reset, not carried
    await waitFor(() => target.sockets.size === 0, {
      timeoutMs: 10_000,
      what: () => `the late dial to the target reset (${target.sockets.size} open)`,
    });
    return answer;
  }

  it("deleting the client: 0x02, never 0x00", async () => {
    const p = await pendingConnect();
    assert.equal((await stack.api("DELETE", `/v1/clients/${p.client.id}`)).status, 204);
    assert.equal(await refusedWhilePending(p.reply), 0x02);
  });

  it("rotating the client's password: 0x02", async () => {
    const p = await pendingConnect();
    assert.equal((await stack.api("POST", `/v1/clients/${p.client.id}/rotate`)).status, 200);
    assert.equal(await refusedWhilePending(p.reply), 0x02);
  });

  it("deleting the mapping: 0x02", async () => {
    const p = await pendingConnect();
    assert.equal((await stack.api("DELETE", `/v1/mappings/${p.mappingId}`)).status, 204);
    assert.equal(await refusedWhilePending(p.reply), 0x02);
  });

  it("changing the mapping's target: 0x02", async () => {
    const p = await pendingConnect();
    const patched = await stack.api("PATCH", `/v1/mappings/${p.mappingId}`, {
      internalPort: target.port + 1,
    });
    assert.equal(patched.status, 200);
    assert.equal(await refusedWhilePending(p.reply), 0x02);
  });

  it("changing only the description leaves it alone: 0x00 once the agent dials", async () => {
    const p = await pendingConnect();
    const patched = await stack.api("PATCH", `/v1/mappings/${p.mappingId}`, { description: "renamed" });
    assert.equal(patched.status, 200);
    gated.release();
    assert.equal(await p.reply, 0x00);
  });

  it("deleting the agent: its tunnel closes and the pending open fails with 0x01", async () => {
    const p = await pendingConnect();
    assert.equal((await stack.api("DELETE", `/v1/agents/${stack.agentId}`)).status, 204);
    const answer = await Promise.race([
      p.reply,
      new Promise<string>((resolve) => setTimeout(() => resolve("no reply"), 5_000)),
    ]);
    assert.equal(answer, 0x01);
    gated.release(true);
  });
});
