/**
 * A distance in user space: a TCP forwarder that holds every chunk for half the round-trip
 * time in each direction, with the bytes in flight each way capped at a bandwidth-delay
 * product (16 MiB by default). This kernel has no netem; the bench puts this link on the tunnel
 * hop only (agent ↔ relay), and measures one plain TCP stream through the same link as the
 * ceiling any tunnel over it can reach.
 *
 * Back-pressure is TCP's: a direction whose in-flight bytes reach the cap pauses its source
 * socket until delivered bytes have left, so memory stays bounded by the cap, per connection
 * and direction.
 */
import { connect, createServer, type Server, type Socket } from "node:net";

export interface DelayLinkOptions {
  /** Where the link forwards to. */
  readonly target: { readonly host: string; readonly port: number };
  /** Round-trip time the link adds, in ms (each direction holds bytes for half of it). */
  readonly rttMs: number;
  /** Bytes in flight per direction of a connection before the source is paused (default 16 MiB). */
  readonly maxInFlightBytes?: number;
}

export interface DelayLink {
  readonly port: number;
  /** Connections forwarded so far. */
  connections(): number;
  close(): Promise<void>;
}

/** One direction of one connection: chunks queued with their delivery time. */
class DelayedPipe {
  readonly #queue: Array<{ at: number; chunk: Buffer }> = [];
  #inFlight = 0;
  #timer: NodeJS.Timeout | null = null;
  #ended = false;
  /** The source ended and everything it sent has been delivered. */
  finished = false;
  onFinished: () => void = () => {};
  readonly #from: Socket;
  readonly #to: Socket;
  readonly #cap: number;

  constructor(from: Socket, to: Socket, delayMs: number, cap: number) {
    this.#from = from;
    this.#to = to;
    this.#cap = cap;
    from.on("data", (chunk: Buffer) => {
      this.#queue.push({ at: performance.now() + delayMs, chunk });
      this.#inFlight += chunk.length;
      if (this.#inFlight >= this.#cap) from.pause();
      this.#schedule();
    });
    from.on("end", () => {
      this.#ended = true;
      this.#schedule();
    });
  }

  #schedule(): void {
    if (this.#timer !== null) return;
    const head = this.#queue[0];
    if (head === undefined) {
      if (this.#ended && !this.finished) {
        this.finished = true;
        this.#to.end();
        this.onFinished();
      }
      return;
    }
    const wait = Math.max(0, head.at - performance.now());
    this.#timer = setTimeout(() => {
      this.#timer = null;
      this.#deliver();
    }, wait);
  }

  #deliver(): void {
    const now = performance.now();
    // every chunk that is due leaves in this turn, in one corked write
    this.#to.cork();
    while (this.#queue.length > 0 && this.#queue[0]!.at <= now + 0.5) {
      const { chunk } = this.#queue.shift()!;
      this.#inFlight -= chunk.length;
      this.#to.write(chunk);
    }
    this.#to.uncork();
    if (this.#inFlight < this.#cap && this.#from.isPaused()) this.#from.resume();
    this.#schedule();
  }

  stop(): void {
    if (this.#timer !== null) clearTimeout(this.#timer);
    this.#timer = null;
    this.#queue.length = 0;
  }
}

export async function startDelayLink(o: DelayLinkOptions): Promise<DelayLink> {
  const cap = o.maxInFlightBytes ?? 16 * 1024 * 1024;
  const half = o.rttMs / 2;
  const sockets = new Set<Socket>();
  let count = 0;
  const server: Server = createServer({ allowHalfOpen: true, noDelay: true }, (inbound) => {
    count++;
    const outbound = connect({
      host: o.target.host,
      port: o.target.port,
      allowHalfOpen: true,
      noDelay: true,
    });
    sockets.add(inbound);
    sockets.add(outbound);
    const pipes = [
      new DelayedPipe(inbound, outbound, half, cap),
      new DelayedPipe(outbound, inbound, half, cap),
    ];
    const close = (): void => {
      for (const p of pipes) p.stop();
      inbound.destroy();
      outbound.destroy();
      sockets.delete(inbound);
      sockets.delete(outbound);
    };
    // a connection ends once both directions have delivered what they held (a close of one
    // socket must not drop the bytes still on their way to the other), or on an error
    for (const p of pipes) p.onFinished = () => pipes.every((x) => x.finished) && close();
    inbound.on("error", close);
    outbound.on("error", close);
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(0, "127.0.0.1", resolve);
  });
  const port = (server.address() as { port: number }).port;
  return {
    port,
    connections: () => count,
    async close() {
      for (const s of sockets) s.destroy();
      await new Promise((resolve) => server.close(resolve));
    },
  };
}
