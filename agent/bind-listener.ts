/**
 * The on-premise half of SOCKS5 BIND (RFC 1928 §6), which serves FTP active mode: listen on
 * an address the FTP server can reach, accept exactly one connection from the expected host,
 * then stop listening. Anyone else who connects is turned away and the listener keeps
 * waiting; nobody at all within the deadline ends it with a timeout.
 */
import { createSocket } from "node:dgram";
import { lookup } from "node:dns/promises";
import { createServer, isIP, type Server, type Socket } from "node:net";
import { HostUnreachableError, LimitExceededError, UnderpassError } from "../shared/errors.js";
import type { Logger } from "../shared/logger.js";
import { normalizeHost, unmapIPv4 } from "../shared/net/host.js";
import type { PortRange } from "../shared/net/port-range.js";
import { abortSocket } from "../shared/net/socket-abort.js";

export interface BindSettings {
  /** Address to listen on; by default the one this host uses to reach the peer. */
  readonly address?: string | undefined;
  /** Ports to listen on; by default any free port the system picks. */
  readonly ports?: PortRange | undefined;
  /** Upper bound for the wait, in ms, whatever the relay asks. */
  readonly maxWaitMs: number;
}

export interface BindListener {
  readonly address: string;
  readonly port: number;
  /** The expected peer's socket; rejects on timeout or `close()`. */
  readonly accepted: Promise<Socket>;
  /** Stop listening (the relay gave up). */
  close(): void;
}

/**
 * Listeners this process holds at once, whatever the relays ask: each holds a port and a
 * descriptor on premises. A relay keeps its own bounds per client and per agent; this one
 * holds against a relay that does not (or many relays at once). Past it a BIND is answered
 * GENERAL_FAILURE (SOCKS 0x01).
 */
export const BIND_LISTENERS = { max: 1024, held: 0 };

/** The source address the kernel picks towards `host` (a UDP "connect" sends nothing). */
export async function localAddressTowards(host: string): Promise<string> {
  const family = isIP(host) === 6 ? "udp6" : "udp4";
  const s = createSocket(family);
  try {
    await new Promise<void>((resolve, reject) => {
      s.once("error", reject);
      s.connect(9, host, () => resolve());
    });
    return unmapIPv4(s.address().address);
  } finally {
    s.close();
  }
}

/** Every address `host` stands for, in canonical form: who may connect to the listener. */
export async function peerAddresses(host: string, dialHost: string): Promise<Set<string>> {
  const out = new Set([normalizeHost(unmapIPv4(dialHost))]);
  if (isIP(host) === 0) {
    try {
      for (const a of await lookup(host, { all: true })) out.add(normalizeHost(unmapIPv4(a.address)));
    } catch {
      // the policy already resolved it into dialHost; that one address is enough
    }
  } else {
    out.add(normalizeHost(unmapIPv4(host)));
  }
  return out;
}

export async function listenForPeer(options: {
  readonly peers: ReadonlySet<string>;
  readonly address: string;
  readonly ports: PortRange | undefined;
  readonly waitMs: number;
  readonly log: Logger;
}): Promise<BindListener> {
  if (BIND_LISTENERS.held >= BIND_LISTENERS.max) {
    throw new LimitExceededError(`this agent holds ${BIND_LISTENERS.held} BIND listeners, its limit`);
  }
  BIND_LISTENERS.held++;
  const server = createServer({ allowHalfOpen: true, noDelay: true, pauseOnConnect: true });
  server.once("close", () => {
    BIND_LISTENERS.held--;
  });
  let port: number;
  try {
    port = await listenInRange(server, options.address, options.ports);
  } catch (err) {
    server.close(); // emits 'close' even when it never listened: the count goes back
    throw err;
  }
  let settle: { resolve(s: Socket): void; reject(e: Error): void } | null = null;
  const accepted = new Promise<Socket>((resolve, reject) => {
    settle = { resolve, reject };
  });
  accepted.catch(() => {}); // the caller may close before it awaits
  const finish = (result: Socket | Error): void => {
    if (!settle) {
      if (result instanceof Error) return;
      result.destroy();
      return;
    }
    const s = settle;
    settle = null;
    clearTimeout(timer);
    server.close();
    if (result instanceof Error) s.reject(result);
    else s.resolve(result);
  };
  const timer = setTimeout(
    () =>
      finish(
        new HostUnreachableError(
          `no connection from ${[...options.peers].join(", ")} within ${options.waitMs} ms`,
        ),
      ),
    options.waitMs,
  );
  server.on("connection", (socket) => {
    const from = normalizeHost(unmapIPv4(socket.remoteAddress ?? ""));
    if (!options.peers.has(from)) {
      options.log.warn(
        { from: `${from}:${socket.remotePort}`, expected: [...options.peers] },
        "an unexpected peer connected to a BIND listener; turned away",
      );
      abortSocket(socket);
      return;
    }
    finish(socket);
  });
  server.on("error", (err) => finish(new UnderpassError(`BIND listener failed: ${err.message}`)));
  return {
    address: options.address,
    port,
    accepted,
    close: () => finish(new UnderpassError("BIND cancelled")),
  };
}

/** Listen on a free port of `ports` (tried from a random offset) or on any port. */
async function listenInRange(server: Server, address: string, ports: PortRange | undefined): Promise<number> {
  const tryPort = (port: number): Promise<boolean> =>
    new Promise((resolve, reject) => {
      const onError = (err: NodeJS.ErrnoException): void => {
        server.off("listening", onListening);
        if (err.code === "EADDRINUSE" || err.code === "EACCES") resolve(false);
        else reject(new UnderpassError(`cannot listen on ${address}:${port}: ${err.message}`));
      };
      const onListening = (): void => {
        server.off("error", onError);
        resolve(true);
      };
      server.once("error", onError);
      server.once("listening", onListening);
      server.listen({ host: address, port, exclusive: true });
    });
  if (!ports) {
    await tryPort(0);
    const a = server.address();
    if (a === null || typeof a === "string") throw new UnderpassError("BIND listener has no port");
    return a.port;
  }
  const size = ports.end - ports.start + 1;
  const offset = Math.floor(Math.random() * size);
  for (let i = 0; i < size; i++) {
    const port = ports.start + ((offset + i) % size);
    if (await tryPort(port)) return port;
  }
  throw new UnderpassError(`no free port for BIND in ${ports.start}-${ports.end}`);
}
