/** `underpass agent` configuration from the environment (DESIGN.md: the contract). */
import { readFileSync } from "node:fs";
import { isIP } from "node:net";
import { z } from "zod";
import { envFlag, parseEnv } from "../shared/env.js";
import { ValidationError } from "../shared/errors.js";
import type { Logger } from "../shared/logger.js";
import { parsePortRange } from "../shared/net/port-range.js";
import { DEFAULT_TIMERS } from "../shared/tunnel/constants.js";
import { WS_MASKINGS, type WsMasking } from "../shared/tunnel/ws-mask.js";
import type { AgentConfig } from "./agent.js";
import { describeProxy, type ProxySettings, parseProxyUrl, usesProxy } from "./http-proxy.js";
import { parseNoProxy } from "./no-proxy.js";
import { allowAll, describePolicy, parsePolicy } from "./policy.js";
import { parsePins, type RelayPins } from "./relay-pin.js";
import { isTls, parseRelayUrls, plaintextRemote } from "./relay-urls.js";

const ms = z.coerce.number().int().min(1).max(3_600_000);

const agentEnv = z.object({
  // one URL or several, comma-separated: relay-urls.ts
  UNDERPASS_RELAY_URL: z.string({
    error: "is required (ws://host:8443/tunnel or wss://host:8443/tunnel, several comma-separated)",
  }),
  UNDERPASS_RELAY_FINGERPRINT: z.string().optional(),
  UNDERPASS_INSECURE_TUNNEL: z.string().optional(),
  UNDERPASS_AGENT_TOKEN: z.string({ error: "is required (the token POST /v1/agents returned)" }).min(1),
  UNDERPASS_ALLOW: z.string().optional(),
  UNDERPASS_CA: z.string().optional(),
  UNDERPASS_TUNNELS: z.coerce.number().int().min(1).max(64).default(1),
  UNDERPASS_DIAL_TIMEOUT_MS: ms.default(30_000),
  UNDERPASS_PING_INTERVAL_MS: ms.default(DEFAULT_TIMERS.pingIntervalMs),
  UNDERPASS_PING_TIMEOUT_MS: ms.default(DEFAULT_TIMERS.pingTimeoutMs),
  UNDERPASS_RECONNECT_MAX_MS: ms.default(10_000),
  UNDERPASS_BIND_ADDRESS: z
    .string()
    .refine(
      (v) => isIP(v) !== 0 && v !== "0.0.0.0" && v !== "::",
      "must be a specific IP address of this host",
    )
    .optional(),
  UNDERPASS_BIND_PORTS: z
    .string()
    .transform((v, ctx) => {
      const r = parsePortRange(v);
      if (typeof r === "string") ctx.addIssue({ code: "custom", message: r });
      return r;
    })
    .optional(),
  UNDERPASS_BIND_TIMEOUT_MS: ms.default(120_000),
  UNDERPASS_WS_MASK: z
    .enum(WS_MASKINGS, {
      error: "must be random (a fresh masking key per frame) or zero (the all-zero key, wss only)",
    })
    .default("random"),
  HTTPS_PROXY: z.string().optional(),
  https_proxy: z.string().optional(),
  NO_PROXY: z.string().optional(),
  no_proxy: z.string().optional(),
});

export function agentConfigFromEnv(env: NodeJS.ProcessEnv, logger: Logger): AgentConfig {
  const e = parseEnv(agentEnv, env);
  const relayUrls = parseRelayUrls(e.UNDERPASS_RELAY_URL, "UNDERPASS_RELAY_URL");
  const insecure = envFlag(e.UNDERPASS_INSECURE_TUNNEL);
  checkPlaintext(relayUrls, insecure, logger);
  const pins = pinsFromEnv(e.UNDERPASS_RELAY_FINGERPRINT, relayUrls);
  let policy = allowAll();
  if (e.UNDERPASS_ALLOW?.trim()) {
    try {
      policy = parsePolicy(e.UNDERPASS_ALLOW);
    } catch (err) {
      if (err instanceof ValidationError)
        throw new ValidationError(`UNDERPASS_ALLOW: ${err.message}`, err.issues);
      throw err;
    }
    logger.info({ policy: describePolicy(policy) }, "local policy");
  } else {
    logger.warn("UNDERPASS_ALLOW is not set: the agent dials whatever the relay asks; set a local policy");
  }
  return {
    relayUrls,
    token: e.UNDERPASS_AGENT_TOKEN,
    policy,
    logger,
    tunnels: e.UNDERPASS_TUNNELS,
    ca: e.UNDERPASS_CA ? readCa(e.UNDERPASS_CA) : undefined,
    pins,
    maxDialTimeoutMs: e.UNDERPASS_DIAL_TIMEOUT_MS,
    timers: { pingIntervalMs: e.UNDERPASS_PING_INTERVAL_MS, pingTimeoutMs: e.UNDERPASS_PING_TIMEOUT_MS },
    backoff: { baseMs: 250, maxMs: e.UNDERPASS_RECONNECT_MAX_MS },
    bind: {
      address: e.UNDERPASS_BIND_ADDRESS,
      ports: typeof e.UNDERPASS_BIND_PORTS === "object" ? e.UNDERPASS_BIND_PORTS : undefined,
      maxWaitMs: e.UNDERPASS_BIND_TIMEOUT_MS,
    },
    proxy: proxyFromEnv(e, relayUrls, logger),
    wsMasking: wsMaskingFromEnv(e.UNDERPASS_WS_MASK, relayUrls),
    // a URL a relay tells is held to the rule of UNDERPASS_RELAY_URL
    mayDial: (url) => insecure || plaintextRemote([url]).length === 0,
  };
}

/**
 * A ws:// URL to anything but this host sends the token and every byte in the clear: the
 * agent says so at start, and goes on only with UNDERPASS_INSECURE_TUNNEL=1.
 */
function checkPlaintext(relayUrls: readonly string[], insecure: boolean, logger: Logger): void {
  const plain = plaintextRemote(relayUrls);
  if (plain.length === 0) return;
  logger.warn(
    { relays: plain, insecureTunnel: insecure },
    "the tunnel to these relays is not encrypted: the agent token and all traffic cross the network in the clear",
  );
  if (insecure) return;
  const why = `${plain.join(", ")} is ws:// to a host that is not loopback: use wss://, or set UNDERPASS_INSECURE_TUNNEL=1 to allow a plaintext tunnel`;
  throw new ValidationError(`UNDERPASS_RELAY_URL: ${why}`, [{ path: "UNDERPASS_RELAY_URL", message: why }]);
}

/** UNDERPASS_RELAY_FINGERPRINT pins wss relays' certificates: it needs a wss:// URL to pin. */
function pinsFromEnv(value: string | undefined, relayUrls: readonly string[]): RelayPins | undefined {
  if (!value?.trim()) return undefined;
  const pins = parsePins(value, "UNDERPASS_RELAY_FINGERPRINT");
  if (!relayUrls.some(isTls)) {
    const why = "pins the certificate of a wss:// relay, and UNDERPASS_RELAY_URL names none";
    throw new ValidationError(`UNDERPASS_RELAY_FINGERPRINT ${why}`, [
      { path: "UNDERPASS_RELAY_FINGERPRINT", message: why },
    ]);
  }
  return pins;
}

/**
 * UNDERPASS_WS_MASK: `zero` drops RFC 6455 §5.3's masking, which guards against proxies that a
 * hostile page could steer through plaintext WebSocket bytes (§10.3); inside TLS no proxy sees
 * them, so `zero` is accepted only when every relay URL is wss://.
 */
function wsMaskingFromEnv(masking: WsMasking, relayUrls: readonly string[]): WsMasking {
  const plain = relayUrls.filter((u) => !isTls(u));
  if (masking === "zero" && plain.length > 0) {
    const why = `zero masking is for wss:// tunnels only; ${plain.join(", ")} is ws://`;
    throw new ValidationError(`UNDERPASS_WS_MASK=zero: ${why}`, [
      { path: "UNDERPASS_WS_MASK", message: why },
    ]);
  }
  return masking;
}

/** HTTPS_PROXY (or https_proxy) with NO_PROXY (or no_proxy); undefined without a proxy. */
function proxyFromEnv(
  e: z.output<typeof agentEnv>,
  relayUrls: readonly string[],
  logger: Logger,
): ProxySettings | undefined {
  const variable = e.HTTPS_PROXY !== undefined ? "HTTPS_PROXY" : "https_proxy";
  const value = e.HTTPS_PROXY ?? e.https_proxy;
  if (!value?.trim()) return undefined;
  const settings: ProxySettings = {
    url: parseProxyUrl(value, variable),
    noProxy: parseNoProxy(e.NO_PROXY ?? e.no_proxy ?? ""),
  };
  if (settings.noProxy.ignored.length > 0) {
    logger.warn({ ignored: settings.noProxy.ignored }, "NO_PROXY entries not understood are left out");
  }
  const proxy = describeProxy(settings.url);
  for (const relay of relayUrls) {
    if (usesProxy(settings, relay)) logger.info({ proxy, relay }, "the tunnel goes through the HTTP proxy");
    else logger.info({ proxy, relay }, "NO_PROXY covers the relay: the tunnel does not use the HTTP proxy");
  }
  return settings;
}

/** The PEM file UNDERPASS_CA names, read now so that a wrong path fails before any connection. */
function readCa(file: string): Buffer {
  let pem: Buffer;
  try {
    pem = readFileSync(file);
  } catch (err) {
    const why = (err as NodeJS.ErrnoException).code ?? String(err);
    throw new ValidationError(`UNDERPASS_CA=${file} cannot be read (${why})`, [
      { path: "UNDERPASS_CA", message: why },
    ]);
  }
  if (!pem.includes("-----BEGIN CERTIFICATE-----")) {
    throw new ValidationError(`UNDERPASS_CA=${file} holds no PEM certificate`, [
      { path: "UNDERPASS_CA", message: "no -----BEGIN CERTIFICATE----- block" },
    ]);
  }
  return pem;
}
