/**
 * A real agent whose opens wait at a gate before it dials or listens: its policy holds each
 * decision until the test lets it through, so a test can act while an OPEN is pending.
 */
import { type Agent, startAgent } from "../../agent/agent.js";
import type { BindSettings } from "../../agent/bind-listener.js";
import { allowAll, type Policy } from "../../agent/policy.js";
import type { Stack } from "./stack.js";
import { testLogger } from "./stack.js";

export interface GatedAgent {
  readonly agent: Agent;
  /** Opens waiting at the gate. */
  waiting(): number;
  /** Let every waiting open through (and the later ones at once, when `open` is true). */
  release(open?: boolean): void;
}

export function startGatedAgent(
  stack: Stack,
  options: { bind?: BindSettings; token?: string } = {},
): GatedAgent {
  const inner = allowAll();
  const queue: Array<() => void> = [];
  let opened = false;
  const policy: Policy = {
    ...inner,
    authorize: (host, port, lookup) =>
      opened
        ? inner.authorize(host, port, lookup)
        : new Promise((resolve) => queue.push(() => resolve(inner.authorize(host, port, lookup)))),
  };
  const agent = startAgent({
    relayUrl: `ws://127.0.0.1:${stack.relay.tunnelAddress.port}/tunnel`,
    token: options.token ?? stack.agentToken,
    policy,
    logger: testLogger("gated-agent"),
    backoff: { baseMs: 50, maxMs: 500 },
    ...(options.bind ? { bind: options.bind } : {}),
  });
  return {
    agent,
    waiting: () => queue.length,
    release(open = false) {
      opened = open;
      for (const go of queue.splice(0)) go();
    },
  };
}
