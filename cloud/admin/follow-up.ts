import type { FastifyBaseLogger } from "fastify";

/**
 * An effect on the running relay after a durable change (close a tunnel, reset connections).
 * The change is already stored and is not undone, so a failure is logged and the answer stays
 * a success.
 */
export function afterwards(log: FastifyBaseLogger, what: string, effect: () => unknown): void {
  try {
    effect();
  } catch (err) {
    log.error({ err }, `admin API: ${what} failed after the change was stored`);
  }
}
