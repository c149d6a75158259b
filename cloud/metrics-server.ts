/**
 * `GET /metrics` on a listener of its own (UNDERPASS_METRICS_LISTEN), without the admin token,
 * for a Prometheus scraper that should hold no admin credentials. It serves the same text as
 * the admin API's `/metrics` and nothing else: no route here reads or changes configuration.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { Logger } from "../shared/logger.js";

export interface MetricsText {
  /** The Prometheus text exposition format. */
  render(): Promise<string>;
  /** Its content type (`text/plain; version=0.0.4; charset=utf-8`). */
  readonly contentType: string;
}

export const METRICS_PATH = "/metrics";

/** Largest request head Prometheus needs, in bytes; a scrape's is a few hundred. */
const MAX_HEADER_BYTES = 8 * 1024;
/** A scraper that does not finish its request within this is cut off, in ms. */
const REQUEST_TIMEOUT_MS = 10_000;

export function createMetricsServer(metrics: MetricsText, logger: Logger): Server {
  const server = createServer({ maxHeaderSize: MAX_HEADER_BYTES, requestTimeout: REQUEST_TIMEOUT_MS });
  server.on("request", (req, res) => {
    answer(metrics, req, res).catch((err: unknown) => {
      logger.error(
        { err: err instanceof Error ? err.message : String(err) },
        "metrics could not be rendered",
      );
      if (!res.headersSent) res.writeHead(500, { "content-type": "text/plain" });
      res.end("metrics could not be rendered\n");
    });
  });
  return server;
}

async function answer(metrics: MetricsText, req: IncomingMessage, res: ServerResponse): Promise<void> {
  const path = (req.url ?? "").split("?")[0];
  if (path !== METRICS_PATH) {
    res.writeHead(404, { "content-type": "text/plain" }).end(`the metrics are at ${METRICS_PATH}\n`);
    return;
  }
  if (req.method !== "GET" && req.method !== "HEAD") {
    res.writeHead(405, { allow: "GET, HEAD", "content-type": "text/plain" }).end("GET only\n");
    return;
  }
  const text = await metrics.render();
  res.writeHead(200, { "content-type": metrics.contentType, "content-length": Buffer.byteLength(text) });
  res.end(req.method === "HEAD" ? undefined : text);
}
