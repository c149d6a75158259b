/** `underpass cloud`'s environment as cloud/config.ts reads it: UNDERPASS_METRICS_LISTEN, the TLS reload. */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { relayConfigFromEnv } from "../../cloud/config.js";
import { ValidationError } from "../../shared/errors.js";
import { silentLogger } from "../../shared/logger.js";

const read = (env: NodeJS.ProcessEnv) => relayConfigFromEnv(env, silentLogger());

/** The ValidationError `env` is refused with; fails when it is accepted. */
function refusal(env: NodeJS.ProcessEnv): ValidationError {
  try {
    read(env);
  } catch (err) {
    assert.ok(err instanceof ValidationError, String(err));
    return err;
  }
  assert.fail(`accepted ${JSON.stringify(env)}`);
}

describe("relay configuration: UNDERPASS_METRICS_LISTEN", () => {
  it("is off when unset", () => {
    assert.equal(read({}).metricsListen, undefined);
  });

  it("reads host:port, [v6]:port and :port (all IPv4 interfaces)", () => {
    assert.deepEqual(read({ UNDERPASS_METRICS_LISTEN: "127.0.0.1:9464" }).metricsListen, {
      host: "127.0.0.1",
      port: 9464,
    });
    assert.deepEqual(read({ UNDERPASS_METRICS_LISTEN: "[::1]:9464" }).metricsListen, {
      host: "::1",
      port: 9464,
    });
    assert.deepEqual(read({ UNDERPASS_METRICS_LISTEN: ":9464" }).metricsListen, {
      host: "0.0.0.0",
      port: 9464,
    });
    assert.deepEqual(read({ UNDERPASS_METRICS_LISTEN: "metrics.internal:0" }).metricsListen, {
      host: "metrics.internal",
      port: 0,
    });
  });

  for (const bad of ["", "9464", "127.0.0.1:", "127.0.0.1:65536", "a b:9464", "[fe80::1%eth0]:9464"]) {
    it(`refuses ${JSON.stringify(bad)}, naming the variable`, () => {
      const err = refusal({ UNDERPASS_METRICS_LISTEN: bad });
      assert.match(err.message, /^UNDERPASS_METRICS_LISTEN=/);
      assert.deepEqual(
        err.issues.map((i) => i.path),
        ["UNDERPASS_METRICS_LISTEN"],
      );
    });
  }

  it("refuses a port another listener takes on the same or a wildcard address", () => {
    assert.match(
      refusal({ UNDERPASS_METRICS_LISTEN: "127.0.0.1:1080" }).message,
      /port 1080 is taken by UNDERPASS_SOCKS_LISTEN/,
      "the SOCKS default is 0.0.0.0:1080",
    );
    assert.match(
      refusal({ UNDERPASS_ADMIN_LISTEN: "127.0.0.1:9000", UNDERPASS_METRICS_LISTEN: "127.0.0.1:9000" })
        .message,
      /UNDERPASS_ADMIN_LISTEN/,
    );
    assert.deepEqual(
      read({ UNDERPASS_ADMIN_LISTEN: "127.0.0.1:9000", UNDERPASS_METRICS_LISTEN: "127.0.0.2:9000" })
        .metricsListen,
      { host: "127.0.0.2", port: 9000 },
      "another address may share the port",
    );
  });
});

describe("relay configuration: UNDERPASS_TLS_WATCH, UNDERPASS_TLS_RELOAD_DEBOUNCE_MS", () => {
  it("watches the certificate files with a one-second debounce by default", () => {
    assert.deepEqual(read({}).tlsReload, { watch: true, debounceMs: 1000 });
  });

  it("turns the watch off and sets the debounce", () => {
    for (const off of ["0", "false", "no", "OFF"]) {
      assert.equal(read({ UNDERPASS_TLS_WATCH: off }).tlsReload?.watch, false, off);
    }
    assert.equal(read({ UNDERPASS_TLS_WATCH: "1" }).tlsReload?.watch, true);
    assert.equal(read({ UNDERPASS_TLS_RELOAD_DEBOUNCE_MS: "250" }).tlsReload?.debounceMs, 250);
  });

  it("refuses what is not a flag or a duration, naming the variable", () => {
    assert.match(refusal({ UNDERPASS_TLS_WATCH: "maybe" }).message, /UNDERPASS_TLS_WATCH/);
    assert.match(
      refusal({ UNDERPASS_TLS_RELOAD_DEBOUNCE_MS: "0" }).message,
      /UNDERPASS_TLS_RELOAD_DEBOUNCE_MS/,
    );
  });
});
