/**
 * Live events for `GET /v1/events` (Server-Sent Events, WHATWG HTML §9.2): what the console
 * draws. Each event is serialised once, whatever the number of subscribers; a subscriber that
 * does not read is dropped once its buffered bytes pass a bound, so a stalled browser tab
 * never holds memory or slows whoever publishes.
 */
import type { ServerResponse } from "node:http";

/** One live event: a type (the SSE `event:` field) and a JSON body. */
export interface LiveEvent {
  readonly type: string;
  readonly data: unknown;
}

export interface EventHubOptions {
  /** Bytes a subscriber may leave unread before it is dropped (default 1 MiB). */
  readonly maxBufferedBytes?: number;
  /** A comment line this often keeps proxies from closing an idle stream, in ms (default 15 s). */
  readonly heartbeatMs?: number;
  /** Told when a subscriber is dropped for not reading. */
  readonly onDrop?: (buffered: number) => void;
}

interface Subscriber {
  readonly res: ServerResponse;
  /** Only these event types; all when null. */
  readonly types: ReadonlySet<string> | null;
}

/** The SSE frame of an event: `id`, `event` and one `data` line (JSON has no raw line ends). */
export function formatSse(id: number, e: LiveEvent): string {
  return `id: ${id}\nevent: ${e.type}\ndata: ${JSON.stringify(e.data)}\n\n`;
}

export class EventHub {
  readonly #subscribers = new Set<Subscriber>();
  readonly #maxBuffered: number;
  readonly #onDrop: ((buffered: number) => void) | undefined;
  readonly #heartbeat: NodeJS.Timeout;
  #nextId = 1;
  #dropped = 0;

  constructor(o: EventHubOptions = {}) {
    this.#maxBuffered = o.maxBufferedBytes ?? 1024 * 1024;
    this.#onDrop = o.onDrop;
    this.#heartbeat = setInterval(() => this.#write(": keep-alive\n\n", null), o.heartbeatMs ?? 15_000);
    this.#heartbeat.unref();
  }

  /** Subscribers now. */
  get size(): number {
    return this.#subscribers.size;
  }

  /** Subscribers dropped for not reading, since start. */
  get dropped(): number {
    return this.#dropped;
  }

  /** True when anyone listens: publishers skip building events nobody reads. */
  get hasSubscribers(): boolean {
    return this.#subscribers.size > 0;
  }

  /**
   * Takes over `res` as an event stream until the client goes away. `types` narrows the
   * stream to some event types.
   */
  subscribe(
    res: ServerResponse,
    types: ReadonlySet<string> | null = null,
    first: readonly LiveEvent[] = [],
  ): void {
    res.writeHead(200, {
      "content-type": "text/event-stream; charset=utf-8",
      "cache-control": "no-store",
      connection: "keep-alive",
      // nginx and the like would otherwise hold the stream back
      "x-accel-buffering": "no",
    });
    res.socket?.setNoDelay(true);
    const sub: Subscriber = { res, types };
    this.#subscribers.add(sub);
    const leave = (): void => {
      this.#subscribers.delete(sub);
    };
    res.on("close", leave);
    res.on("error", leave);
    res.write("retry: 2000\n\n");
    for (const e of first) this.#send(sub, formatSse(this.#nextId++, e));
  }

  publish(e: LiveEvent): void {
    if (this.#subscribers.size === 0) return;
    this.#write(formatSse(this.#nextId++, e), e.type);
  }

  #write(frame: string, type: string | null): void {
    for (const sub of this.#subscribers) {
      if (type !== null && sub.types !== null && !sub.types.has(type)) continue;
      this.#send(sub, frame);
    }
  }

  #send(sub: Subscriber, frame: string): void {
    const res = sub.res;
    if (res.destroyed) {
      this.#subscribers.delete(sub);
      return;
    }
    res.write(frame);
    // what the response holds and what its socket holds (OutgoingMessage counts both)
    const buffered = res.writableLength;
    if (buffered > this.#maxBuffered) {
      this.#subscribers.delete(sub);
      this.#dropped++;
      this.#onDrop?.(buffered);
      res.destroy();
    }
  }

  close(): void {
    clearInterval(this.#heartbeat);
    for (const sub of this.#subscribers) sub.res.end();
    this.#subscribers.clear();
  }
}
