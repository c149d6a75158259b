import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { bypassesProxy, parseNoProxy } from "../../agent/no-proxy.js";

/** [NO_PROXY, host, port, goes direct] */
type Case = readonly [string, string, number, boolean];

const CASES: readonly Case[] = [
  // nothing set, or only blanks and commas
  ["", "relay.example", 443, false],
  [" , ,", "relay.example", 443, false],
  // `*` alone bypasses everything, names and addresses alike
  ["*", "relay.example", 443, true],
  ["*", "10.0.0.1", 8443, true],
  ["other.example, *", "[::1]", 8443, true],
  // a name covers itself and every name below it, with or without a leading dot or `*.`
  ["corp.example", "corp.example", 443, true],
  ["corp.example", "relay.corp.example", 443, true],
  ["corp.example", "a.b.corp.example", 443, true],
  [".corp.example", "corp.example", 443, true],
  [".corp.example", "relay.corp.example", 443, true],
  ["*.corp.example", "relay.corp.example", 443, true],
  // ...but never a name that only ends alike, nor a parent
  ["corp.example", "evilcorp.example", 443, false],
  [".corp.example", "evilcorp.example", 443, false],
  ["relay.corp.example", "corp.example", 443, false],
  // case and a trailing dot do not matter, on either side
  ["Relay.Corp.Example.", "relay.corp.example", 443, true],
  ["relay.corp.example", "RELAY.corp.example.", 443, true],
  // blanks around entries
  ["  other.example ,  relay.example  ", "relay.example", 443, true],
  // a port restricts the entry to that port
  ["relay.example:8443", "relay.example", 8443, true],
  ["relay.example:8443", "relay.example", 443, false],
  [".corp.example:8443", "relay.corp.example", 8443, true],
  ["10.0.0.1:8443", "10.0.0.1", 8443, true],
  ["10.0.0.1:8443", "10.0.0.1", 443, false],
  ["[::1]:8443", "[::1]", 8443, true],
  ["[::1]:8443", "::1", 443, false],
  // IP literals compare as addresses, in any spelling
  ["10.0.0.1", "10.0.0.1", 443, true],
  ["10.0.0.1", "10.0.0.2", 443, false],
  ["::1", "[::1]", 443, true],
  ["[0:0:0:0:0:0:0:1]", "[::1]", 443, true],
  ["fd00::21", "[FD00:0:0::21]", 443, true],
  // a name entry never matches an address and an address entry never matches a name
  ["0.0.1", "10.0.0.1", 443, false],
  ["127.0.0.1", "localhost", 443, false],
  ["localhost", "127.0.0.1", 443, false],
  ["localhost", "localhost", 8443, true],
  // CIDR blocks
  ["10.0.0.0/8", "10.200.3.4", 443, true],
  ["10.0.0.0/8", "11.0.0.1", 443, false],
  ["fd00::/8", "[fd12::1]", 443, true],
  ["fd00::/8", "[fe80::1]", 443, false],
  ["10.0.0.0/8", "ten.example", 443, false],
  // several entries: any one that matches
  ["a.example,b.example,relay.example", "relay.example", 443, true],
  ["a.example,b.example", "relay.example", 443, false],
];

describe("NO_PROXY", () => {
  for (const [value, host, port, direct] of CASES) {
    it(`${JSON.stringify(value)}: ${host}:${port} ${direct ? "goes direct" : "uses the proxy"}`, () => {
      assert.equal(bypassesProxy(parseNoProxy(value), host, port), direct);
    });
  }

  it("leaves out the entries it does not understand, says which, and keeps the rest", () => {
    const list = parseNoProxy(
      "relay.example, http://proxy.example, host:99999, host:0, 10.0.0.0/33, *foo, ., bad name, [not-v6], <local>",
    );
    assert.deepEqual(list.ignored, [
      "http://proxy.example",
      "host:99999",
      "host:0",
      "10.0.0.0/33",
      "*foo",
      ".",
      "bad name",
      "[not-v6]",
      "<local>",
    ]);
    assert.equal(list.rules.length, 1);
    assert.equal(bypassesProxy(list, "relay.example", 443), true);
    assert.equal(bypassesProxy(list, "host", 99999), false);
  });
});
