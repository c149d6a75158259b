/**
 * The store conformance cases (unit/store-conformance.ts) against the PostgreSQL store, each
 * case in a database of its own on one private cluster; "another store over the same data" is
 * a second store open at the same time, as another relay would be.
 */
import { after, before } from "node:test";
import { PostgresStore } from "../../cloud/store/postgres-store.js";
import type { Store } from "../../cloud/store/store.js";
import { silentLogger } from "../../shared/logger.js";
import { type PostgresCluster, startPostgres } from "../helpers/postgres.js";
import { storeConformance } from "../unit/store-conformance.js";

let cluster: PostgresCluster;
let n = 0;
const urls = new Map<Store, string>();

before(async () => {
  cluster = await startPostgres();
});
after(async () => {
  await cluster?.close();
});

async function openAt(url: string): Promise<Store> {
  const store = new PostgresStore({ url, logger: silentLogger() });
  await store.open();
  urls.set(store, url);
  return store;
}

storeConformance("PostgreSQL", {
  async fresh() {
    return openAt(await cluster.createDatabase(`conformance_${++n}`));
  },
  again: (store) => openAt(urls.get(store)!),
});
