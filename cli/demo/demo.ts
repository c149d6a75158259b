/**
 * `underpass demo`: relay, agent and a demo FTP server in one process on loopback, with an
 * agent, a SOCKS client and the FTP mappings registered through the admin API, then the exact
 * curl commands that list and download through SOCKS5.
 */
import { randomBytes } from "node:crypto";
import { mkdir, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { startAgent } from "../../agent/agent.js";
import { parsePolicy } from "../../agent/policy.js";
import { startRelay } from "../../cloud/relay.js";
import { createLogger } from "../../shared/logger.js";
import { formatPortRange, type PortRange } from "../../shared/net/port-range.js";
import { startMemoryReducer } from "../heap-tuning.js";
import { startDemoFtpServer } from "./ftp-server.js";

const VIRTUAL_HOST = "ftp.demo.internal";

interface DemoOptions {
  socksPort: number;
}

function parseArgs(argv: string[]): DemoOptions {
  const o: DemoOptions = { socksPort: 1080 };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === "--socks-port") o.socksPort = Number(argv[++i]);
    else throw new Error(`unknown demo option ${a} (known: --socks-port N, 0 picks a free port)`);
  }
  if (!Number.isInteger(o.socksPort) || o.socksPort < 0 || o.socksPort > 65535) {
    throw new Error("--socks-port takes a port number (0 picks a free one)");
  }
  return o;
}

/**
 * Consecutive free loopback ports for the FTP server's passive range, taken below the
 * system's ephemeral range, where busy outgoing connections cannot be sitting on them.
 */
async function freeRange(count: number): Promise<PortRange> {
  const low = 10_000;
  const high = Math.max(low + 1_000, (await ephemeralStart()) - count);
  for (let attempt = 0; attempt < 200; attempt++) {
    const start = low + Math.floor(Math.random() * (high - low));
    let ok = true;
    for (let p = start; p < start + count && ok; p++) ok = await canBind(p);
    if (ok) return { start, end: start + count - 1 };
  }
  throw new Error("no free range of loopback ports for the demo FTP server");
}

/** First port of the kernel's ephemeral range (32768 when it cannot be read). */
async function ephemeralStart(): Promise<number> {
  try {
    const text = await readFile("/proc/sys/net/ipv4/ip_local_port_range", "utf8");
    const first = Number(text.trim().split(/\s+/)[0]);
    return Number.isInteger(first) && first > 1024 ? first : 32_768;
  } catch {
    return 32_768;
  }
}

function canBind(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = createServer();
    s.once("error", () => resolve(false));
    s.listen(port, "127.0.0.1", () => s.close(() => resolve(true)));
  });
}

export async function runDemo(argv: string[]): Promise<void> {
  const o = parseArgs(argv);
  const logger = createLogger({
    name: "underpass-demo",
    level: process.env["UNDERPASS_LOG_LEVEL"] ?? "warn",
  });
  startMemoryReducer(logger);
  const work = await mkdtemp(join(tmpdir(), "underpass-demo-"));
  const files = join(work, "ftp");
  await mkdir(join(files, "reports"), { recursive: true });
  await writeFile(join(files, "readme.txt"), "Hello from the on-premise FTP server, through Underpass.\n");
  await writeFile(join(files, "reports", "2026-11.csv"), "day,orders\n1,12\n2,17\n");
  await writeFile(join(files, "data.bin"), randomBytes(8 * 1024 * 1024));

  const pasvPorts = await freeRange(10);
  const ftp = await startDemoFtpServer({
    root: files,
    host: "127.0.0.1",
    port: 0,
    pasvPorts,
    allowUpload: true,
  });

  const relay = await startRelay({
    tunnelListen: { host: "127.0.0.1", port: 0 },
    socksListen: { host: "127.0.0.1", port: o.socksPort },
    adminListen: { host: "127.0.0.1", port: 0 },
    dataDir: join(work, "relay-data"),
    logger,
  });
  const adminToken = relay.generatedAdminToken!;
  const api = async (
    method: "POST" | "GET",
    url: string,
    body?: object,
  ): Promise<Record<string, unknown>> => {
    const res = await relay.admin.inject({
      method,
      url,
      headers: { authorization: `Bearer ${adminToken}` },
      ...(body ? { payload: body } : {}),
    });
    if (res.statusCode >= 300) throw new Error(`${method} ${url}: ${res.statusCode} ${res.body}`);
    return res.json() as Record<string, unknown>;
  };
  const agentRec = await api("POST", "/v1/agents", { name: "demo-agent", location: "default" });
  const client = await api("POST", "/v1/clients", { name: "demo-flow", location: "default" });
  await api("POST", "/v1/mappings", {
    virtualHost: VIRTUAL_HOST,
    virtualPort: 21,
    internalHost: "127.0.0.1",
    internalPort: ftp.port,
    protocol: "tcp",
    description: "demo FTP control",
  });
  const range = String(formatPortRange(pasvPorts));
  await api("POST", "/v1/mappings", {
    virtualHost: VIRTUAL_HOST,
    virtualPort: range,
    internalHost: "127.0.0.1",
    internalPort: range,
    description: "demo FTP passive data ports",
  });

  const agent = startAgent({
    relayUrl: `ws://127.0.0.1:${relay.tunnelAddress.port}/tunnel`,
    token: String(agentRec["token"]),
    policy: parsePolicy(`127.0.0.1:${ftp.port},${range}`),
    logger,
  });
  await agent.waitUp(1, 15_000);

  const proxy = `socks5h://${client["username"]}:${client["password"]}@127.0.0.1:${relay.socksAddress.port}`;
  process.stdout.write(
    [
      "",
      "Underpass demo is running on loopback:",
      `  relay   tunnel ws://127.0.0.1:${relay.tunnelAddress.port}/tunnel, SOCKS5 127.0.0.1:${relay.socksAddress.port}, admin http://127.0.0.1:${relay.adminAddress.port}`,
      `  agent   connected, local policy 127.0.0.1:${ftp.port},${range}`,
      `  FTP     demo server 127.0.0.1:${ftp.port}, passive ports ${range}, mapped as ${VIRTUAL_HOST}:21 and :${range}`,
      "",
      "List the FTP server through SOCKS5:",
      `  curl --proxy '${proxy}' ftp://${VIRTUAL_HOST}/`,
      "Download a file through SOCKS5:",
      `  curl --proxy '${proxy}' -o readme.txt ftp://${VIRTUAL_HOST}/readme.txt`,
      "",
      `Admin API token: ${adminToken}`,
      `  curl -H 'Authorization: Bearer ${adminToken}' http://127.0.0.1:${relay.adminAddress.port}/v1/mappings`,
      "Or with the admin commands, e.g. the FTP check:",
      `  export UNDERPASS_ADMIN_URL=http://127.0.0.1:${relay.adminAddress.port} UNDERPASS_ADMIN_TOKEN=${adminToken}`,
      "  underpass mappings list",
      "  underpass mappings ftp-check <id of the :21 mapping>",
      "",
      "Press Ctrl-C to stop.",
      "",
    ].join("\n"),
  );

  const stop = async (): Promise<void> => {
    await agent.close();
    await relay.close();
    await ftp.close();
    await rm(work, { recursive: true, force: true });
  };
  let stopping = false;
  const onSignal = (): void => {
    if (stopping) process.exit(1);
    stopping = true;
    stop().then(
      () => process.exit(0),
      () => process.exit(1),
    );
  };
  process.on("SIGINT", onSignal);
  process.on("SIGTERM", onSignal);
}
