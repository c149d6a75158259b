/**
 * The bounds' environment variables as cloud/config.ts reads them: each sets its bound, the
 * rest keep their defaults, and a value out of range is refused naming the variable (the CLI
 * turns that refusal into exit code 2 before anything listens).
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { relayConfigFromEnv } from "../../cloud/config.js";
import { BOUND_VARIABLES } from "../../cloud/limits/bound-variables.js";
import { DEFAULT_BOUNDS, relayBounds } from "../../cloud/limits/bounds.js";
import { ValidationError } from "../../shared/errors.js";
import { silentLogger } from "../../shared/logger.js";

const read = (env: NodeJS.ProcessEnv) => relayConfigFromEnv(env, silentLogger());

describe("the bounds' environment variables", () => {
  it("leave every bound at its default when unset", () => {
    assert.deepEqual(relayBounds(read({}).bounds), DEFAULT_BOUNDS);
  });

  it("name a bound each, and every bound has one", () => {
    const named = Object.values(BOUND_VARIABLES)
      .map((v) => v.bound)
      .sort();
    assert.deepEqual(named, Object.keys(DEFAULT_BOUNDS).sort());
  });

  it("set their bound", () => {
    const bounds = relayBounds(
      read({
        UNDERPASS_SOCKS_PREAUTH_PER_SOURCE: "16",
        UNDERPASS_BUFFER_BUDGET_BYTES: String(512 * 1024 * 1024),
        UNDERPASS_IDLE_TIMEOUT_MS: "0",
        UNDERPASS_FTP_IDLE_TIMEOUT_MS: "7200000",
      }).bounds,
    );
    assert.equal(bounds.socksPreauthPerSource, 16);
    assert.equal(bounds.bufferBudgetBytes, 512 * 1024 * 1024);
    assert.equal(bounds.idleTimeoutMs, 0, "0 turns the idle timeout off");
    assert.equal(bounds.ftpIdleTimeoutMs, 7_200_000);
    assert.equal(bounds.tunnelsPerAgent, DEFAULT_BOUNDS.tunnelsPerAgent);
  });

  for (const [name, bad] of [
    ["UNDERPASS_SOCKS_PREAUTH_PER_SOURCE", "0"],
    ["UNDERPASS_SOCKS_CONNECTIONS_PER_CLIENT", "many"],
    ["UNDERPASS_AUTH_BACKOFF_MAX_MS", "3600001"],
    ["UNDERPASS_CLIENT_BUFFER_BYTES", "1000"],
    ["UNDERPASS_IDLE_TIMEOUT_MS", "-1"],
    ["UNDERPASS_TUNNEL_MAX_PENDING_OPENS", "1.5"],
  ] as const) {
    it(`refuses ${name}=${bad}, naming it`, () => {
      try {
        read({ [name]: bad });
        assert.fail("accepted");
      } catch (err) {
        assert.ok(err instanceof ValidationError, String(err));
        assert.deepEqual(
          err.issues.map((i) => i.path),
          [name],
        );
        assert.match(err.message, new RegExp(name));
      }
    });
  }
});
