import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { isLoopbackUrl, parseRelayUrls, plaintextRemote } from "../../agent/relay-urls.js";
import { ValidationError } from "../../shared/errors.js";

describe("relay URLs", () => {
  it("reads one URL or several, comma-separated, blanks and repeats dropped", () => {
    assert.deepEqual(parseRelayUrls("wss://r1:8443/tunnel", "V"), ["wss://r1:8443/tunnel"]);
    assert.deepEqual(parseRelayUrls(" wss://r1/tunnel , ,ws://127.0.0.1:1/tunnel,wss://r1/tunnel", "V"), [
      "wss://r1/tunnel",
      "ws://127.0.0.1:1/tunnel",
    ]);
  });

  it("refuses anything but ws:// and wss://, naming each bad entry and the variable", () => {
    for (const bad of ["http://r/tunnel", "wss://r/tunnel,ftp://x", "", " , ", "wss://"]) {
      assert.throws(
        () => parseRelayUrls(bad, "UNDERPASS_RELAY_URL"),
        (e: unknown) => e instanceof ValidationError && /^UNDERPASS_RELAY_URL: /.test(e.message),
        bad,
      );
    }
    assert.throws(() => parseRelayUrls("wss://ok/tunnel,http://bad/x", "V"), /"http:\/\/bad\/x"/);
  });

  it("knows loopback: localhost, 127.0.0.0/8, ::1 and its mapped forms; nothing else", () => {
    for (const url of [
      "ws://localhost:8443/tunnel",
      "ws://relay.localhost/tunnel",
      "ws://127.0.0.1/tunnel",
      "ws://127.9.8.7:1/tunnel",
      "ws://[::1]:8443/tunnel",
      "ws://[::ffff:127.0.0.1]/tunnel",
      "ws://LOCALHOST/tunnel",
    ]) {
      assert.equal(isLoopbackUrl(url), true, url);
    }
    for (const url of [
      "ws://relay.example/tunnel",
      "ws://10.0.0.1/tunnel",
      "ws://[fd00::1]/tunnel",
      "ws://localhost.example/tunnel",
      "ws://128.0.0.1/tunnel",
    ]) {
      assert.equal(isLoopbackUrl(url), false, url);
    }
  });

  it("finds the plaintext URLs that leave this host", () => {
    assert.deepEqual(
      plaintextRemote(["wss://r/tunnel", "ws://127.0.0.1/tunnel", "ws://r2/tunnel", "wss://127.0.0.1/t"]),
      ["ws://r2/tunnel"],
    );
  });
});
