/**
 * A tunnel carries no more pending opens than the relay's own bound, whatever its agent
 * announced: past it a request is refused at once with 0x01, not queued. And an agent keeps no
 * more tunnels than its bound.
 */
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import type { LimitHit } from "../../cloud/events.js";
import { LIMIT } from "../../cloud/limits/limit-names.js";
import { GOAWAY_CODE } from "../../shared/tunnel/constants.js";
import { helloFrom } from "../helpers/flood.js";
import { type GatedAgent, startGatedAgent } from "../helpers/gated-agent.js";
import { waitFor } from "../helpers/ports.js";
import { type Stack, socksReply, startStack } from "../helpers/stack.js";
import { bannerEcho, startTarget, type Target } from "../helpers/targets.js";

describe("bounds of a tunnel", () => {
  let stack: Stack;
  let target: Target;
  let gated: GatedAgent;
  const hits: LimitHit[] = [];
  let stop = (): void => {};

  before(async () => {
    target = await startTarget(bannerEcho());
    stack = await startStack({
      agent: false,
      relay: { bounds: { tunnelMaxPendingOpens: 2, tunnelsPerAgent: 1 } },
    });
    await stack.addMapping({
      virtualHost: "svc.tunnel-bounds",
      virtualPort: 21,
      internalHost: "127.0.0.1",
      internalPort: target.port,
    });
    gated = startGatedAgent(stack);
    await gated.agent.waitUp(1, 15_000);
    stop = stack.relay.events.limitHit.subscribe((m) => hits.push(m));
  });

  after(async () => {
    stop();
    gated?.release(true);
    await gated?.agent.close();
    await stack?.close();
    await target?.close();
  });

  it("refuses an open past the relay's bound on pending opens at once, with 0x01", async () => {
    const connect = () =>
      socksReply(stack.socksPort, stack.client, "svc.tunnel-bounds", 21).then((r) => {
        r.socket.destroy();
        return r.reply;
      });
    const first = connect();
    const second = connect();
    await waitFor(() => gated.waiting() === 2, { timeoutMs: 10_000, what: "two opens at the agent's gate" });
    // the agent announced 1024 pending opens (its default); the relay keeps 2
    const t0 = performance.now();
    assert.equal(await connect(), 0x01, "the third is refused");
    assert.ok(performance.now() - t0 < 2_000, "at once, not after the others");
    assert.equal(gated.waiting(), 2, "it never reached the agent");
    assert.ok(hits.some((h) => h.limit === LIMIT.TUNNEL_PENDING_OPENS));
    gated.release();
    assert.deepEqual(await Promise.all([first, second]), [0x00, 0x00]);
    // room again
    gated.release(true);
    assert.equal(await connect(), 0x00);
  });

  it("refuses a tunnel past the agent's bound on tunnels with GOAWAY LIMIT_EXCEEDED", async () => {
    const answer = await helloFrom(stack.relay.tunnelAddress.port, stack.agentToken, "127.0.0.1");
    assert.ok(
      typeof answer !== "number" && answer.type === "goaway",
      `a goaway, not ${JSON.stringify(answer)}`,
    );
    assert.equal(answer.code, GOAWAY_CODE.LIMIT_EXCEEDED);
    assert.ok(hits.some((h) => h.limit === LIMIT.TUNNELS_PER_AGENT));
  });
});
