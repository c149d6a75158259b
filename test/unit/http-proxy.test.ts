import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { describeProxy, parseProxyUrl, proxyAgentFor, usesProxy } from "../../agent/http-proxy.js";
import { parseNoProxy } from "../../agent/no-proxy.js";
import { ValidationError } from "../../shared/errors.js";

describe("HTTPS_PROXY", () => {
  for (const [value, expected] of [
    ["http://proxy.corp:3128", "http://proxy.corp:3128/"],
    // the documented default port of an http:// proxy
    ["http://proxy.corp", "http://proxy.corp:8080/"],
    ["http://proxy.corp/", "http://proxy.corp:8080/"],
    // an explicit :80 stays 80 (URL hides a default port; it is not "no port")
    ["http://proxy.corp:80", "http://proxy.corp/"],
    ["https://proxy.corp", "https://proxy.corp/"],
    ["https://proxy.corp:8443", "https://proxy.corp:8443/"],
    // no scheme: http://, as curl reads it
    ["proxy.corp:3128", "http://proxy.corp:3128/"],
    ["  HTTP://Proxy.Corp:3128  ", "http://proxy.corp:3128/"],
    ["http://user:p%40ss@proxy.corp:3128", "http://user:p%40ss@proxy.corp:3128/"],
    ["http://user:p%40ss@proxy.corp", "http://user:p%40ss@proxy.corp:8080/"],
    ["http://[fd00::3]:3128", "http://[fd00::3]:3128/"],
    ["http://[fd00::3]", "http://[fd00::3]:8080/"],
  ] as const) {
    it(`${JSON.stringify(value)} is ${expected}`, () => {
      assert.equal(parseProxyUrl(value, "HTTPS_PROXY").href, expected);
    });
  }

  for (const [value, why] of [
    ["socks5://user:secret-pass@proxy.corp:1080", /socks5:\/\/ proxies are not supported/],
    ["http://user:secret-pass@:3128", /not a URL|names no host/],
    ["http://[not-v6]:3128", /not a URL/],
  ] as const) {
    it(`refuses ${JSON.stringify(value)}, naming the variable and never the password`, () => {
      assert.throws(
        () => parseProxyUrl(value, "https_proxy"),
        (err: unknown) => {
          assert.ok(err instanceof ValidationError);
          assert.match(err.message, /^https_proxy: /);
          assert.match(err.message, why);
          assert.ok(!err.message.includes("secret-pass"), err.message);
          assert.equal(err.issues[0]?.path, "https_proxy");
          return true;
        },
      );
    });
  }

  it("names the proxy without its credentials", () => {
    assert.equal(
      describeProxy(parseProxyUrl("http://alice:pw@proxy.corp:3128", "HTTPS_PROXY")),
      "http://proxy.corp:3128",
    );
    assert.equal(
      describeProxy(parseProxyUrl("https://alice:pw@proxy.corp", "HTTPS_PROXY")),
      "https://proxy.corp",
    );
  });

  it("gives an agent for relays outside NO_PROXY and none for relays it covers, by the relay URL's port", async () => {
    const settings = {
      url: parseProxyUrl("http://proxy.corp:3128", "HTTPS_PROXY"),
      noProxy: parseNoProxy(".internal.example, relay.example:443, [::1]"),
    };
    assert.equal(usesProxy(settings, "wss://relay.example/tunnel"), false, "wss: port 443 by default");
    assert.equal(usesProxy(settings, "ws://relay.example/tunnel"), true, "ws: port 80 by default");
    assert.equal(usesProxy(settings, "wss://relay.example:8443/tunnel"), true);
    assert.equal(usesProxy(settings, "wss://eu.relay.internal.example:8443/tunnel"), false);
    assert.equal(usesProxy(settings, "ws://[::1]:8443/tunnel"), false);
    assert.equal(usesProxy(settings, "wss://relay.other:8443/tunnel"), true);
    assert.equal(await proxyAgentFor(settings, "wss://relay.example/tunnel", 1000), undefined);
    assert.notEqual(await proxyAgentFor(settings, "wss://relay.other:8443/tunnel", 1000), undefined);
    assert.equal(
      await proxyAgentFor(undefined, "wss://relay.other:8443/tunnel", 1000),
      undefined,
      "no proxy set",
    );
  });
});
