/**
 * The stock clients of ftp-stock-clients.test.ts, unmodified, against vsftpd and proftpd (both
 * announcing an unroutable PASV address, as behind NAT) through ONE FTP-aware mapping per
 * server (`protocol: "ftp"`, the control port) and no passive range: the relay opens each data
 * port the server announces for the announcing client, once, and serves active mode by having
 * the agent listen on premises and carrying the data back to the client's own address (for
 * contrast, the same servers also sit behind plain mappings, where active mode bypasses the
 * relay). Then FTPS, whose control channel the relay cannot read: an FTP-aware control mapping
 * works beside a plain passive-range mapping, and without the range the data connection is
 * refused.
 * Every byte is checked by SHA-256; what the clients asked and what the relay did is read back
 * from the relay's log, and the bytes it carried from its metrics.
 */
import assert from "node:assert/strict";
import { copyFile, mkdtemp, rm, stat } from "node:fs/promises";
import type { Socket } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, beforeEach, describe, test } from "node:test";
import {
  ChildRegistry,
  type CurlFtpOptions,
  curlFtp,
  formatResult,
  lftpProxychains,
  type SpawnResult,
} from "../helpers/clients.js";
import {
  curlActiveSocksify,
  curlFtps,
  ftplibProxychains,
  ftplibSocksify,
  ftpsUrl,
  javaFtpClasses,
  javaFtpUrl,
  lftpFtps,
  socksProxyOf,
} from "../helpers/ftp-clients.js";
import { loginAnonymously, readReply } from "../helpers/ftp-dialogue.js";
import {
  addFtpAwareMapping,
  addPassiveRangeMapping,
  addPlainFtpMappings,
  startProftpd,
  UNROUTABLE_PASV_ADDRESS,
} from "../helpers/ftp-servers.js";
import { freePortRange, type PortSpan } from "../helpers/ports.js";
import { assertCarried, captureRelayLog, type FtpControlEvent, type RelayLog } from "../helpers/relay-log.js";
import { ADMIN_TOKEN, type Stack, socksConnect, socksReply, startStack } from "../helpers/stack.js";
import { makeSelfSignedCert, type SelfSignedCert } from "../helpers/tls.js";
import { makeFile, sha256File, startVsftpd, type VsftpdServer } from "../helpers/vsftpd.js";

const MiB = 1024 * 1024;
const CONTROL = 21;
/** SOCKS5 BIND (RFC 1928 §4, CMD). */
const SOCKS5_BIND = 0x02;
/** SOCKS5 reply "connection not allowed by ruleset". */
const NOT_ALLOWED = 0x02;
/** CURLE_FTP_PORT_FAILED: the server (here the relay) refused PORT/EPRT. */
const CURLE_FTP_PORT_FAILED = 30;
/** CURLE_PROXY: a SOCKS5 request failed (curl ≥ 7.73). */
const CURLE_PROXY = 97;

/** What the tests need of either server. */
interface Server {
  readonly name: "vsftpd" | "proftpd";
  /** The virtual host of its FTP-aware mapping. */
  readonly vhost: string;
  /** The virtual host of its plain mappings (control and passive range), for contrast. */
  readonly plainVhost: string;
  readonly host: string;
  readonly port: number;
  readonly pasvPorts: PortSpan;
  readonly root: string;
  readonly uploadDir: string;
  readLog(): Promise<string>;
  close(): Promise<void>;
}

/** Bytes the relay carried, each way, from its own metrics (`underpass_bytes_total`). */
async function bytesCarried(stack: Stack): Promise<{ up: number; down: number }> {
  const res = await stack.relay.admin.inject({
    method: "GET",
    url: "/metrics",
    headers: { authorization: `Bearer ${ADMIN_TOKEN}` },
  });
  assert.equal(res.statusCode, 200, res.body);
  const read = (direction: string): number => {
    const m = new RegExp(`^underpass_bytes_total\\{direction="${direction}"\\} (\\d+)$`, "m").exec(res.body);
    assert.ok(m, res.body);
    return Number(m[1]);
  };
  return { up: read("up"), down: read("down") };
}

/** A PORT (`h1,h2,h3,h4,p1,p2`) or EPRT (`|1|host|port|`) naming the IPv4 `host:port`. */
function dataCommandNaming(hostPort: string): RegExp {
  const [host, port] = hostPort.split(":") as [string, string];
  const p = Number(port);
  const dotted = host.replaceAll(".", "\\.");
  return new RegExp(
    `PORT ${host.split(".").join(",")},${p >> 8},${p & 0xff}(?!\\d)|EPRT \\|1\\|${dotted}\\|${p}\\|`,
  );
}

/** `host:port` of the PORT arguments in `text` (`PORT 127,0,0,1,p1,p2`). */
function portArguments(text: string, prefix: string): string[] {
  const re = new RegExp(`${prefix}PORT (\\d+),(\\d+),(\\d+),(\\d+),(\\d+),(\\d+)`, "g");
  return [...text.matchAll(re)].map((m) => `${m.slice(1, 5).join(".")}:${Number(m[5]) * 256 + Number(m[6])}`);
}

describe("stock clients through one FTP-aware control mapping, no passive range (vsftpd and proftpd announcing 10.255.255.1)", () => {
  const children = new ChildRegistry();
  const sockets: Socket[] = [];
  let log: RelayLog;
  let stack: Stack;
  let work: string;
  const servers: Server[] = [];
  let big: { path: string; sha256: string };
  let upload: { path: string; sha256: string };

  const why = (r: SpawnResult) => `${formatResult(r)}\n--- relay\n${log.describe()}`;
  /** The SOCKS requests of the last run as [kind, destination]. */
  const requests = () => log.socksEvents().map((e) => [e.kind, e.destination]);
  const ftpEvents = <K extends FtpControlEvent["kind"]>(kind: K) =>
    log.ftpControlEvents().filter((e): e is Extract<FtpControlEvent, { kind: K }> => e.kind === kind);
  const inRange = (s: Server, port: number) => port >= s.pasvPorts.start && port <= s.pasvPorts.end;

  /**
   * Every SOCKS request of the last run: the control CONNECT by name, then `data` CONNECTs to
   * `dataHost` granted as ports the server had just announced (`ftp-data`), in its range.
   */
  function assertFtpAware(s: Server, r: SpawnResult, data: number, dataHost = s.vhost): void {
    assertCarried(
      log,
      {
        host: s.vhost,
        controlPort: CONTROL,
        minData: data,
        maxData: data,
        dataKind: "ftp-data",
        dataHost,
        dataPorts: s.pasvPorts,
      },
      formatResult(r),
    );
    const announced = ftpEvents("announced").map((e) => e.port);
    for (const e of log.socksEvents().slice(1)) {
      assert.ok(announced.includes(Number(e.destination?.split(":")[1])), why(r));
    }
  }

  /**
   * Active mode through the relay: the client's PORT/EPRT named `clientAddresses` (its own),
   * the agent listened on premises for each, the server was told the agent's listener instead,
   * and the relay carried at least `down`/`up` bytes since `before` — over no SOCKS request
   * but the control connection's.
   */
  async function assertActiveThroughRelay(
    s: Server,
    r: SpawnResult,
    clientAddresses: string[],
    before: { up: number; down: number },
    carried: { down: number; up: number },
  ): Promise<void> {
    const active = ftpEvents("active");
    assert.deepEqual(
      active.map((e) => e.client),
      clientAddresses,
      why(r),
    );
    const serverLog = await s.readLog();
    for (const e of active) {
      assert.match(
        serverLog,
        dataCommandNaming(e.listen),
        `the server was told the agent's listener\n${why(r)}`,
      );
      assert.notEqual(e.listen, e.client, why(r));
    }
    assert.deepEqual(requests(), [["connect", `${s.vhost}:${CONTROL}`]], why(r));
    assert.equal(ftpEvents("dial-back-failed").length, 0, why(r));
    const now = await bytesCarried(stack);
    assert.ok(now.down - before.down >= carried.down, `down ${now.down - before.down}\n${why(r)}`);
    assert.ok(now.up - before.up >= carried.up, `up ${now.up - before.up}\n${why(r)}`);
  }

  before(async () => {
    log = captureRelayLog();
    stack = await startStack({ relay: { logger: log.logger, audit: log.audit } });
    work = await mkdtemp(join(tmpdir(), "underpass-ftp-aware-clients-"));
    const [vsftpd, proftpd] = await Promise.all([
      freePortRange(10).then((pasvPorts) =>
        startVsftpd({ pasvPorts, pasvAddress: UNROUTABLE_PASV_ADDRESS, registry: children }),
      ),
      freePortRange(10).then((pasvPorts) =>
        startProftpd({ pasvPorts, pasvAddress: UNROUTABLE_PASV_ADDRESS, registry: children }),
      ),
      javaFtpClasses(children), // compile once, before the first test's clock starts
    ]);
    servers.push({
      name: "vsftpd",
      vhost: "vsftpd.aware.test",
      plainVhost: "vsftpd.plain.test",
      ...pick(vsftpd),
    });
    servers.push({
      name: "proftpd",
      vhost: "proftpd.aware.test",
      plainVhost: "proftpd.plain.test",
      ...pick(proftpd),
    });
    big = await makeFile(work, "sixteen-mib.bin", 16 * MiB);
    upload = await makeFile(work, "upload-eight.bin", 8 * MiB);
    for (const s of servers) {
      await addFtpAwareMapping(stack, s, s.vhost, CONTROL);
      await addPlainFtpMappings(stack, s, s.plainVhost, CONTROL);
      await copyFile(big.path, join(s.root, "sixteen-mib.bin"));
    }
  });

  beforeEach(() => log.clear());

  after(async () => {
    for (const s of sockets) s.destroy();
    await children.killAll();
    await Promise.all(servers.map((s) => s.close()));
    await stack?.close();
    if (work) await rm(work, { recursive: true, force: true });
  });

  const curl = (o: Omit<CurlFtpOptions, "socks" | "timeoutMs" | "registry">) =>
    curlFtp({
      socks: { ...socksProxyOf(stack), remoteDns: true },
      timeoutMs: 60_000,
      registry: children,
      ...o,
    });

  for (const index of [0, 1]) {
    const name = index === 0 ? "vsftpd" : "proftpd";
    const server = () => servers[index]!;

    test(`${name}: JDK 17 ftp:// URL: 16 MiB down, 8 MiB up, each data CONNECT the port just announced in 229, SHA-256 ok`, async () => {
      const s = server();
      const socks = socksProxyOf(stack);
      const out = join(work, `jdk-${name}.bin`);
      const down = await javaFtpUrl({
        direction: "get",
        url: `ftp://${s.vhost}:${CONTROL}/sixteen-mib.bin`,
        file: out,
        socks,
        timeoutMs: 60_000,
        registry: children,
      });
      assert.equal(down.code, 0, why(down));
      assert.equal(await sha256File(out), big.sha256);
      assertFtpAware(s, down, 1);

      log.clear();
      const up = await javaFtpUrl({
        direction: "put",
        url: `ftp://${s.vhost}:${CONTROL}/upload/jdk-${name}.bin`,
        file: upload.path,
        socks,
        timeoutMs: 60_000,
        registry: children,
      });
      assert.equal(up.code, 0, why(up));
      assert.equal(await sha256File(join(s.uploadDir, `jdk-${name}.bin`)), upload.sha256);
      assertFtpAware(s, up, 1);
    });

    test(`${name}: ftplib PASV under proxychains4: its data CONNECTs to the proxy's own IP and the announced port are accepted — list, 16 MiB down, 8 MiB up, SHA-256 ok`, async () => {
      const s = server();
      const out = join(work, `ftplib-pc-${name}.bin`);
      const r = await ftplibProxychains({
        host: s.vhost,
        port: CONTROL,
        actions: [
          { op: "list" },
          { op: "get", remote: "sixteen-mib.bin", local: out },
          { op: "put", local: upload.path, remote: `upload/ftplib-pc-${name}.bin` },
        ],
        socks: socksProxyOf(stack),
        timeoutMs: 60_000,
        registry: children,
      });
      assert.equal(r.code, 0, why(r));
      assert.match(r.stdout, /^list .*sixteen-mib\.bin/m, why(r));
      assert.equal(await sha256File(out), big.sha256);
      assert.equal(await sha256File(join(s.uploadDir, `ftplib-pc-${name}.bin`)), upload.sha256);
      // the relay rewrote the 227 to its own address; ftplib dials the control peer anyway
      assert.match(r.stdout, /\*resp\* '227 Entering Passive Mode \(127,0,0,1,\d+,\d+\)/, why(r));
      assert.doesNotMatch(r.stdout, /10,255,255,1/, why(r));
      assertFtpAware(s, r, 3, "127.0.0.1");
    });

    test(`${name}: ftplib active (PORT 127,0,0,1 = its own address) under proxychains4: the agent listens, the relay carries the data back — 16 MiB down, 8 MiB up, SHA-256 ok`, async () => {
      const s = server();
      const out = join(work, `ftplib-pc-active-${name}.bin`);
      const before = await bytesCarried(stack);
      const r = await ftplibProxychains({
        host: s.vhost,
        port: CONTROL,
        active: true,
        actions: [
          { op: "get", remote: "sixteen-mib.bin", local: out },
          { op: "put", local: upload.path, remote: `upload/ftplib-pc-active-${name}.bin` },
        ],
        socks: socksProxyOf(stack),
        timeoutMs: 60_000,
        registry: children,
      });
      assert.equal(r.code, 0, why(r));
      assert.equal(await sha256File(out), big.sha256);
      assert.equal(await sha256File(join(s.uploadDir, `ftplib-pc-active-${name}.bin`)), upload.sha256);
      const sent = portArguments(r.stdout, "\\*cmd\\* '");
      assert.equal(sent.length, 2, why(r));
      for (const a of sent) assert.match(a, /^127\.0\.0\.1:/, why(r));
      await assertActiveThroughRelay(s, r, sent, before, { down: 16 * MiB, up: 8 * MiB });
    });

    test(`${name}: for contrast, PLAIN mappings in active mode (curl -P -, lftp under proxychains4): SHA-256 ok only because the server dials the client's own address directly — the relay carries the control connections alone`, async () => {
      const s = server();
      const viaCurl = join(work, `plain-curl-active-${name}.bin`);
      const viaLftp = join(work, `plain-lftp-active-${name}.bin`);
      const before = await bytesCarried(stack);
      const c = await curl({
        url: `ftp://${s.plainVhost}:${CONTROL}/sixteen-mib.bin`,
        output: viaCurl,
        extraArgs: ["-v", "-P", "-"],
      });
      assert.equal(c.code, 0, why(c));
      assert.equal(await sha256File(viaCurl), big.sha256);
      assert.match(c.stderr, /> EPRT \|1\|127\.0\.0\.1\|\d+\|/, why(c));
      const l = await lftpProxychains({
        socks: socksProxyOf(stack),
        settings: { "ftp:passive-mode": "off" },
        script: `open ftp://${s.plainVhost}:${CONTROL}\nget sixteen-mib.bin -o ${viaLftp}`,
        timeoutMs: 60_000,
        registry: children,
      });
      assert.equal(l.code, 0, why(l));
      assert.equal(await sha256File(viaLftp), big.sha256);
      assert.deepEqual(
        requests(),
        [
          ["connect", `${s.plainVhost}:${CONTROL}`],
          ["connect", `${s.plainVhost}:${CONTROL}`],
        ],
        why(l),
      );
      assert.deepEqual(log.ftpControlEvents(), [], why(l));
      const now = await bytesCarried(stack);
      assert.ok(now.down - before.down < MiB, `the relay carried ${now.down - before.down} bytes down`);
    });

    test(`${name}: ftplib PASV under socksify: data CONNECTs by name to the announced ports — list, 16 MiB down, 8 MiB up, SHA-256 ok`, async () => {
      const s = server();
      const out = join(work, `ftplib-dante-${name}.bin`);
      const r = await ftplibSocksify({
        host: s.vhost,
        port: CONTROL,
        actions: [
          { op: "list" },
          { op: "get", remote: "sixteen-mib.bin", local: out },
          { op: "put", local: upload.path, remote: `upload/ftplib-dante-${name}.bin` },
        ],
        socks: socksProxyOf(stack),
        timeoutMs: 60_000,
        registry: children,
      });
      assert.equal(r.code, 0, why(r));
      assert.match(r.stdout, /^list .*sixteen-mib\.bin/m, why(r));
      assert.equal(await sha256File(out), big.sha256);
      assert.equal(await sha256File(join(s.uploadDir, `ftplib-dante-${name}.bin`)), upload.sha256);
      assertFtpAware(s, r, 3);
    });

    test(`${name}: ftplib active under socksify: BIND granted, PORT names the agent's listener and passes unchanged, but Dante 1.4.2 does not hook accept4(), so ftplib's accept fails (EINVAL)`, async () => {
      const s = server();
      const r = await ftplibSocksify({
        host: s.vhost,
        port: CONTROL,
        active: true,
        actions: [
          { op: "get", remote: "sixteen-mib.bin", local: join(work, `ftplib-dante-active-${name}.bin`) },
        ],
        socks: socksProxyOf(stack),
        timeoutMs: 30_000,
        registry: children,
      });
      // ftplib exits 1; Dante 1.4.2 then often aborts on its own internal check (SIGABRT).
      assert.ok(r.code === 1 || r.signal === "SIGABRT", why(r));
      assert.equal(r.timedOut, false, why(r));
      assert.match(r.stderr, /Errno 22|Invalid argument/, why(r));
      const events = log.socksEvents();
      assert.deepEqual(
        events.map((e) => e.kind),
        ["connect", "bind"],
        why(r),
      );
      const listen = String(events[1]?.destination);
      assert.deepEqual(portArguments(r.stdout, "\\*cmd\\* '"), [listen], why(r));
      assert.match(r.stdout, /\*resp\* '200 /, why(r));
      assert.match(await s.readLog(), dataCommandNaming(listen), "the server got the PORT as sent");
      assert.deepEqual(ftpEvents("active"), [], "the relay had no listener of its own opened");
    });

    test(`${name}: curl --ftp-port - under socksify: SOCKS5 BIND, PORT names the agent's listener and passes unchanged, 16 MiB down, SHA-256 ok`, async () => {
      const s = server();
      const out = join(work, `curl-dante-active-${name}.bin`);
      const r = await curlActiveSocksify({
        url: `ftp://${s.vhost}:${CONTROL}/sixteen-mib.bin`,
        output: out,
        socks: socksProxyOf(stack),
        timeoutMs: 60_000,
        registry: children,
      });
      assert.equal(r.code, 0, why(r));
      assert.equal(await sha256File(out), big.sha256);
      const events = log.socksEvents();
      assert.deepEqual(
        events.map((e) => [e.kind, e.kind === "connect" ? e.destination : "bind"]),
        [
          ["connect", `${s.vhost}:${CONTROL}`],
          ["bind", "bind"],
        ],
        why(r),
      );
      const listen = String(events[1]?.destination);
      assert.deepEqual(portArguments(r.stderr, "> "), [listen], why(r));
      assert.match(await s.readLog(), dataCommandNaming(listen), "the server got the PORT as sent");
      assert.deepEqual(ftpEvents("active"), [], "the relay had no listener of its own opened");
    });
  }

  const proftpd = () => servers[1]!;

  for (const disableEpsv of [false, true]) {
    const mode = disableEpsv ? "PASV" : "EPSV";
    test(`proftpd: curl ${mode}: 16 MiB down, 8 MiB up, each data CONNECT by name to the port just announced, SHA-256 ok`, async () => {
      const s = proftpd();
      const out = join(work, `curl-${mode}.bin`);
      const down = await curl({
        url: `ftp://${s.vhost}:${CONTROL}/sixteen-mib.bin`,
        output: out,
        disableEpsv,
        extraArgs: ["-v", "--no-ftp-skip-pasv-ip"],
      });
      assert.equal(down.code, 0, why(down));
      assert.equal(await sha256File(out), big.sha256);
      if (disableEpsv) {
        // rewritten to the relay's own address; curl dials it, and the relay takes it back
        assert.match(down.stderr, /< 227 Entering Passive Mode \(127,0,0,1,\d+,\d+\)/, why(down));
        assert.doesNotMatch(down.stderr, /10,255,255,1/, why(down));
        assertFtpAware(s, down, 1, "127.0.0.1");
      } else {
        assert.match(down.stderr, /< 229 Entering Extended Passive Mode \(\|\|\|\d+\|\)/, why(down));
        assertFtpAware(s, down, 1);
      }

      log.clear();
      const up = await curl({
        url: `ftp://${s.vhost}:${CONTROL}/upload/curl-${mode}-up.bin`,
        upload: upload.path,
        disableEpsv,
      });
      assert.equal(up.code, 0, why(up));
      assert.equal(await sha256File(join(s.uploadDir, `curl-${mode}-up.bin`)), upload.sha256);
      assertFtpAware(s, up, 1);
    });
  }

  test("proftpd: curl -P - (EPRT down, PORT up): the agent listens, the relay carries the data back — 16 MiB down, 8 MiB up, SHA-256 ok", async () => {
    const s = proftpd();
    const out = join(work, "curl-active.bin");
    let before = await bytesCarried(stack);
    const down = await curl({
      url: `ftp://${s.vhost}:${CONTROL}/sixteen-mib.bin`,
      output: out,
      extraArgs: ["-v", "-P", "-"],
    });
    assert.equal(down.code, 0, why(down));
    assert.equal(await sha256File(out), big.sha256);
    const eprt = /> EPRT \|1\|(127\.0\.0\.1)\|(\d+)\|/.exec(down.stderr);
    assert.ok(eprt, why(down));
    await assertActiveThroughRelay(s, down, [`${eprt[1]}:${eprt[2]}`], before, { down: 16 * MiB, up: 0 });

    log.clear();
    before = await bytesCarried(stack);
    const up = await curl({
      url: `ftp://${s.vhost}:${CONTROL}/upload/curl-active-up.bin`,
      upload: upload.path,
      extraArgs: ["-v", "-P", "-", "--disable-eprt"],
    });
    assert.equal(up.code, 0, why(up));
    assert.equal(await sha256File(join(s.uploadDir, "curl-active-up.bin")), upload.sha256);
    const sent = portArguments(up.stderr, "> ");
    assert.equal(sent.length, 1, why(up));
    await assertActiveThroughRelay(s, up, sent, before, { down: 0, up: 8 * MiB });
  });

  for (const active of [false, true]) {
    const mode = active ? "active (PORT)" : "passive (PASV)";
    test(`proftpd: lftp under proxychains4, ${mode}: ls, 16 MiB down, 8 MiB up, SHA-256 ok`, async () => {
      const s = proftpd();
      const out = join(work, `lftp-${active}.bin`);
      const remote = `lftp-${active}-up.bin`;
      const before = await bytesCarried(stack);
      const r = await lftpProxychains({
        socks: socksProxyOf(stack),
        settings: { "ftp:passive-mode": active ? "off" : "on" },
        script: [
          `open ftp://${s.vhost}:${CONTROL}`,
          "ls",
          `get sixteen-mib.bin -o ${out}`,
          `put ${upload.path} -o upload/${remote}`,
        ].join("\n"),
        timeoutMs: 90_000,
        registry: children,
      });
      assert.equal(r.code, 0, why(r));
      assert.match(r.stdout, /sixteen-mib\.bin/, why(r));
      assert.equal(await sha256File(out), big.sha256);
      assert.equal(await sha256File(join(s.uploadDir, remote)), upload.sha256);
      if (active) {
        // ls, get and put: three PORTs naming lftp's own address
        const clients = ftpEvents("active").map((e) => e.client);
        assert.equal(clients.length, 3, why(r));
        for (const c of clients) assert.match(c, /^127\.0\.0\.1:\d+$/, why(r));
        await assertActiveThroughRelay(s, r, clients, before, { down: 16 * MiB, up: 8 * MiB });
      } else {
        // lftp's ftp:fix-pasv-address takes the control peer (proxychains' fake address for the
        // name) over the loopback address in the rewritten 227: data CONNECTs by name
        assertFtpAware(s, r, 3);
      }
    });
  }

  test("proftpd: a PORT or EPRT naming a third host (curl -P 127.0.0.5) is refused by the relay and never reaches the server", async () => {
    const s = proftpd();
    const out = join(work, "bounce.bin");
    const r = await curl({
      url: `ftp://${s.vhost}:${CONTROL}/sixteen-mib.bin`,
      output: out,
      extraArgs: ["-v", "-P", "127.0.0.5"],
    });
    assert.equal(r.code, CURLE_FTP_PORT_FAILED, why(r));
    // curl tries EPRT, then PORT: the relay answers both
    assert.match(r.stderr, /> EPRT \|1\|127\.0\.0\.5\|\d+\|/, why(r));
    assert.match(r.stderr, /< 500 EPRT refused: the data address must be your own \(127\.0\.0\.1\)/, why(r));
    assert.match(r.stderr, /> PORT 127,0,0,5,\d+,\d+/, why(r));
    assert.match(r.stderr, /< 500 PORT refused: the data address must be your own \(127\.0\.0\.1\)/, why(r));
    const refused = ftpEvents("bounce-refused");
    assert.equal(refused.length, 2, why(r));
    for (const e of refused) assert.match(e.named, /^127\.0\.0\.5:\d+$/, why(r));
    assert.doesNotMatch(await s.readLog(), /127,0,0,5|127\.0\.0\.5/);
    await assert.rejects(stat(out), "no output file");
    assert.deepEqual(requests(), [["connect", `${s.vhost}:${CONTROL}`]], why(r));
  });

  test("proftpd: an announced port is for the announcing client only (another client: 0x02), once, and no other port opens", async () => {
    const s = proftpd();
    const control = await socksConnect(stack.socksPort, stack.client, s.vhost, CONTROL);
    sockets.push(control);
    await loginAnonymously(control);
    control.write("EPSV\r\n");
    const reply = await readReply(control, /^229 /);
    const port = Number(/\(\|\|\|(\d+)\|\)/.exec(reply)?.[1]);
    assert.ok(inRange(s, port), reply);

    const other = await stack.addClient("flow-other");
    const stolen = await socksReply(stack.socksPort, other, s.vhost, port);
    sockets.push(stolen.socket);
    assert.equal(stolen.reply, NOT_ALLOWED, "another client may not use the announced port");
    const neighbour = await socksReply(
      stack.socksPort,
      stack.client,
      s.vhost,
      port === s.pasvPorts.end ? port - 1 : port + 1,
    );
    sockets.push(neighbour.socket);
    assert.equal(neighbour.reply, NOT_ALLOWED, "a port that was not announced stays closed");
    const mine = await socksReply(stack.socksPort, stack.client, s.vhost, port);
    sockets.push(mine.socket);
    assert.equal(mine.reply, 0x00, "the announcing client gets its data connection");
    const again = await socksReply(stack.socksPort, stack.client, s.vhost, port);
    sockets.push(again.socket);
    assert.equal(again.reply, NOT_ALLOWED, "an announcement serves once");
    assert.deepEqual(
      requests(),
      [
        ["connect", `${s.vhost}:${CONTROL}`],
        ["denied", `${s.vhost}:${port}`],
        ["denied", `${s.vhost}:${port === s.pasvPorts.end ? port - 1 : port + 1}`],
        ["ftp-data", `${s.vhost}:${port}`],
        ["denied", `${s.vhost}:${port}`],
      ],
      log.describe(),
    );
    for (const socket of [control, stolen.socket, neighbour.socket, mine.socket, again.socket])
      socket.destroy();
  });

  test("a BIND from a client with no live connection is refused 0x02", async () => {
    const lonely = await stack.addClient("flow-without-control");
    const r = await socksReply(stack.socksPort, lonely, proftpd().vhost, 0, SOCKS5_BIND);
    sockets.push(r.socket);
    assert.equal(r.reply, NOT_ALLOWED);
    assert.deepEqual(requests(), [["denied", `${proftpd().vhost}:0`]], log.describe());
    assert.match(log.describe(), /BIND without a live connection/);
  });
});

/** Explicit FTPS on the usual control port, implicit FTPS on the usual 990. */
const FTPS = {
  explicit: { port: 21, ranged: "ftps.aware.test", bare: "ftps-bare.aware.test" },
  implicit: { port: 990, ranged: "ftps-implicit.aware.test", bare: "ftps-implicit-bare.aware.test" },
} as const;

describe("FTPS through an FTP-aware control mapping (vsftpd, TLS session reuse required, announcing 10.255.255.1)", () => {
  const children = new ChildRegistry();
  let log: RelayLog;
  let stack: Stack;
  let cert: SelfSignedCert;
  const vsftpd: Partial<Record<"explicit" | "implicit", VsftpdServer>> = {};
  let work: string;
  let big: { sha256: string };
  let upload: { path: string; sha256: string };

  const why = async (r: SpawnResult, s: VsftpdServer) =>
    `${formatResult(r)}\n--- relay\n${log.describe()}\n--- vsftpd\n${await s.readLog()}`;
  const ftpKinds = () => log.ftpControlEvents().map((e) => e.kind);

  before(async () => {
    log = captureRelayLog();
    stack = await startStack({ relay: { logger: log.logger, audit: log.audit } });
    work = await mkdtemp(join(tmpdir(), "underpass-ftps-aware-"));
    cert = await makeSelfSignedCert({
      dnsNames: [FTPS.explicit.ranged, FTPS.explicit.bare, FTPS.implicit.ranged, FTPS.implicit.bare],
    });
    const tls = { certFile: cert.certFile, keyFile: cert.keyFile };
    [vsftpd.explicit, vsftpd.implicit] = await Promise.all([
      freePortRange(10).then((pasvPorts) =>
        startVsftpd({ pasvPorts, pasvAddress: UNROUTABLE_PASV_ADDRESS, tls, registry: children }),
      ),
      freePortRange(10).then((pasvPorts) =>
        startVsftpd({
          pasvPorts,
          pasvAddress: UNROUTABLE_PASV_ADDRESS,
          tls: { ...tls, implicit: true },
          registry: children,
        }),
      ),
    ]);
    big = await makeFile(vsftpd.explicit.root, "sixteen-mib.bin", 16 * MiB);
    await copyFile(
      join(vsftpd.explicit.root, "sixteen-mib.bin"),
      join(vsftpd.implicit.root, "sixteen-mib.bin"),
    );
    upload = await makeFile(work, "upload-eight.bin", 8 * MiB);
    for (const mode of ["explicit", "implicit"] as const) {
      const s = vsftpd[mode]!;
      const v = FTPS[mode];
      // one host with the passive range beside the FTP-aware control mapping, one without
      await addFtpAwareMapping(stack, s, v.ranged, v.port);
      await addPassiveRangeMapping(stack, s, v.ranged);
      await addFtpAwareMapping(stack, s, v.bare, v.port);
    }
  });

  beforeEach(() => log.clear());

  after(async () => {
    await children.killAll();
    await Promise.all([vsftpd.explicit?.close(), vsftpd.implicit?.close()]);
    await stack?.close();
    await cert?.close();
    if (work) await rm(work, { recursive: true, force: true });
  });

  for (const mode of ["explicit", "implicit"] as const) {
    const v = FTPS[mode];
    const server = () => vsftpd[mode]!;
    const ftps = (o: Omit<CurlFtpOptions, "socks" | "timeoutMs" | "registry">) =>
      curlFtps({
        socks: { ...socksProxyOf(stack), remoteDns: true },
        timeoutMs: 60_000,
        registry: children,
        ...o,
      });
    /** The relay saw the channel go opaque and announced nothing: it passed the TLS through. */
    const assertOpaque = async (r: SpawnResult) => {
      assert.deepEqual(ftpKinds(), ["opaque"], await why(r, server()));
      const [opaque] = log.ftpControlEvents();
      assert.ok(opaque?.kind === "opaque");
      assert.match(opaque.msg, mode === "explicit" ? /AUTH accepted/ : /TLS from the first byte/);
    };

    test(`${mode} FTPS, FTP-aware control + plain passive range: curl 16 MiB down over EPSV (TLS 1.3) and PASV, 8 MiB up (TLS 1.2), session reused, SHA-256 ok`, async () => {
      const s = server();
      const range = { host: v.ranged, controlPort: v.port, minData: 1, maxData: 1, dataPorts: s.pasvPorts };
      const out = join(work, `curl-${mode}.bin`);
      const down = await ftps({
        url: ftpsUrl(mode, v.ranged, v.port, "/sixteen-mib.bin"),
        output: out,
        extraArgs: ["-v"],
      });
      assert.equal(down.code, 0, await why(down, s));
      assert.equal(await sha256File(out), big.sha256);
      if (mode === "explicit") assert.match(down.stderr, /> AUTH (SSL|TLS)\r?\n< 234 /, formatResult(down));
      assert.match(down.stderr, /< 229 Entering Extended Passive Mode/, formatResult(down));
      assertCarried(log, range, formatResult(down));
      await assertOpaque(down);

      log.clear();
      const pasv = join(work, `curl-${mode}-pasv.bin`);
      const viaPasv = await ftps({
        url: ftpsUrl(mode, v.ranged, v.port, "/sixteen-mib.bin"),
        output: pasv,
        disableEpsv: true,
        extraArgs: ["-v"],
      });
      assert.equal(viaPasv.code, 0, await why(viaPasv, s));
      assert.equal(await sha256File(pasv), big.sha256);
      // the relay could not read the 227, so it reaches curl as vsftpd sent it
      assert.match(viaPasv.stderr, /< 227 Entering Passive Mode \(10,255,255,1,/, formatResult(viaPasv));
      assertCarried(log, range, formatResult(viaPasv));
      await assertOpaque(viaPasv);

      log.clear();
      const name = `curl-${mode}-up.bin`;
      const up = await ftps({
        url: ftpsUrl(mode, v.ranged, v.port, `/upload/${name}`),
        upload: upload.path,
        extraArgs: ["--tls-max", "1.2"],
      });
      assert.equal(up.code, 0, await why(up, s));
      assert.equal(await sha256File(join(s.uploadDir, name)), upload.sha256);
      assertCarried(log, range, formatResult(up));
      await assertOpaque(up);
    });

    test(`lftp under proxychains4, ${mode} FTPS over TLS 1.2, FTP-aware control + plain passive range: ls, 16 MiB down, 8 MiB up, SHA-256 ok`, async () => {
      const s = server();
      const out = join(work, `lftp-${mode}.bin`);
      const name = `lftp-${mode}-up.bin`;
      const r = await lftpFtps({
        socks: socksProxyOf(stack),
        script: [
          `open ${ftpsUrl(mode, v.ranged, v.port)}`,
          "ls",
          `get sixteen-mib.bin -o ${out}`,
          `put ${upload.path} -o upload/${name}`,
        ].join("\n"),
        // TLS 1.3 uploads to vsftpd 3.0.3 through a proxy lose their tail now and then (ftps-sftp.test.ts)
        settings: { "ssl:priority": "NORMAL:-VERS-TLS1.3" },
        timeoutMs: 90_000,
        registry: children,
      });
      assert.equal(r.code, 0, await why(r, s));
      assert.match(r.stdout, /sixteen-mib\.bin/, await why(r, s));
      assert.equal(await sha256File(out), big.sha256);
      assert.equal(await sha256File(join(s.uploadDir, name)), upload.sha256);
      // ls, get and put: three data connections through the range mapping, by name
      assertCarried(
        log,
        { host: v.ranged, controlPort: v.port, minData: 3, maxData: 3, dataPorts: s.pasvPorts },
        formatResult(r),
      );
      await assertOpaque(r);
    });

    test(`${mode} FTPS, FTP-aware control mapping and no passive range: the relay cannot read the encrypted 229 or 227, so both data CONNECTs are refused 0x02 (curl 97)`, async () => {
      const s = server();
      const out = join(work, `curl-${mode}-bare.bin`);
      const r = await ftps({
        url: ftpsUrl(mode, v.bare, v.port, "/sixteen-mib.bin"),
        output: out,
        extraArgs: ["-v"],
      });
      assert.equal(r.code, CURLE_PROXY, await why(r, s));
      assert.match(r.stderr, /Can't complete SOCKS5 connection to .*\(2\)/, await why(r, s));
      // EPSV first; on the refusal curl falls back to PASV, refused the same way
      const epsv = /< 229 Entering Extended Passive Mode \(\|\|\|(\d+)\|\)/.exec(r.stderr);
      const pasv = /< 227 Entering Passive Mode \(10,255,255,1,(\d+),(\d+)\)/.exec(r.stderr);
      assert.ok(epsv && pasv, await why(r, s));
      const ports = [Number(epsv[1]), Number(pasv[1]) * 256 + Number(pasv[2])];
      for (const port of ports) {
        assert.ok(port >= s.pasvPorts.start && port <= s.pasvPorts.end, await why(r, s));
      }
      assert.deepEqual(
        log.socksEvents().map((e) => [e.kind, e.destination, e.reply]),
        [
          ["connect", `${v.bare}:${v.port}`, 0x00],
          ["denied", `${v.bare}:${ports[0]}`, NOT_ALLOWED],
          ["denied", `${v.bare}:${ports[1]}`, NOT_ALLOWED],
        ],
        await why(r, s),
      );
      await assertOpaque(r);
      const size = await stat(out).then(
        (st) => st.size,
        () => 0,
      );
      assert.equal(size, 0, "no byte of the file arrived");
    });
  }
});

/** The fields of a started server the tests use. */
function pick(s: {
  host: string;
  port: number;
  pasvPorts: PortSpan;
  root: string;
  uploadDir: string;
  readLog(): Promise<string>;
  close(): Promise<void>;
}) {
  return {
    host: s.host,
    port: s.port,
    pasvPorts: s.pasvPorts,
    root: s.root,
    uploadDir: s.uploadDir,
    readLog: () => s.readLog(),
    close: () => s.close(),
  };
}
