/**
 * Stock clients, unmodified, against vsftpd and proftpd behind plain mappings (control port 21
 * and the passive range), both servers announcing an unroutable PASV address as behind NAT:
 * the JDK's ftp:// URL client, Python's ftplib under proxychains4 and under Dante's socksify,
 * and curl under socksify in active mode. Each test asserts what really happens, success or
 * not, and reads the client's SOCKS requests back from the relay's log.
 */
import assert from "node:assert/strict";
import { copyFile, mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, beforeEach, describe, test } from "node:test";
import { ChildRegistry, formatResult, type SpawnResult } from "../helpers/clients.js";
import {
  curlActiveSocksify,
  ftplibProxychains,
  ftplibSocksify,
  javaFtpClasses,
  javaFtpUrl,
  socksProxyOf,
} from "../helpers/ftp-clients.js";
import { addPlainFtpMappings, startProftpd, UNROUTABLE_PASV_ADDRESS } from "../helpers/ftp-servers.js";
import { freePortRange } from "../helpers/ports.js";
import { assertCarried, captureRelayLog, type RelayLog } from "../helpers/relay-log.js";
import { type Stack, startStack } from "../helpers/stack.js";
import { makeFile, sha256File, startVsftpd } from "../helpers/vsftpd.js";

const MiB = 1024 * 1024;
const CONTROL = 21;

/** What the tests need of either server. */
interface Server {
  readonly name: "vsftpd" | "proftpd";
  readonly vhost: string;
  readonly host: string;
  readonly port: number;
  readonly pasvPorts: { start: number; end: number };
  readonly root: string;
  readonly uploadDir: string;
  readLog(): Promise<string>;
  close(): Promise<void>;
}

describe("stock clients through plain mappings (vsftpd and proftpd announcing 10.255.255.1)", () => {
  const children = new ChildRegistry();
  let log: RelayLog;
  let stack: Stack;
  let work: string;
  const servers: Server[] = [];
  let big: { path: string; sha256: string };
  let upload: { path: string; sha256: string };

  const why = (r: SpawnResult) => `${formatResult(r)}\n--- relay\n${log.describe()}`;
  /** The SOCKS requests of the last run as [kind, destination]. */
  const requests = () => log.socksEvents().map((e) => [e.kind, e.destination]);
  const inRange = (s: Server, port: number) => port >= s.pasvPorts.start && port <= s.pasvPorts.end;

  before(async () => {
    log = captureRelayLog();
    stack = await startStack({ relay: { logger: log.logger, audit: log.audit } });
    work = await mkdtemp(join(tmpdir(), "underpass-stock-clients-"));
    const [vsftpd, proftpd] = await Promise.all([
      freePortRange(10).then((pasvPorts) =>
        startVsftpd({ pasvPorts, pasvAddress: UNROUTABLE_PASV_ADDRESS, registry: children }),
      ),
      freePortRange(10).then((pasvPorts) =>
        startProftpd({ pasvPorts, pasvAddress: UNROUTABLE_PASV_ADDRESS, registry: children }),
      ),
      javaFtpClasses(children), // compile once, before the first test's clock starts
    ]);
    servers.push({ name: "vsftpd", vhost: "vsftpd.corp.test", ...pick(vsftpd) });
    servers.push({ name: "proftpd", vhost: "proftpd.corp.test", ...pick(proftpd) });
    big = await makeFile(work, "sixteen-mib.bin", 16 * MiB);
    upload = await makeFile(work, "upload-eight.bin", 8 * MiB);
    for (const s of servers) {
      await addPlainFtpMappings(stack, s, s.vhost, CONTROL);
      await copyFile(big.path, join(s.root, "sixteen-mib.bin"));
    }
  });

  beforeEach(() => log.clear());

  after(async () => {
    await children.killAll();
    await Promise.all(servers.map((s) => s.close()));
    await stack?.close();
    if (work) await rm(work, { recursive: true, force: true });
  });

  for (const index of [0, 1]) {
    const name = index === 0 ? "vsftpd" : "proftpd";
    const server = () => servers[index]!;

    test(`${name}: JDK 17 ftp:// URL (SOCKS5, Authenticator): 16 MiB down, 8 MiB up via getOutputStream, EPSV ALL, SHA-256 ok`, async () => {
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
      // The Authenticator was asked, once per SOCKS connection: control and data.
      assert.match(down.stderr, /socks5: credentials asked for/, why(down));
      const carried = { host: s.vhost, controlPort: CONTROL, minData: 1, maxData: 1, dataPorts: s.pasvPorts };
      assertCarried(log, carried, formatResult(down));
      // EPSV ALL, then EPSV: the JDK never needs the address in a 227.
      assert.match(await s.readLog(), /EPSV ALL/);

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
      assertCarried(log, carried, formatResult(up));
    });

    test(`${name}: JDK with -Djdk.net.ftp.trustPasvAddress=true downloads the same way (EPSV, no 227 address to trust)`, async () => {
      const s = server();
      const out = join(work, `jdk-trust-${name}.bin`);
      const r = await javaFtpUrl({
        direction: "get",
        url: `ftp://${s.vhost}:${CONTROL}/sixteen-mib.bin`,
        file: out,
        socks: socksProxyOf(stack),
        trustPasvAddress: true,
        timeoutMs: 60_000,
        registry: children,
      });
      assert.equal(r.code, 0, why(r));
      assert.equal(await sha256File(out), big.sha256);
      assertCarried(log, {
        host: s.vhost,
        controlPort: CONTROL,
        minData: 1,
        maxData: 1,
        dataPorts: s.pasvPorts,
      });
    });

    test(`${name}: ftplib PASV under proxychains4 is refused 0x02 today — its data CONNECT goes to the proxy's own IP (needs an FTP-aware mapping)`, async () => {
      const s = server();
      const r = await ftplibProxychains({
        host: s.vhost,
        port: CONTROL,
        actions: [{ op: "get", remote: "sixteen-mib.bin", local: join(work, `ftplib-pc-${name}.bin`) }],
        socks: socksProxyOf(stack),
        timeoutMs: 30_000,
        registry: children,
      });
      assert.equal(r.code, 1, why(r));
      assert.equal(r.timedOut, false, why(r));
      // ftplib ignores the 227 address (trust_server_pasv_ipv4_address is off) and dials the
      // control socket's peer: under proxychains that is the proxy itself, 127.0.0.1.
      const m = /\*resp\* '227 Entering Passive Mode \(10,255,255,1,(\d+),(\d+)\)/.exec(r.stdout);
      assert.ok(m, why(r));
      const port = Number(m[1]) * 256 + Number(m[2]);
      assert.ok(inRange(s, port), why(r));
      assert.match(r.stderr, /ConnectionRefusedError/, why(r));
      assert.deepEqual(
        requests(),
        [
          ["connect", `${s.vhost}:${CONTROL}`],
          ["denied", `127.0.0.1:${port}`],
        ],
        why(r),
      );
    });

    test(`${name}: ftplib active (PORT) under proxychains4 never reaches the relay — PORT names 127.0.0.1 and the server dials the client directly (works only because both share a host)`, async () => {
      const s = server();
      const out = join(work, `ftplib-pc-active-${name}.bin`);
      const r = await ftplibProxychains({
        host: s.vhost,
        port: CONTROL,
        active: true,
        actions: [{ op: "get", remote: "sixteen-mib.bin", local: out }],
        socks: socksProxyOf(stack),
        timeoutMs: 30_000,
        registry: children,
      });
      assert.equal(r.code, 0, why(r));
      assert.equal(await sha256File(out), big.sha256);
      // proxychains hooks connect() only: ftplib listens locally and announces its own address.
      assert.match(r.stdout, /\*cmd\* 'PORT 127,0,0,1,\d+,\d+'/, why(r));
      assert.deepEqual(requests(), [["connect", `${s.vhost}:${CONTROL}`]], why(r));
    });

    test(`${name}: ftplib PASV under socksify: Dante maps the control peer's fake address back to the name — list, 16 MiB down, 8 MiB up, SHA-256 ok`, async () => {
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
      // LIST, RETR and STOR: three data connections by name
      assertCarried(log, {
        host: s.vhost,
        controlPort: CONTROL,
        minData: 3,
        maxData: 3,
        dataPorts: s.pasvPorts,
      });
    });

    test(`${name}: ftplib active under socksify: BIND is granted and PORT names the agent's listener, but Dante 1.4.2 does not hook accept4(), so ftplib's accept fails (EINVAL)`, async () => {
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
      // PORT carries the CONNECT reply's BND.ADDR (the agent's address) and the BIND's port
      const m = /\*cmd\* 'PORT 127,0,0,1,(\d+),(\d+)'/.exec(r.stdout);
      assert.ok(m, why(r));
      assert.match(r.stdout, /\*resp\* '200 /, why(r));
      assert.match(r.stderr, /Errno 22|Invalid argument/, why(r));
      const events = log.socksEvents();
      assert.deepEqual(
        events.map((e) => e.kind),
        ["connect", "bind"],
        why(r),
      );
      const bindPort = Number(events[1]?.destination?.split(":").pop());
      assert.equal(Number(m[1]) * 256 + Number(m[2]), bindPort, why(r));
    });

    test(`${name}: curl --ftp-port - under socksify: active mode through SOCKS5 BIND, 16 MiB down, SHA-256 ok`, async () => {
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
      assert.match(r.stderr, /> (PORT 127,0,0,1,\d+,\d+|EPRT \|1\|127\.0\.0\.1\|\d+\|)/, why(r));
      assert.deepEqual(
        log.socksEvents().map((e) => e.kind),
        ["connect", "bind"],
        why(r),
      );
    });
  }
});

/** The fields of a started server the tests use. */
function pick(s: {
  host: string;
  port: number;
  pasvPorts: { start: number; end: number };
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
