/**
 * Revocation racing with a lookup: the store answers a SOCKS client's credentials, or an
 * agent's token, from before a deletion, and the deletion's disconnect runs before the
 * connection is followed. The real relay, over a store whose lookups wait at a gate, must
 * still refuse: the client gets 0x02, never 0x00; the agent's tunnel is closed with REVOKED.
 */
import assert from "node:assert/strict";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { WebSocket } from "ws";
import { FileStore } from "../../cloud/store/file-store.js";
import type { Store } from "../../cloud/store/store.js";
import { DEFAULT_LIMITS, GOAWAY_CODE, PROTOCOL_VERSION } from "../../shared/tunnel/constants.js";
import type { Frame } from "../../shared/tunnel/frame.js";
import { encodeFrame, FrameDecoder } from "../../shared/tunnel/frame-codec.js";
import { waitFor } from "../helpers/ports.js";
import { type Stack, socksReply, startStack, testLogger } from "../helpers/stack.js";
import { bannerEcho, startTarget, type Target } from "../helpers/targets.js";

/** A file store whose `method` answers, once armed, only when let through, with what it read before. */
function gatedStore(dir: string, method: "findClientByUsername" | "findAgentByTokenHash") {
  const inner = new FileStore({ dir, logger: testLogger("store") });
  let armed = false;
  const waiting: Array<() => void> = [];
  const store = new Proxy(inner, {
    get(target, key, receiver) {
      const value = Reflect.get(target, key, receiver);
      if (typeof value !== "function") return value;
      if (key !== method) return value.bind(target);
      return async (...args: unknown[]) => {
        const answer = await value.apply(target, args); // read now: the old record
        if (!armed) return answer;
        armed = false;
        await new Promise<void>((resolve) => waiting.push(resolve));
        return answer;
      };
    },
  }) as Store;
  return {
    store,
    arm: () => {
      armed = true;
    },
    waiting: () => waiting.length,
    release: () => {
      for (const go of waiting.splice(0)) go();
    },
  };
}

describe("a revocation racing with a lookup", () => {
  let dataDir: string;
  let target: Target;
  let stack: Stack;
  let clients: ReturnType<typeof gatedStore>;

  before(async () => {
    dataDir = await mkdtemp(join(tmpdir(), "underpass-race-"));
    target = await startTarget(bannerEcho());
    clients = gatedStore(dataDir, "findClientByUsername");
    stack = await startStack({ dataDir, relay: { store: clients.store } });
    await stack.addMapping({
      virtualHost: "svc.race",
      virtualPort: 21,
      internalHost: "127.0.0.1",
      internalPort: target.port,
    });
  });

  after(async () => {
    clients?.release();
    await stack?.close();
    await target?.close();
    if (dataDir) await rm(dataDir, { recursive: true, force: true });
  });

  it("a client deleted while its credentials were looked up gets 0x02", async () => {
    const victim = await stack.addClient("raced");
    clients.arm();
    const reply = socksReply(stack.socksPort, victim, "svc.race", 21).then((r) => {
      r.socket.destroy();
      return r.reply;
    });
    await waitFor(() => clients.waiting() === 1, { what: "the credentials lookup at its gate" });
    // the store already answered with the client; its deletion and disconnect run now
    assert.equal((await stack.api("DELETE", `/v1/clients/${victim.id}`)).status, 204);
    clients.release();
    assert.equal(await reply, 0x02);
  });

  it("an agent deleted while its token was looked up has its tunnel closed with REVOKED", async () => {
    const dir = await mkdtemp(join(tmpdir(), "underpass-race-agent-"));
    const agents = gatedStore(dir, "findAgentByTokenHash");
    const other = await startStack({ dataDir: dir, agent: false, relay: { store: agents.store } });
    try {
      agents.arm();
      const frames: Frame[] = [];
      const ws = new WebSocket(`ws://127.0.0.1:${other.relay.tunnelAddress.port}/tunnel`, {
        perMessageDeflate: false,
      });
      const decoder = new FrameDecoder(DEFAULT_LIMITS);
      ws.on("message", (data: Buffer) => decoder.push(data, (f) => frames.push(f)));
      const closed = new Promise<number>((resolve) => ws.once("close", (code) => resolve(code)));
      ws.on("error", () => {});
      await new Promise((resolve) => ws.once("open", resolve));
      ws.send(
        encodeFrame({
          type: "hello",
          body: {
            version: PROTOCOL_VERSION,
            token: other.agentToken,
            agentVersion: "0.0.0-test",
            capabilities: [],
          },
        }),
      );
      await waitFor(() => agents.waiting() === 1, { what: "the token lookup at its gate" });
      assert.equal((await other.api("DELETE", `/v1/agents/${other.agentId}`)).status, 204);
      agents.release();
      // the welcome goes out, then the re-check closes the tunnel it let in
      const code = await Promise.race([
        closed,
        new Promise<string>((resolve) => setTimeout(() => resolve("still open after 5 s"), 5_000)),
      ]);
      ws.terminate();
      assert.equal(
        code,
        4000 + GOAWAY_CODE.REVOKED,
        `closed with GOAWAY REVOKED (${JSON.stringify(frames.map((f) => f.type))})`,
      );
      assert.ok(frames.some((f) => f.type === "goaway" && f.code === GOAWAY_CODE.REVOKED));
      assert.equal(other.relay.registry.all().length, 0);
    } finally {
      agents.release();
      await other.close();
      await rm(dir, { recursive: true, force: true });
    }
  });
});
