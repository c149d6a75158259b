import assert from "node:assert/strict";
import { describe, it } from "node:test";
import type { TLSSocket } from "node:tls";
import { checkPinnedCertificate, formatFingerprint, parsePins } from "../../agent/relay-pin.js";
import { isLoopbackUrl, parseRelayUrls, plaintextRemote } from "../../agent/relay-urls.js";
import { AuthError, ValidationError } from "../../shared/errors.js";

const HEX = "0123456789abcdef".repeat(4);

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

describe("relay certificate pins", () => {
  it("reads SHA-256 fingerprints with or without colons, any case, several for a renewal", () => {
    const colons = formatFingerprint(HEX);
    assert.equal(colons, HEX.toUpperCase().match(/../g)!.join(":"));
    const pins = parsePins(` ${colons} ,${"ff".repeat(32)},${HEX.toUpperCase()}`, "V");
    assert.deepEqual([...pins.fingerprints], [HEX, "ff".repeat(32)]);
  });

  it("refuses what is not a SHA-256 fingerprint, naming the variable and the entry", () => {
    for (const bad of ["ab".repeat(20), `${HEX}00`, `${HEX.slice(2)}zz`, " , ", "sha256:abc"]) {
      assert.throws(
        () => parsePins(bad, "UNDERPASS_RELAY_FINGERPRINT"),
        (e: unknown) => e instanceof ValidationError && /^UNDERPASS_RELAY_FINGERPRINT: /.test(e.message),
        bad,
      );
    }
  });

  it("accepts the pinned leaf and refuses another, naming the fingerprint it saw", () => {
    const socket = (fingerprint256: string | undefined) =>
      ({
        getPeerCertificate: () => (fingerprint256 === undefined ? {} : { fingerprint256 }),
      }) as unknown as TLSSocket;
    const pins = parsePins(HEX, "V");
    checkPinnedCertificate(socket(formatFingerprint(HEX)), pins, "wss://r/tunnel");
    const seen = formatFingerprint("ee".repeat(32));
    assert.throws(
      () => checkPinnedCertificate(socket(seen), pins, "wss://r/tunnel"),
      (e: unknown) =>
        e instanceof AuthError &&
        e.message.includes(`wss://r/tunnel presented SHA-256 ${seen}`) &&
        e.message.includes(`pins ${formatFingerprint(HEX)}`),
    );
    assert.throws(() => checkPinnedCertificate(socket(undefined), pins, "wss://r/tunnel"), /no certificate/);
  });
});
