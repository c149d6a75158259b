/**
 * The web console's files, served by the admin listener: `/` is the page, `/console/…` its
 * scripts (compiled from `console/` into `dist/console/`) and style (`console/public/`). Every
 * file is read once, when the admin API starts, and answered from memory with an ETag; nothing
 * comes from another host (the page's Content-Security-Policy allows only this origin).
 */
import { createHash } from "node:crypto";
import { existsSync, readdirSync, readFileSync, statSync } from "node:fs";
import { extname, join, relative, sep } from "node:path";
import { fileURLToPath } from "node:url";
import type { FastifyPluginAsync, FastifyReply } from "fastify";
import { NotFoundError } from "../../shared/errors.js";

/** The repository (or installed package) root: this file runs as dist/cloud/admin/console-assets.js. */
const ROOT = fileURLToPath(new URL("../../../", import.meta.url));
/** Hand-written files: the page and its style. */
export const CONSOLE_PUBLIC_DIR = join(ROOT, "console", "public");
/** What `tsc -p console/tsconfig.json` writes. */
export const CONSOLE_BUILD_DIR = join(ROOT, "dist", "console");
/** Where the files are served. */
export const CONSOLE_PREFIX = "/console/";

const CONTENT_TYPES: Readonly<Record<string, string>> = {
  ".html": "text/html; charset=utf-8",
  ".js": "text/javascript; charset=utf-8",
  ".css": "text/css; charset=utf-8",
  ".svg": "image/svg+xml",
  ".png": "image/png",
  ".ico": "image/x-icon",
};

/**
 * Only this origin, no inline script or style, no framing (CSP Level 3). `data:` images: the
 * browser's own form controls use them. Downloads the page makes (audit export) are blob: URLs,
 * which navigation to a download does not need listed.
 */
const CONTENT_SECURITY_POLICY = [
  "default-src 'none'",
  "script-src 'self'",
  "style-src 'self'",
  "img-src 'self' data:",
  "connect-src 'self'",
  "base-uri 'none'",
  "form-action 'none'",
  "frame-ancestors 'none'",
].join("; ");

const SECURITY_HEADERS: Readonly<Record<string, string>> = {
  "content-security-policy": CONTENT_SECURITY_POLICY,
  "x-content-type-options": "nosniff",
  "x-frame-options": "DENY",
  "referrer-policy": "no-referrer",
  "cross-origin-opener-policy": "same-origin",
  "cross-origin-resource-policy": "same-origin",
};

interface Asset {
  readonly body: Buffer;
  readonly contentType: string;
  readonly etag: string;
}

export interface ConsoleAssetOptions {
  readonly publicDir?: string;
  readonly buildDir?: string;
  /** Told once when the console's scripts are missing (the build did not run). */
  readonly onMissing?: (dir: string) => void;
}

/** Every servable file under `dir`, keyed by its path relative to it with `/` separators. */
function readTree(dir: string): Map<string, Asset> {
  const out = new Map<string, Asset>();
  if (!existsSync(dir)) return out;
  const walk = (d: string): void => {
    for (const name of readdirSync(d)) {
      const path = join(d, name);
      if (statSync(path).isDirectory()) {
        walk(path);
        continue;
      }
      const contentType = CONTENT_TYPES[extname(name)];
      if (contentType === undefined) continue; // source maps, build info: not served
      const body = readFileSync(path);
      const etag = `"${createHash("sha256").update(body).digest("base64url").slice(0, 22)}"`;
      out.set(relative(dir, path).split(sep).join("/"), { body, contentType, etag });
    }
  };
  walk(dir);
  return out;
}

/** The page, answered when the console's scripts were never built. */
const NOT_BUILT = Buffer.from(
  "<!doctype html><title>Underpass console</title><p>The console is not built: run <code>npm run build</code>.</p>\n",
);

export const consoleAssets: FastifyPluginAsync<ConsoleAssetOptions> = async (app, o) => {
  const built = readTree(o.buildDir ?? CONSOLE_BUILD_DIR);
  const assets = readTree(o.publicDir ?? CONSOLE_PUBLIC_DIR);
  for (const [path, asset] of built) assets.set(path, asset);
  const page = assets.get("index.html");
  assets.delete("index.html");
  const ready = page !== undefined && built.has("main.js");
  if (!ready) o.onMissing?.(o.buildDir ?? CONSOLE_BUILD_DIR);

  const send = (reply: FastifyReply, asset: Asset, ifNoneMatch: string | undefined) => {
    reply.headers(SECURITY_HEADERS);
    reply.header("cache-control", "no-cache");
    reply.header("etag", asset.etag);
    if (ifNoneMatch === asset.etag) return reply.code(304).send();
    return reply.type(asset.contentType).send(asset.body);
  };
  // public and out of the document: the page is not part of the API
  const schema = { hide: true, security: [] };

  app.get("/", { schema }, async (req, reply) => {
    if (!ready || page === undefined) {
      reply.headers(SECURITY_HEADERS);
      return reply.code(503).type(CONTENT_TYPES[".html"]!).send(NOT_BUILT);
    }
    return send(reply, page, req.headers["if-none-match"]);
  });

  app.get(`${CONSOLE_PREFIX}*`, { schema }, async (req, reply) => {
    const path = (req.params as { "*": string })["*"];
    const asset = assets.get(path);
    if (asset === undefined) {
      return reply.code(404).send({ error: NotFoundError.spec.code, message: `no console file ${path}` });
    }
    return send(reply, asset, req.headers["if-none-match"]);
  });
};
