/** What every scenario gets: the options, the running peers, where the target is, the record. */
import type { FigureBook } from "./figures.js";
import type { BenchOptions } from "./options.js";
import type { Peer, PeerId } from "./peers/peer.js";
import type { Destination } from "./socks5-client.js";

/** The bench target's three ports, as one peer's client names them. */
export interface TargetRoute {
  readonly sink: Destination;
  readonly source: Destination;
  readonly echo: Destination;
}

export interface RunContext {
  readonly options: BenchOptions;
  readonly book: FigureBook;
  readonly peers: readonly Peer[];
  readonly routes: ReadonlyMap<PeerId, TargetRoute>;
  /** Scratch space of this run (results/tmp/...). */
  readonly scratch: string;
  /**
   * Start a new instance of a peer, with the target exposed; the caller stops it.
   * `tunnelRttMs` puts a delay link on its tunnel hop (PeerContext); `relayEnv` adds to the
   * relay's environment (Underpass only).
   */
  launch(
    id: PeerId,
    tunnelRttMs?: number,
    relayEnv?: Readonly<Record<string, string>>,
  ): Promise<{ peer: Peer; route: TargetRoute }>;
  log(message: string): void;
}

export function routeOf(ctx: RunContext, peer: Peer): TargetRoute {
  const r = ctx.routes.get(peer.id);
  if (!r) throw new Error(`no route to the target through ${peer.id}`);
  return r;
}

/** Runs `fn` with a deadline; rejects with `what` when it runs out. */
export function withDeadline<T>(fn: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: no result within ${Math.round(ms / 1000)} s`)), ms);
  });
  return Promise.race([fn, deadline]).finally(() => clearTimeout(timer));
}
