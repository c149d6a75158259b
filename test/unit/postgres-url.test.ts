/**
 * UNDERPASS_DATABASE_URL as the store reads it: the TLS modes mean what libpq says they mean,
 * modes the driver cannot honour and unknown parameters are refused naming the variable, and
 * the password never reaches a description.
 */
import assert from "node:assert/strict";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, it } from "node:test";
import type { ConnectionOptions } from "node:tls";
import { relayConfigFromEnv } from "../../cloud/config.js";
import { connectionConfig, describeTarget, parseDatabaseUrl } from "../../cloud/store/postgres-url.js";
import { ValidationError } from "../../shared/errors.js";
import { silentLogger } from "../../shared/logger.js";

const tlsOf = (url: string): ConnectionOptions | false =>
  connectionConfig(parseDatabaseUrl(url), { connectTimeoutMs: 5_000 }).ssl as ConnectionOptions | false;

function refused(url: string, pattern: RegExp): void {
  assert.throws(
    () => parseDatabaseUrl(url),
    (err: unknown) => {
      assert.ok(err instanceof ValidationError, String(err));
      assert.match(err.message, /^UNDERPASS_DATABASE_URL: /);
      assert.match(err.message, pattern);
      assert.ok(!err.message.includes("s3cret"), "no password in the message");
      return true;
    },
  );
}

describe("UNDERPASS_DATABASE_URL", () => {
  it("reads host, port, database, user and a percent-encoded password", () => {
    const t = parseDatabaseUrl("postgresql://relay:p%40ss%2Fword@db.example:6543/underpass");
    assert.deepEqual(
      [t.host, t.port, t.database, t.user, t.password],
      ["db.example", 6543, "underpass", "relay", "p@ss/word"],
    );
    assert.equal(parseDatabaseUrl("postgres://relay@[2001:db8::5]/u").host, "2001:db8::5");
    assert.equal(parseDatabaseUrl("postgres://relay@db/u").port, 5432);
    const c = connectionConfig(parseDatabaseUrl("postgres://relay@db/u?connect_timeout=3"), {
      connectTimeoutMs: 5_000,
    });
    assert.equal(c.connectionTimeoutMillis, 3_000, "connect_timeout is in seconds");
  });

  it("describes the target without its password", () => {
    const d = describeTarget(
      parseDatabaseUrl("postgres://relay:s3cret@db.example/underpass?sslmode=verify-full"),
    );
    assert.equal(d, "relay@db.example:5432/underpass (TLS verify-full)");
    assert.equal(describeTarget(parseDatabaseUrl("postgres://relay@[::1]/x")), "relay@[::1]:5432/x (no TLS)");
  });

  it("maps the TLS modes as libpq means them", () => {
    assert.equal(tlsOf("postgres://relay@db/u"), false, "no TLS unless asked for");
    assert.equal(tlsOf("postgres://relay@db/u?sslmode=disable"), false);
    assert.equal(tlsOf("postgres://relay@db/u?ssl=false"), false);
    const require = tlsOf("postgres://relay@db/u?sslmode=require");
    assert.ok(require !== false);
    assert.equal(require.rejectUnauthorized, false, "require encrypts without checking the certificate");
    const full = tlsOf("postgres://relay@db/u?sslmode=verify-full");
    assert.ok(full !== false);
    assert.equal(full.rejectUnauthorized, true);
    assert.equal(full.checkServerIdentity, undefined, "the host name is checked (Node's default)");
    const sslTrue = tlsOf("postgres://relay@db/u?ssl=true");
    assert.ok(sslTrue !== false && sslTrue.rejectUnauthorized === true && !sslTrue.checkServerIdentity);
    const ca = tlsOf("postgres://relay@db/u?sslmode=verify-ca");
    assert.ok(ca !== false && ca.rejectUnauthorized === true);
    assert.equal(ca.checkServerIdentity?.("db", {} as never), undefined, "the chain only, not the name");
  });

  it("reads the PEM files named in the URL; require with a root certificate checks the chain", async () => {
    const dir = await mkdtemp(join(tmpdir(), "underpass-pgurl-"));
    try {
      const pem = join(dir, "root.pem");
      await writeFile(pem, "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n");
      const o = tlsOf(`postgres://relay@db/u?sslmode=require&sslrootcert=${encodeURIComponent(pem)}`);
      assert.ok(o !== false);
      assert.match(String(o.ca), /BEGIN CERTIFICATE/);
      assert.equal(o.rejectUnauthorized, true);
      assert.equal(o.checkServerIdentity?.("db", {} as never), undefined);
      assert.throws(
        () => tlsOf(`postgres://relay@db/u?sslmode=verify-full&sslrootcert=${join(dir, "missing.pem")}`),
        /sslrootcert=.*missing\.pem cannot be read \(ENOENT\)/,
      );
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it("refuses what it cannot honour, naming the variable", () => {
    refused("postgres://relay:s3cret@db/u?sslmode=prefer", /prefer may fall back/);
    refused("postgres://relay:s3cret@db/u?sslmode=allow", /allow may fall back/);
    refused("postgres://relay:s3cret@db/u?sslmode=strict", /unknown sslmode "strict"/);
    refused("postgres://relay:s3cret@db/u?ssl=maybe", /ssl=maybe/);
    refused("postgres://relay:s3cret@db/u?sslrootcert=/x.pem", /need TLS/);
    refused("postgres://relay:s3cret@db/u?options=-c%20x", /unsupported parameter "options"/);
    refused("mysql://relay:s3cret@db/u", /scheme is mysql/);
    refused("postgres://relay:s3cret@db/", /name one database/);
    refused("postgres://db/u", /no user name/);
    refused("not a url", /not a URL/);
    refused("postgres://relay@db/u?connect_timeout=0", /connect_timeout/);
  });

  it("is checked when the relay's configuration is read", () => {
    const config = relayConfigFromEnv(
      { UNDERPASS_DATABASE_URL: "postgres://relay@db/underpass?sslmode=verify-full" },
      silentLogger(),
    );
    assert.equal(config.databaseUrl, "postgres://relay@db/underpass?sslmode=verify-full");
    assert.equal(relayConfigFromEnv({}, silentLogger()).databaseUrl, undefined);
    assert.throws(
      () =>
        relayConfigFromEnv(
          { UNDERPASS_DATABASE_URL: "postgres://relay@db/u?sslmode=prefer" },
          silentLogger(),
        ),
      ValidationError,
    );
  });
});
