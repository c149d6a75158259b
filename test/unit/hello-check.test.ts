import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { checkHello, helloTimedOut } from "../../cloud/tunnel/hello-check.js";
import { AuthError, ProtocolError, UnsupportedVersionError } from "../../shared/errors.js";
import { GOAWAY_CODE } from "../../shared/tunnel/constants.js";
import type { Frame } from "../../shared/tunnel/frame.js";

const TOKEN = "upa_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";
const hello = (body: Record<string, unknown>): Frame => ({
  type: "hello",
  body: { version: 1, token: TOKEN, agentVersion: "0.1.0", capabilities: ["connect"], ...body },
});

function refusalOf(frame: Frame, supported?: readonly number[]) {
  const r = checkHello(frame, supported);
  assert.equal(r.ok, false, "refused");
  if (r.ok) throw new Error("unreachable");
  return r.refusal;
}

describe("hello check", () => {
  it("accepts a hello of a spoken version with a token of the issued shape", () => {
    const r = checkHello(hello({}));
    assert.ok(r.ok);
    assert.equal(r.value.token, TOKEN);
    assert.deepEqual(r.value.capabilities, ["connect"]);
  });

  it("refuses another version with a reason naming both versions", () => {
    const { error, goaway } = refusalOf(hello({ version: 2 }));
    assert.ok(error instanceof UnsupportedVersionError);
    assert.equal(error.code, "UP_ERR_UNSUPPORTED_VERSION");
    assert.equal(goaway, GOAWAY_CODE.UNSUPPORTED_VERSION);
    assert.equal(error.message, "tunnel protocol version 2 is not supported; this relay speaks 1");
  });

  it("reads the version before the rest: a newer hello of another shape still hears about its version", () => {
    const { error } = refusalOf({ type: "hello", body: { version: 3, credentials: { kind: "mtls" } } });
    assert.ok(error instanceof UnsupportedVersionError, error.message);
    assert.match(error.message, /version 3 is not supported/);
    const several = refusalOf(hello({ version: 3 }), [1, 4]);
    assert.equal(several.error.message, "tunnel protocol version 3 is not supported; this relay speaks 1, 4");
  });

  it("refuses a malformed hello as a protocol error, naming each bad field", () => {
    const { error, goaway } = refusalOf(hello({ agentVersion: 7, capabilities: "all" }));
    assert.ok(error instanceof ProtocolError);
    assert.equal(goaway, GOAWAY_CODE.PROTOCOL_ERROR);
    assert.match(error.message, /^bad hello: /);
    assert.match(error.message, /agentVersion/);
    assert.match(error.message, /capabilities/);
    assert.match(refusalOf({ type: "hello", body: "hi" }).error.message, /^bad hello: /);
  });

  it("refuses any frame but a hello first", () => {
    const { error, goaway } = refusalOf({ type: "ping", nonce: 1 });
    assert.ok(error instanceof ProtocolError);
    assert.equal(goaway, GOAWAY_CODE.PROTOCOL_ERROR);
    assert.equal(error.message, "expected hello, got ping");
  });

  it("refuses a token that is not of the shape the relay issues, in the words of an unknown one", () => {
    for (const token of [
      "upagt_wrong-token-0123456789abcdef",
      "ups_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
      "upa_short",
      "upa_has space in it 0123456789",
    ]) {
      const { error, goaway } = refusalOf(hello({ token }));
      assert.ok(error instanceof AuthError, token);
      assert.equal(goaway, GOAWAY_CODE.AUTH_FAILED);
      assert.equal(error.message, "unknown or revoked agent token");
      assert.ok(!error.message.includes(token), "the token is not repeated");
    }
  });

  it("says why a hello that never came is refused", () => {
    const { error, goaway } = helloTimedOut();
    assert.ok(error instanceof ProtocolError);
    assert.equal(goaway, GOAWAY_CODE.HELLO_TIMEOUT);
    assert.match(error.message, /no hello/);
  });
});
