/**
 * `underpass cloud` with UNDERPASS_METRICS_LISTEN, as a Prometheus scraper sees it: `GET /metrics`
 * on its own address without the admin token, nothing else there, and figures that moved by
 * exactly what real traffic did — CONNECTs through a real `underpass agent` process to a real
 * target, a denial, a wrong password, a wrong agent token, a wrong admin token, and an FTP
 * session with vsftpd behind an FTP-aware mapping (227, 229, a bounce, an active-mode dial).
 */
import assert from "node:assert/strict";
import { once } from "node:events";
import { mkdtemp, rm } from "node:fs/promises";
import { createServer, type Socket } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { ChildRegistry } from "../helpers/clients.js";
import { loginAnonymously, readReply } from "../helpers/ftp-dialogue.js";
import { addFtpAwareMapping } from "../helpers/ftp-servers.js";
import { freePortRange, waitFor } from "../helpers/ports.js";
import {
  type CliProcess,
  type CloudProcess,
  isRelayListening,
  startAgentProcess,
  startCloud,
} from "../helpers/processes.js";
import { type Exposition, parseExposition } from "../helpers/prometheus.js";
import { helloOnce } from "../helpers/raw-hello.js";
import { type Credentials, socksConnect, socksReply } from "../helpers/stack.js";
import { readAll, startTarget, type Target } from "../helpers/targets.js";
import { startVsftpd, type VsftpdServer } from "../helpers/vsftpd.js";

const ADMIN_TOKEN = "metrics-listen-admin-token-0123456789";
const FTP_HOST = "ftp.metrics.example";
/** What vsftpd announces, as behind NAT: the relay rewrites it. */
const NAT_ADDRESS = "10.255.255.1";

/** Each sample's value in `later` minus its value in `earlier` (0 where it was absent). */
function delta(earlier: Exposition, later: Exposition) {
  return (name: string, labels: Record<string, string> = {}): number =>
    (later.value(name, labels) ?? 0) - (earlier.value(name, labels) ?? 0);
}

describe("underpass cloud: GET /metrics on UNDERPASS_METRICS_LISTEN, without the admin token", () => {
  const children = new ChildRegistry();
  const sockets: Socket[] = [];
  let work: string;
  let cloud: CloudProcess;
  let agent: CliProcess;
  let echo: Target;
  let ftp: VsftpdServer;
  let client: Credentials;
  let metricsUrl: string;

  const scrape = async (): Promise<Exposition> => {
    const res = await fetch(metricsUrl, { signal: AbortSignal.timeout(10_000) });
    assert.equal(res.status, 200);
    assert.match(res.headers.get("content-type") ?? "", /^text\/plain; version=0\.0\.4/);
    return parseExposition(await res.text());
  };
  const track = (s: Socket): Socket => {
    sockets.push(s);
    return s;
  };

  before(async () => {
    work = await mkdtemp(join(tmpdir(), "underpass-e2e-metrics-"));
    echo = await startTarget((s) => s.pipe(s));
    ftp = await startVsftpd({
      pasvPorts: await freePortRange(10),
      pasvAddress: NAT_ADDRESS,
      registry: children,
    });
    cloud = await startCloud({
      dataDir: join(work, "data"),
      adminToken: ADMIN_TOKEN,
      env: { UNDERPASS_METRICS_LISTEN: "127.0.0.1:0", UNDERPASS_PING_INTERVAL_MS: "200" },
      registry: children,
    });
    const [listening] = cloud.logs().filter(isRelayListening);
    assert.match(String(listening?.["metrics"]), /^127\.0\.0\.1:\d+$/, cloud.describe());
    metricsUrl = `http://${String(listening?.["metrics"])}/metrics`;

    const rec = await cloud.admin.addAgent("site-a");
    agent = startAgentProcess({ relayUrl: cloud.relayUrl, token: rec.token, registry: children });
    await cloud.admin.waitAgentConnected(rec.id);
    client = await cloud.admin.addClient("flow-a");
    await cloud.admin.addMapping({
      virtualHost: "echo.corp",
      virtualPort: 7,
      internalHost: "127.0.0.1",
      internalPort: echo.port,
    });
    await addFtpAwareMapping(cloud.admin, ftp, FTP_HOST, 21);
  });

  after(async () => {
    for (const s of sockets) s.destroy();
    await agent?.stop();
    await cloud?.stop();
    await children.killAll();
    await ftp?.close();
    await echo?.close();
    if (work) await rm(work, { recursive: true, force: true });
  });

  it("serves the admin API's figures without a token, and nothing else on that address", async () => {
    const open = await scrape();
    const admin = await fetch(`${cloud.admin.baseUrl}/metrics`, {
      headers: { authorization: `Bearer ${ADMIN_TOKEN}` },
    });
    assert.equal(admin.status, 200);
    const names = (m: Exposition): string[] =>
      [...m.families.keys()].filter((n) => n.startsWith("underpass_"));
    assert.deepEqual(names(parseExposition(await admin.text())), names(open), "the same registry");
    assert.ok(names(open).length >= 20, names(open).join(", "));
    assert.ok(open.families.has("process_cpu_user_seconds_total"), "the process metrics too");

    const base = new URL(metricsUrl).origin;
    for (const path of ["/", "/v1/agents", "/healthz", "/metrics/x"]) {
      assert.equal((await fetch(`${base}${path}`)).status, 404, path);
    }
    const post = await fetch(metricsUrl, { method: "POST", body: "x" });
    assert.equal(post.status, 405);
    assert.equal(post.headers.get("allow"), "GET, HEAD");
    const head = await fetch(metricsUrl, { method: "HEAD" });
    assert.equal(head.status, 200);
    assert.equal(await head.text(), "");
    const adminWithout = await fetch(`${cloud.admin.baseUrl}/metrics`);
    assert.equal(adminWithout.status, 401, "the admin API's /metrics still wants the token");
  });

  it("moves each figure by exactly what real traffic did", async () => {
    const sizes = [1, 4096, 65_536, 300_000];
    const total = sizes.reduce((a, b) => a + b, 0);
    const before = await scrape();

    for (const n of sizes) {
      const s = track(await socksConnect(cloud.ports.socks, client, "echo.corp", 7));
      const back = readAll(s);
      s.end(Buffer.alloc(n, 0x42));
      assert.equal((await back).length, n);
    }
    const denied = await socksReply(cloud.ports.socks, client, "echo.corp", 8);
    track(denied.socket);
    assert.equal(denied.reply, 0x02);
    const wrong = await socksReply(cloud.ports.socks, { ...client, password: "not-it" }, "echo.corp", 7);
    track(wrong.socket);
    assert.equal(wrong.reply, "auth-failed");
    assert.equal(await helloOnce(cloud.ports.tunnel, `upa_${"W".repeat(32)}`), 4003);
    const badAdmin = await fetch(`${cloud.admin.baseUrl}/v1/agents`, {
      headers: { authorization: "Bearer not-the-admin-token-0123456789" },
    });
    assert.equal(badAdmin.status, 401);

    const later = await waitFor(
      async () => {
        const m = await scrape();
        const closed = delta(before, m)("underpass_connection_duration_seconds_count") === sizes.length;
        // and the tunnel's latest round trip is in, whenever its next ping came
        const rtt = m.value("underpass_tunnel_rtt_latest_seconds", { location: "default" }) !== undefined;
        return closed && rtt && m.value("underpass_connections") === 0 ? m : null;
      },
      { timeoutMs: 30_000, what: "every connection closed and counted, and a round trip measured" },
    );
    const d = delta(before, later);
    const here = { location: "default" };
    assert.equal(d("underpass_socks_requests_total", { reply: "0", ...here }), sizes.length);
    assert.equal(d("underpass_socks_requests_total", { reply: "2", ...here }), 1);
    assert.equal(d("underpass_socks_replies_total", { reply: "0" }), sizes.length);
    assert.equal(d("underpass_socks_replies_total", { reply: "2" }), 1);
    assert.equal(d("underpass_socks_handshake_seconds_count"), sizes.length + 1, "the denied one was read");
    assert.equal(d("underpass_socks_open_seconds_count"), sizes.length);
    assert.equal(d("underpass_agent_dial_seconds_count", { kind: "connect", outcome: "ok" }), sizes.length);
    assert.equal(d("underpass_agent_dial_seconds_count", { kind: "connect", outcome: "error" }), 0);
    for (const direction of ["up", "down"]) {
      assert.equal(d("underpass_location_bytes_total", { direction, ...here }), total, direction);
      assert.equal(d("underpass_bytes_total", { direction }), total, direction);
    }
    for (const kind of ["socks", "admin", "agent"]) {
      assert.equal(d("underpass_auth_failures_total", { kind }), 1, kind);
    }
    assert.equal(d("underpass_tunnels_rejected_total"), 1);
    assert.equal(d("underpass_tunnels_accepted_total"), 0);
    assert.equal(later.value("underpass_tunnels"), 1);
    assert.equal(later.value("underpass_agents_connected", here), 1);
    assert.equal(later.value("underpass_location_tunnels", here), 1);
    const rtt = later.value("underpass_tunnel_rtt_latest_seconds", here);
    assert.ok(rtt !== undefined && rtt >= 0 && rtt < 5, `latest round trip ${rtt}`);
    assert.ok(d("underpass_tunnel_rtt_seconds_count") >= 0);
  });

  it("counts FTP's decisions with vsftpd: a 227 rewrite, a 229, a bounce refused, an active-mode dial", async () => {
    const before = await scrape();
    const control = track(await socksConnect(cloud.ports.socks, client, FTP_HOST, 21));
    await loginAnonymously(control);
    control.write("PASV\r\n");
    const pasv = await readReply(control, /^227 /);
    assert.match(pasv, /\(127,0,0,1,\d+,\d+\)/, "the relay's address, never the NAT'ed one");
    control.write("EPSV\r\n");
    await readReply(control, /^229 /);
    control.write("PORT 10,9,9,9,200,10\r\n");
    await readReply(control, /^500 PORT refused/);

    const listener = createServer();
    listener.listen(0, "127.0.0.1");
    await once(listener, "listening");
    try {
      const port = (listener.address() as { port: number }).port;
      const listed = new Promise<Buffer>((resolve) =>
        listener.once("connection", (s: Socket) => resolve(readAll(s))),
      );
      control.write(`PORT 127,0,0,1,${port >> 8},${port & 0xff}\r\n`);
      await readReply(control, /^200 /);
      // read the control channel from before LIST: its 150 and 226 may arrive while the data flows
      const sent = readReply(control, /^226 /);
      control.write("LIST\r\n");
      await listed;
      await sent;
    } finally {
      listener.close();
    }
    control.end("QUIT\r\n");

    const later = await waitFor(
      async () => {
        const m = await scrape();
        return delta(before, m)("underpass_ftp_active_dials_total", { outcome: "connected" }) === 1
          ? m
          : null;
      },
      { timeoutMs: 10_000, what: "the active-mode dial counted" },
    );
    const d = delta(before, later);
    assert.equal(d("underpass_ftp_passive_rewrites_total", { reply: "227" }), 1);
    assert.equal(d("underpass_ftp_passive_rewrites_total", { reply: "229" }), 1);
    assert.equal(d("underpass_ftp_bounces_refused_total"), 1);
    assert.equal(d("underpass_ftp_active_dials_total", { outcome: "failed" }), 0);
    assert.equal(d("underpass_agent_dial_seconds_count", { kind: "bind", outcome: "ok" }), 1);
    assert.equal(d("underpass_socks_requests_total", { reply: "0", location: "default" }), 1, "the control");
  });
});
