/**
 * A TCP forwarder on a loopback port 0 that a test can cut and heal: while cut, every
 * connection through it is reset and new ones are reset as they arrive, as a relay sees a
 * network that lost its database. Closed in teardown.
 */
import { createConnection, createServer, type Socket } from "node:net";

export interface TcpLink {
  readonly port: number;
  /** Resets every connection through the link, and each new one until `heal()`. */
  cut(): void;
  heal(): void;
  close(): Promise<void>;
}

export async function startTcpLink(to: { host: string; port: number }): Promise<TcpLink> {
  const pairs = new Set<[Socket, Socket]>();
  let cut = false;
  const server = createServer((client) => {
    if (cut) {
      client.resetAndDestroy();
      return;
    }
    const upstream = createConnection(to);
    const pair: [Socket, Socket] = [client, upstream];
    pairs.add(pair);
    const end = (): void => {
      pairs.delete(pair);
      client.destroy();
      upstream.destroy();
    };
    client.on("error", end).on("close", end);
    upstream.on("error", end).on("close", end);
    client.pipe(upstream);
    upstream.pipe(client);
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const port = (server.address() as { port: number }).port;
  const cutAll = (): void => {
    cut = true;
    for (const [client, upstream] of [...pairs]) {
      client.resetAndDestroy();
      upstream.destroy();
    }
    pairs.clear();
  };
  return {
    port,
    cut: cutAll,
    heal() {
      cut = false;
    },
    close() {
      cutAll();
      return new Promise((resolve) => server.close(() => resolve()));
    },
  };
}
