/**
 * One EventSource on `GET /v1/events` for the whole page (WHATWG HTML §9.2), fanned out to the
 * pages by event type. The browser reconnects on its own after a network error (the stream's
 * `retry: 2000`); an answer other than 200 (the session ended: 401) closes the source for good,
 * and then the session is checked before anything is tried again.
 */
import { LIVE_EVENT_TYPES, type LiveEventMap, type LiveEventType } from "./types.js";

export type LiveStatus = "connecting" | "live" | "reconnecting" | "stopped";

type Handler<T extends LiveEventType> = (data: LiveEventMap[T]) => void;

/** After the source closed for good, wait this long before opening another, in ms. */
const REOPEN_MS = 5000;

export class LiveEvents {
  readonly #handlers = new Map<LiveEventType, Set<(data: never) => void>>();
  readonly #statusHandlers = new Set<(s: LiveStatus) => void>();
  #source: EventSource | null = null;
  #status: LiveStatus = "stopped";
  #reopen: number | undefined;
  /** Asked when the source closed for good: true when the session is still live. */
  readonly #sessionAlive: () => Promise<boolean>;

  constructor(sessionAlive: () => Promise<boolean>) {
    this.#sessionAlive = sessionAlive;
  }

  get status(): LiveStatus {
    return this.#status;
  }

  start(): void {
    if (this.#source !== null) return;
    this.#setStatus("connecting");
    const source = new EventSource("/v1/events", { withCredentials: true });
    this.#source = source;
    source.onopen = () => this.#setStatus("live");
    source.onerror = () => {
      if (source.readyState === EventSource.CLOSED) void this.#closedForGood(source);
      else this.#setStatus("reconnecting");
    };
    for (const type of LIVE_EVENT_TYPES) {
      source.addEventListener(type, (e) => this.#dispatch(type, (e as MessageEvent<string>).data));
    }
  }

  stop(): void {
    window.clearTimeout(this.#reopen);
    this.#source?.close();
    this.#source = null;
    this.#setStatus("stopped");
  }

  /** Calls `fn` with each event of `type`; returns the function that stops it. */
  on<T extends LiveEventType>(type: T, fn: Handler<T>): () => void {
    let set = this.#handlers.get(type);
    if (set === undefined) this.#handlers.set(type, (set = new Set()));
    const handler = fn as (data: never) => void;
    set.add(handler);
    return () => set.delete(handler);
  }

  onStatus(fn: (s: LiveStatus) => void): () => void {
    this.#statusHandlers.add(fn);
    fn(this.#status);
    return () => this.#statusHandlers.delete(fn);
  }

  #dispatch(type: LiveEventType, raw: string): void {
    let data: unknown;
    try {
      data = JSON.parse(raw);
    } catch {
      return; // not an event of ours
    }
    for (const fn of this.#handlers.get(type) ?? []) {
      try {
        (fn as (d: unknown) => void)(data);
      } catch (err) {
        console.error(`live event ${type}: a handler failed`, err);
      }
    }
  }

  async #closedForGood(source: EventSource): Promise<void> {
    if (this.#source !== source) return;
    this.#source = null;
    this.#setStatus("reconnecting");
    if (!(await this.#sessionAlive())) {
      this.#setStatus("stopped");
      return;
    }
    this.#reopen = window.setTimeout(() => this.start(), REOPEN_MS);
  }

  #setStatus(s: LiveStatus): void {
    if (this.#status === s) return;
    this.#status = s;
    for (const fn of this.#statusHandlers) fn(s);
  }
}
