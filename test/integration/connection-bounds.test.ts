/**
 * Authenticated SOCKS connections are bounded per client and per source address: the request
 * past a bound is answered 0x01 (the relay's momentary state, not the ruleset's 0x02), counted,
 * and audited; a connection that closes makes room again.
 */
import assert from "node:assert/strict";
import type { Socket } from "node:net";
import { after, before, describe, it } from "node:test";
import { LIMIT } from "../../cloud/limits/limit-names.js";
import { waitFor } from "../helpers/ports.js";
import { type Json, type Stack, socksConnect, socksReply, startStack } from "../helpers/stack.js";
import { bannerEcho, readAll, startTarget, type Target } from "../helpers/targets.js";

describe("authenticated connections per client and per source", () => {
  let stack: Stack;
  let target: Target;
  const open: Socket[] = [];

  before(async () => {
    target = await startTarget(bannerEcho());
    stack = await startStack({
      relay: { bounds: { socksConnectionsPerClient: 2, socksConnectionsPerSource: 3 } },
    });
    await stack.addMapping({
      virtualHost: "svc.bounds",
      virtualPort: 21,
      internalHost: "127.0.0.1",
      internalPort: target.port,
    });
  });

  after(async () => {
    for (const s of open) s.destroy();
    await stack?.close();
    await target?.close();
  });

  async function carried(creds: typeof stack.client): Promise<Socket> {
    const s = await socksConnect(stack.socksPort, creds, "svc.bounds", 21);
    open.push(s);
    await readAll(s, 11);
    return s;
  }

  async function reply(creds: typeof stack.client): Promise<number | string> {
    const r = await socksReply(stack.socksPort, creds, "svc.bounds", 21);
    open.push(r.socket);
    return r.reply;
  }

  it("answers the client's third connection 0x01, audits it, and takes one again after a close", async () => {
    const first = await carried(stack.client);
    await carried(stack.client);
    assert.equal(await reply(stack.client), 0x01);
    const audit = (await stack.api("GET", "/v1/audit?event=limit.hit")).body.events as Json[];
    assert.ok(
      audit.some((e) => e.limit === LIMIT.SOCKS_CONNECTIONS_PER_CLIENT && e.key === stack.client.id),
      "audited with the client",
    );
    first.destroy();
    await waitFor(
      async () => {
        const r = await socksReply(stack.socksPort, stack.client, "svc.bounds", 21);
        r.socket.destroy();
        return r.reply === 0x00;
      },
      { timeoutMs: 5_000, what: "room again once a connection closed" },
    );
  });

  it("answers the source's connection past its bound 0x01, whichever client it is", async () => {
    const other = await stack.addClient("same-source");
    // the first client still holds one: two of another client fill the source's three
    await waitFor(() => stack.relay.connections.size === 1, { what: "the first client's one connection" });
    await carried(other);
    await carried(other);
    assert.equal(
      await reply(stack.client),
      0x01,
      "the first client holds one of its two, but the source is full",
    );
    const audit = (await stack.api("GET", "/v1/audit?event=limit.hit")).body.events as Json[];
    assert.ok(audit.some((e) => e.limit === LIMIT.SOCKS_CONNECTIONS_PER_SOURCE && e.key === "127.0.0.1"));
  });
});
