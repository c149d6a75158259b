// Figures of the relay's bounds against hostile peers, on loopback (README: Security).
// Usage: node scripts/measure-bounds.mjs <preauth|auth|buffers> [dist directory, default ./dist]
//
//   preauth  one source opens N silent connections to each port (SOCKS, tunnel, admin): the
//            relay's descriptors at the peak and 3 s later, and whether a second source
//            (127.0.0.2) still gets a SOCKS CONNECT through
//   auth     a loop of wrong RFC 1929 passwords from one source for 5 s, each waiting for its
//            answer, and 64 such loops at once: attempts per second; the right password's
//            answer time meanwhile
//   buffers  a relay in a child process, an agent, a target that streams without end, and
//            clients that never read: the relay's RSS before and after, and whether another
//            client still gets its bytes
//
// The relay runs from the given build, so the same script measures a build without the
// bounds (their settings are ignored there).
import { spawn } from "node:child_process";
import { once } from "node:events";
import { mkdtempSync, readdirSync, readFileSync } from "node:fs";
import { connect, createServer } from "node:net";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { pathToFileURL } from "node:url";

const [what = "preauth", distArg = "dist"] = process.argv.slice(2);
const dist = resolve(distArg);
const load = (p) => import(pathToFileURL(join(dist, p)).href);
const { startRelay } = await load("cloud/relay.js");
const { startAgent } = await load("agent/agent.js");
const { allowAll } = await load("agent/policy.js");
const { silentLogger } = await load("shared/logger.js");
const TOKEN = "measure-admin-token-0123456789";

const fds = () => readdirSync("/proc/self/fd").length;
const rssOf = (pid) => {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
  return m ? Number(m[1]) / 1024 : Number.NaN;
};
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function relayInProcess(bounds = {}) {
  return startRelay({
    tunnelListen: { host: "127.0.0.1", port: 0 },
    socksListen: { host: "127.0.0.1", port: 0 },
    adminListen: { host: "127.0.0.1", port: 0 },
    dataDir: mkdtempSync(join(tmpdir(), "underpass-measure-")),
    adminToken: TOKEN,
    logger: silentLogger(),
    audit: silentLogger(),
    bounds,
  });
}

async function api(relay, method, url, body) {
  const res = await relay.admin.inject({
    method,
    url,
    headers: { authorization: `Bearer ${TOKEN}` },
    ...(body ? { payload: body } : {}),
  });
  return JSON.parse(res.body);
}

/** Children (one per port) that open `n` silent connections from 127.0.0.1 each and hold them. */
function flood(ports, n) {
  const children = ports.map((p) => floodOne([p], n));
  return {
    kill: () => {
      for (const c of children) c.child.kill();
    },
    state: () =>
      children.reduce((a, c) => ({ open: a.open + c.state().open, closed: a.closed + c.state().closed }), {
        open: 0,
        closed: 0,
      }),
  };
}

function floodOne(ports, n) {
  const code = `
    const net = require("node:net");
    const [ports, n] = JSON.parse(process.argv[1]);
    let open = 0, closed = 0;
    let issued = 0;
    const batch = () => {
      for (const port of ports) for (let i = 0; i < 500 && issued < n; i++, issued++) {
        const s = net.connect({ port, host: "127.0.0.1", localAddress: "127.0.0.1" });
        s.on("connect", () => { open++; });
        s.on("error", () => {});
        s.on("close", () => { closed++; });
      }
      if (issued < n) setImmediate(batch);
    };
    batch();
    setInterval(() => process.stdout.write(JSON.stringify({ open, closed }) + "\\n"), 200);
  `;
  const child = spawn(process.execPath, ["-e", code, JSON.stringify([ports, n])], {
    stdio: ["ignore", "pipe", "inherit"],
  });
  let last = { open: 0, closed: 0 };
  let text = "";
  child.stdout.setEncoding("utf8").on("data", (d) => {
    text += d;
    const lines = text.split("\n");
    text = lines.pop() ?? "";
    if (lines.length > 0) last = JSON.parse(lines[lines.length - 1]);
  });
  return { child, state: () => last };
}

/** A raw SOCKS5 CONNECT by name, with credentials, from `localAddress`; resolves with REP and the socket. */
function socksConnect(port, creds, host, dport, localAddress = "127.0.0.1") {
  return new Promise((resolveP, reject) => {
    const s = connect({ port, host: "127.0.0.1", localAddress });
    let buf = Buffer.alloc(0);
    let stage = 0;
    s.on("error", reject);
    s.on("close", () => resolveP({ reply: stage === 1 ? "auth-failed" : "closed", socket: s }));
    s.on("connect", () => s.write(Buffer.from([5, 1, 2])));
    s.on("data", (c) => {
      buf = Buffer.concat([buf, c]);
      if (stage === 0 && buf.length >= 2) {
        buf = buf.subarray(2);
        const u = Buffer.from(creds.username);
        const p = Buffer.from(creds.password);
        s.write(Buffer.concat([Buffer.from([1, u.length]), u, Buffer.from([p.length]), p]));
        stage = 1;
      }
      if (stage === 1 && buf.length >= 2) {
        const ok = buf[1] === 0;
        buf = buf.subarray(2);
        if (!ok) return resolveP({ reply: "auth-failed", socket: s });
        const name = Buffer.from(host);
        s.write(
          Buffer.concat([
            Buffer.from([5, 1, 0, 3, name.length]),
            name,
            Buffer.from([dport >> 8, dport & 255]),
          ]),
        );
        stage = 2;
      }
      if (stage === 2 && buf.length >= 2) {
        stage = 3;
        s.removeAllListeners("data");
        resolveP({ reply: buf[1], socket: s });
      }
    });
  });
}

async function preauth() {
  const relay = await relayInProcess();
  const n = Number(process.env.FLOOD ?? 5000);
  const ports = [relay.socksAddress.port, relay.tunnelAddress.port, relay.adminAddress.port];
  // the agent and the second client's mapping are up before the flood
  const client = await api(relay, "POST", "/v1/clients", { name: "second" });
  const echo = createServer((s) => s.pipe(s)).listen(0, "127.0.0.1");
  await once(echo, "listening");
  await api(relay, "POST", "/v1/mappings", {
    virtualHost: "echo.corp",
    virtualPort: 7,
    internalHost: "127.0.0.1",
    internalPort: echo.address().port,
  });
  const agentRec = await api(relay, "POST", "/v1/agents", { name: "a" });
  const agent = startAgent({
    relayUrl: `ws://127.0.0.1:${relay.tunnelAddress.port}/tunnel`,
    token: agentRec.token,
    policy: allowAll(),
    logger: silentLogger(),
  });
  await agent.waitUp(1, 8000);
  const base = fds();
  const f = flood(ports, n);
  let peak = base;
  // until every silent connection is up or refused, at most 20 s
  for (let t = 0; t < 100; t++) {
    await sleep(200);
    peak = Math.max(peak, fds());
    const st = f.state();
    if (st.open + st.closed >= 3 * n && t > 10) break;
  }
  const atPeak = f.state();
  const t0 = performance.now();
  const second = await Promise.race([
    socksConnect(relay.socksAddress.port, client, "echo.corp", 7, "127.0.0.2"),
    sleep(8000).then(() => ({ reply: "no answer within 8 s" })),
  ]);
  const secondMs = performance.now() - t0;
  second.socket?.destroy();
  await sleep(3000);
  const later = fds();
  const afterwards = f.state();
  console.log(
    JSON.stringify(
      {
        build: dist,
        silentPerPort: n,
        ports: 3,
        relayDescriptorsBase: base,
        relayDescriptorsPeak: peak,
        relayDescriptorsAfter3s: later,
        floodAtPeak: atPeak,
        floodAfter3sMore: afterwards,
        secondSourceReply: second.reply,
        secondSourceMs: Math.round(secondMs),
      },
      null,
      2,
    ),
  );
  f.kill();
  await agent.close();
  echo.close();
  await relay.close();
}

async function auth() {
  const relay = await relayInProcess();
  const client = await api(relay, "POST", "/v1/clients", { name: "victim" });
  const wrong = { username: client.username, password: "wrong-password-000000" };
  const port = relay.socksAddress.port;
  const loop = async (until) => {
    let n = 0;
    while (performance.now() < until) {
      const r = await socksConnect(port, wrong, "x", 1).catch(() => ({ reply: "error" }));
      r.socket?.destroy();
      n++;
    }
    return n;
  };
  const seconds = 5;
  const one = await loop(performance.now() + seconds * 1000);
  const rightMs = [];
  const right = (async () => {
    const until = performance.now() + seconds * 1000;
    while (performance.now() < until) {
      const t0 = performance.now();
      const r = await socksConnect(port, client, "x", 1);
      rightMs.push({ ms: Math.round((performance.now() - t0) * 10) / 10, reply: r.reply });
      r.socket.destroy();
      await sleep(500);
    }
  })();
  const many = (
    await Promise.all(Array.from({ length: 64 }, () => loop(performance.now() + seconds * 1000)))
  ).reduce((a, b) => a + b, 0);
  await right;
  console.log(
    JSON.stringify(
      {
        build: dist,
        sequentialAttemptsPerSecond: Math.round(one / seconds),
        parallel64AttemptsPerSecond: Math.round(many / seconds),
        rightPasswordMeanwhile: rightMs,
      },
      null,
      2,
    ),
  );
  await relay.close();
}

async function buffers() {
  const dataDir = mkdtempSync(join(tmpdir(), "underpass-measure-"));
  const child = spawn(process.execPath, [join(dist, "cli/main.js"), "cloud"], {
    env: {
      ...process.env,
      UNDERPASS_TUNNEL_LISTEN: "127.0.0.1:0",
      UNDERPASS_SOCKS_LISTEN: "127.0.0.1:0",
      UNDERPASS_ADMIN_LISTEN: "127.0.0.1:0",
      UNDERPASS_DATA_DIR: dataDir,
      UNDERPASS_ADMIN_TOKEN: TOKEN,
      UNDERPASS_LOG_LEVEL: "info",
    },
    stdio: ["ignore", "ignore", "pipe"],
  });
  const addresses = await new Promise((resolveP, reject) => {
    let text = "";
    child.stderr.setEncoding("utf8").on("data", (d) => {
      text += d;
      for (const line of text.split("\n")) {
        if (!line.includes("relay listening")) continue;
        resolveP(JSON.parse(line));
        return;
      }
    });
    child.once("exit", () => reject(new Error(`relay exited: ${text}`)));
  });
  child.stderr.resume();
  const port = (a) => Number(a.slice(a.lastIndexOf(":") + 1));
  const admin = `http://127.0.0.1:${port(addresses.admin)}`;
  const call = async (method, path, body) => {
    const res = await fetch(admin + path, {
      method,
      headers: { authorization: `Bearer ${TOKEN}`, "content-type": "application/json" },
      body: body ? JSON.stringify(body) : undefined,
    });
    return res.json();
  };
  const chunk = Buffer.alloc(256 * 1024, 7);
  const target = createServer((s) => {
    s.on("error", () => {});
    const pump = () => {
      while (s.write(chunk)) {
        /* fill */
      }
    };
    s.on("drain", pump);
    pump();
  }).listen(0, "127.0.0.1");
  await once(target, "listening");
  await call("POST", "/v1/mappings", {
    virtualHost: "stream.corp",
    virtualPort: 9,
    internalHost: "127.0.0.1",
    internalPort: target.address().port,
  });
  const agentRec = await call("POST", "/v1/agents", { name: "a" });
  const hog = await call("POST", "/v1/clients", { name: "hog" });
  const other = await call("POST", "/v1/clients", { name: "other" });
  const agent = startAgent({
    relayUrl: `ws://127.0.0.1:${port(addresses.tunnel)}/tunnel`,
    token: agentRec.token,
    policy: allowAll(),
    logger: silentLogger(),
  });
  await agent.waitUp(1, 10_000);
  const socks = port(addresses.socks);
  await sleep(500);
  const before = rssOf(child.pid);
  const n = Number(process.env.NON_READERS ?? 500);
  const held = [];
  const replies = {};
  for (let i = 0; i < n; i++) {
    const r = await socksConnect(socks, hog, "stream.corp", 9).catch(() => ({ reply: "error" }));
    replies[r.reply] = (replies[r.reply] ?? 0) + 1;
    if (r.socket) {
      r.socket.pause();
      held.push(r.socket);
    }
  }
  let peak = rssOf(child.pid);
  for (let t = 0; t < 20; t++) {
    await sleep(250);
    peak = Math.max(peak, rssOf(child.pid));
  }
  const o = await socksConnect(socks, other, "stream.corp", 9);
  let got = 0;
  const t0 = performance.now();
  await new Promise((r) => {
    o.socket?.on("data", (d) => {
      got += d.length;
      if (got >= 8 * 1024 * 1024) r();
    });
    setTimeout(r, 10_000);
  });
  console.log(
    JSON.stringify(
      {
        build: dist,
        nonReadingConnections: n,
        replies,
        relayRssBeforeMiB: Math.round(before),
        relayRssPeakMiB: Math.round(peak),
        otherClientReply: o.reply,
        otherClientMiB: Math.round(got / 1048576),
        otherClientMs: Math.round(performance.now() - t0),
      },
      null,
      2,
    ),
  );
  for (const s of held) s.destroy();
  o.socket?.destroy();
  await agent.close();
  target.close();
  child.kill();
}

await { preauth, auth, buffers }[what]();
process.exit(0);
