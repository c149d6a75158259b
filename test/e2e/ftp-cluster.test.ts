/**
 * FTP across relays: three relays over one PostgreSQL database (a private cluster) behind a
 * private haproxy with `balance roundrobin` and no affinity, an agent with a tunnel to each
 * relay, and vsftpd and proftpd announcing an unroutable PASV address (as behind NAT). Each SOCKS
 * connection of a client goes to the next relay: the control connection to one, each data
 * connection and each BIND to another. Stock clients (curl, lftp under proxychains4, the JDK's
 * ftp:// client, curl under Dante's socksify for SOCKS BIND) move files, checked by SHA-256,
 * in passive (EPSV, PASV) and active mode, through an FTP-aware mapping (`protocol: "ftp"`,
 * no passive range: a data port is open only because a control connection on another relay
 * announced it) and through plain mappings (control port and passive range).
 *
 * What each relay opened is read from its own events, so every test also shows that data
 * connections or BINDs did land on a relay that carried no control connection of that run:
 * with the expectations, BIND listeners or control connections kept in one relay, those
 * would have been refused.
 */
import assert from "node:assert/strict";
import { copyFile, mkdtemp, rm } from "node:fs/promises";
import type { Socket } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, beforeEach, describe, test } from "node:test";
import { type Agent, startAgent } from "../../agent/agent.js";
import { allowAll } from "../../agent/policy.js";
import type { ConnectionGrant } from "../../cloud/events.js";
import {
  ChildRegistry,
  type CurlFtpOptions,
  curlFtp,
  formatResult,
  lftpProxychains,
  type SocksProxy,
  type SpawnResult,
} from "../helpers/clients.js";
import { curlActiveSocksify, javaFtpClasses, javaFtpUrl } from "../helpers/ftp-clients.js";
import { loginAnonymously, readReply } from "../helpers/ftp-dialogue.js";
import {
  addFtpAwareMapping,
  addPlainFtpMappings,
  startProftpd,
  UNROUTABLE_PASV_ADDRESS,
} from "../helpers/ftp-servers.js";
import { type Haproxy, startHaproxy } from "../helpers/haproxy.js";
import { freePortRange, waitFor } from "../helpers/ports.js";
import { type PostgresCluster, startPostgres } from "../helpers/postgres.js";
import { type Stack, socksConnect, socksReply, startStack, testLogger } from "../helpers/stack.js";
import { makeFile, sha256File, startVsftpd, type VsftpdServer } from "../helpers/vsftpd.js";

const MiB = 1024 * 1024;
const CONTROL = 21;
const RELAYS = 3;
/** SOCKS5 replies (RFC 1928 §6). */
const SUCCEEDED = 0x00;
const NOT_ALLOWED = 0x02;
const CLIENT_TIMEOUT_MS = 90_000;

type ServerName = "vsftpd" | "proftpd";
/** What the tests need of either server. */
type FtpServer = Pick<VsftpdServer, "host" | "port" | "pasvPorts" | "root" | "uploadDir" | "close">;

/** One SOCKS connection a relay carried, from that relay's `socksOpened` event. */
interface Opened {
  readonly relay: number;
  readonly grant: ConnectionGrant;
  readonly virtualHost: string;
  readonly virtualPort: number;
}

describe("FTP through haproxy round robin over three relays on one database (vsftpd and proftpd announcing 10.255.255.1)", () => {
  const children = new ChildRegistry();
  const sockets: Socket[] = [];
  const stacks: Stack[] = [];
  const stops: Array<() => void> = [];
  let cluster: PostgresCluster;
  let haproxy: Haproxy;
  let agent: Agent;
  const servers = new Map<ServerName, FtpServer>();
  /** The server of the tests being run, and its mappings' virtual hosts. */
  let ftp: FtpServer;
  let aware = "";
  let plain = "";
  let work: string;
  let file: { path: string; sha256: string };
  let upload: { path: string; sha256: string };
  /** What the relays opened since the last `beforeEach`, in order. */
  let opened: Opened[] = [];
  /** Relay of each SOCKS BIND's listener since the last `beforeEach`. */
  let binds: number[] = [];

  before(async () => {
    work = await mkdtemp(join(tmpdir(), "underpass-ftp-cluster-"));
    let vsftpd: FtpServer;
    let proftpd: FtpServer;
    [cluster, vsftpd, proftpd] = await Promise.all([
      startPostgres(),
      freePortRange(10).then((pasvPorts) =>
        startVsftpd({ pasvPorts, pasvAddress: UNROUTABLE_PASV_ADDRESS, registry: children }),
      ),
      freePortRange(10).then((pasvPorts) =>
        startProftpd({ pasvPorts, pasvAddress: UNROUTABLE_PASV_ADDRESS, registry: children }),
      ),
      javaFtpClasses(children),
    ]);
    servers.set("vsftpd", vsftpd).set("proftpd", proftpd);
    const url = await cluster.createDatabase("ftp_cluster");
    // one after the other: the first migrates, the others find the schema in place
    for (let i = 0; i < RELAYS; i++) {
      stacks.push(
        await startStack({ agent: false, relay: { databaseUrl: url, logger: testLogger(`relay-${i}`) } }),
      );
    }
    for (const [i, s] of stacks.entries()) {
      stops.push(
        s.relay.events.socksOpened.subscribe((m) => {
          opened.push({ relay: i, grant: m.grant, virtualHost: m.virtualHost, virtualPort: m.virtualPort });
        }),
        s.relay.events.socksBindListening.subscribe(() => {
          binds.push(i);
        }),
      );
    }
    const first = stacks[0]!;
    agent = startAgent({
      relayUrls: stacks.map((s) => `ws://127.0.0.1:${s.relay.tunnelAddress.port}/tunnel`),
      token: first.agentToken,
      policy: allowAll(),
      logger: testLogger("agent"),
      tunnels: 1,
      backoff: { baseMs: 50, maxMs: 500 },
    });
    await agent.waitUp(RELAYS, 30_000);
    haproxy = await startHaproxy({
      relays: stacks.map((s, i) => ({
        name: `relay${i}`,
        socksPort: s.relay.socksAddress.port,
        tunnelPort: s.relay.tunnelAddress.port,
        adminPort: s.relay.adminAddress.port,
      })),
    });
    await waitFor(async () => (await haproxy.upServers("socks")).length === RELAYS, {
      timeoutMs: 30_000,
      what: "haproxy to count every relay up",
    });
    // everything through the first relay's admin API; the others learn it from the change feed
    for (const [name, server] of servers) {
      await addFtpAwareMapping(first, server, `${name}.aware.test`, CONTROL);
      await addPlainFtpMappings(first, server, `${name}.plain.test`, CONTROL);
    }
    const want = (await first.relay.store.mappingsOf("default")).length;
    await waitFor(
      async () => {
        for (const s of stacks) if ((await s.relay.store.mappingsOf("default")).length !== want) return false;
        return true;
      },
      { timeoutMs: 10_000, what: "every relay to hold the mappings" },
    );
    file = await makeFile(work, "four-mib.bin", 4 * MiB);
    upload = await makeFile(work, "upload-two.bin", 2 * MiB);
    for (const server of servers.values()) await copyFile(file.path, join(server.root, "four-mib.bin"));
  });

  beforeEach(() => {
    opened = [];
    binds = [];
  });

  after(async () => {
    for (const s of sockets) s.destroy();
    for (const stop of stops) stop();
    await children.killAll();
    await haproxy?.stop();
    await agent?.close();
    for (const s of stacks.reverse()) await s.close();
    await Promise.all([...servers.values()].map((server) => server.close()));
    await cluster?.close();
    if (work) await rm(work, { recursive: true, force: true });
  });

  /** The client of the first relay's stack, through the balancer. */
  const socks = (): SocksProxy & { username: string; password: string } => ({
    host: "127.0.0.1",
    port: haproxy.socksPort,
    username: stacks[0]!.client.username,
    password: stacks[0]!.client.password,
  });
  const curl = (o: Omit<CurlFtpOptions, "socks" | "timeoutMs" | "registry">) =>
    curlFtp({
      socks: { ...socks(), remoteDns: true },
      timeoutMs: CLIENT_TIMEOUT_MS,
      registry: children,
      ...o,
    });
  const why = (r: SpawnResult): string =>
    `${formatResult(r)}\n--- opened by the relays\n${JSON.stringify(opened)}\nbinds on ${JSON.stringify(binds)}`;
  const ok = (r: SpawnResult): void => assert.equal(r.code, 0, why(r));

  /** The relays that carried a control connection to `host` in this run. */
  const controlRelays = (host: string): Set<number> =>
    new Set(
      opened
        .filter((o) => o.grant === "connect" && o.virtualHost === host && o.virtualPort === CONTROL)
        .map((o) => o.relay),
    );

  /**
   * `count` data connections of `grant` were carried, and at least one of them by a relay that
   * carried no control connection to `host` in this run.
   */
  function assertDataElsewhere(r: SpawnResult, host: string, grant: ConnectionGrant, count: number): void {
    const controls = controlRelays(host);
    assert.ok(controls.size > 0, `no control connection\n${why(r)}`);
    const data = opened.filter((o) => o.grant === grant && o.virtualPort !== CONTROL);
    assert.equal(data.length, count, why(r));
    for (const d of data) {
      assert.ok(
        d.virtualPort >= ftp.pasvPorts.start && d.virtualPort <= ftp.pasvPorts.end,
        `a data connection to the passive range\n${why(r)}`,
      );
    }
    assert.ok(
      data.some((d) => !controls.has(d.relay)),
      `a data connection on a relay without the control connection\n${why(r)}`,
    );
  }

  /** A fresh run: curl downloads the test file from `host` into `name`, SHA-256 checked. */
  async function curlDown(
    host: string,
    name: string,
    o: Omit<CurlFtpOptions, "socks" | "timeoutMs" | "registry" | "url" | "output"> = {},
  ): Promise<SpawnResult> {
    opened = [];
    const out = join(work, name);
    const r = await curl({ url: `ftp://${host}:${CONTROL}/four-mib.bin`, output: out, ...o });
    ok(r);
    assert.equal(await sha256File(out), file.sha256);
    return r;
  }

  /** A fresh run of the JDK's ftp:// client: `get` the test file into `name`, or `put` the upload there. */
  async function jdk(host: string, direction: "get" | "put", name: string): Promise<SpawnResult> {
    opened = [];
    const r = await javaFtpUrl({
      direction,
      url: `ftp://${host}:${CONTROL}/${direction === "get" ? "four-mib.bin" : `upload/${name}`}`,
      file: direction === "get" ? join(work, name) : upload.path,
      socks: socks(),
      timeoutMs: CLIENT_TIMEOUT_MS,
      registry: children,
    });
    ok(r);
    assert.equal(
      await sha256File(direction === "get" ? join(work, name) : join(ftp.uploadDir, name)),
      direction === "get" ? file.sha256 : upload.sha256,
    );
    return r;
  }

  for (const name of ["vsftpd", "proftpd"] as const) {
    describe(name, () => {
      before(() => {
        ftp = servers.get(name)!;
        aware = `${name}.aware.test`;
        plain = `${name}.plain.test`;
      });

      // ---- passive, FTP-aware mapping: the port one relay saw announced opens on the others ----

      test("FTP-aware, passive: curl EPSV, curl PASV (also trusting the rewritten 227), each data CONNECT on another relay, SHA-256 ok", async () => {
        let r = await curlDown(aware, "aware-epsv.bin");
        assertDataElsewhere(r, aware, "ftp-data", 1);
        r = await curlDown(aware, "aware-pasv.bin", { disableEpsv: true });
        assertDataElsewhere(r, aware, "ftp-data", 1);
        // the 227 names the relay's address; the data CONNECT to it lands on another relay
        r = await curlDown(aware, "aware-trusting.bin", {
          disableEpsv: true,
          extraArgs: ["-v", "--no-ftp-skip-pasv-ip"],
        });
        assert.match(r.stderr, /227 Entering Passive Mode \(127,0,0,1,/, why(r));
        assert.doesNotMatch(r.stderr, /10,255,255,1/, why(r));
        assertDataElsewhere(r, aware, "ftp-data", 1);

        opened = [];
        r = await curl({ url: `ftp://${aware}:${CONTROL}/upload/aware-up.bin`, upload: upload.path });
        ok(r);
        assert.equal(await sha256File(join(ftp.uploadDir, "aware-up.bin")), upload.sha256);
        assertDataElsewhere(r, aware, "ftp-data", 1);
      });

      test("FTP-aware, passive: lftp under proxychains4 (PASV) lists, downloads and uploads, its data connections spread over the relays, SHA-256 ok", async () => {
        const out = join(work, "aware-lftp.bin");
        const r = await lftpProxychains({
          socks: socks(),
          timeoutMs: CLIENT_TIMEOUT_MS,
          registry: children,
          script: `open ftp://anonymous:x@${aware}:${CONTROL}\nls\nget four-mib.bin -o ${out}\nput ${upload.path} -o upload/aware-lftp.bin`,
        });
        ok(r);
        assert.match(r.stdout, /four-mib\.bin/, why(r));
        assert.equal(await sha256File(out), file.sha256);
        assert.equal(await sha256File(join(ftp.uploadDir, "aware-lftp.bin")), upload.sha256);
        assertDataElsewhere(r, aware, "ftp-data", 3);
      });

      test("FTP-aware, passive: the JDK's ftp:// client (EPSV) downloads and uploads, the data CONNECT on another relay, SHA-256 ok", async () => {
        let r = await jdk(aware, "get", "aware-jdk.bin");
        assertDataElsewhere(r, aware, "ftp-data", 1);
        r = await jdk(aware, "put", "aware-jdk.bin");
        assertDataElsewhere(r, aware, "ftp-data", 1);
      });

      // ---- passive, plain mappings: any relay opens any mapped port ---------------------------

      test("plain mappings, passive: curl EPSV and PASV, lftp, the JDK, data connections on other relays, SHA-256 ok", async () => {
        let r = await curlDown(plain, "plain-curl.bin");
        assertDataElsewhere(r, plain, "connect", 1);
        r = await curlDown(plain, "plain-pasv.bin", { disableEpsv: true });
        assertDataElsewhere(r, plain, "connect", 1);

        opened = [];
        const viaLftp = join(work, "plain-lftp.bin");
        r = await lftpProxychains({
          socks: socks(),
          timeoutMs: CLIENT_TIMEOUT_MS,
          registry: children,
          script: `open ftp://anonymous:x@${plain}:${CONTROL}\nget four-mib.bin -o ${viaLftp}\nput ${upload.path} -o upload/plain-lftp.bin`,
        });
        ok(r);
        assert.equal(await sha256File(viaLftp), file.sha256);
        assert.equal(await sha256File(join(ftp.uploadDir, "plain-lftp.bin")), upload.sha256);
        assertDataElsewhere(r, plain, "connect", 2);

        r = await jdk(plain, "get", "plain-jdk.bin");
        assertDataElsewhere(r, plain, "connect", 1);
      });

      // ---- active -----------------------------------------------------------------------------

      test("active through SOCKS BIND (curl --ftp-port - under socksify): the BIND lands on another relay than its control connection, for the FTP-aware and the plain mapping, SHA-256 ok", async () => {
        for (const [host, name] of [
          [aware, "aware"],
          [plain, "plain"],
        ] as const) {
          opened = [];
          binds = [];
          const out = join(work, `bind-${name}.bin`);
          const r = await curlActiveSocksify({
            url: `ftp://${host}:${CONTROL}/four-mib.bin`,
            output: out,
            socks: socks(),
            timeoutMs: CLIENT_TIMEOUT_MS,
            registry: children,
          });
          ok(r);
          assert.equal(await sha256File(out), file.sha256);
          // the PORT named the listener a BIND on another relay got, and passed unchanged
          assert.match(r.stderr, /> PORT \d+,\d+,\d+,\d+,\d+,\d+/, why(r));
          assert.match(r.stderr, /< 200 /, why(r));
          const controls = controlRelays(host);
          assert.equal(controls.size, 1, why(r));
          assert.equal(binds.length, 1, why(r));
          assert.ok(
            !controls.has(binds[0]!),
            `the BIND on a relay without the control connection\n${why(r)}`,
          );
          // no listener of the control connection's relay's own: the client's BIND serves the data
          assert.equal(opened.filter((o) => o.grant === "ftp-active-data").length, 0, why(r));
          const spliced = opened.filter((o) => o.grant === "bind");
          assert.equal(spliced.length, 1, why(r));
          assert.equal(spliced[0]!.relay, binds[0], why(r));
        }
      });

      test("FTP-aware, active (curl -P -: EPRT, then PORT for an upload): the control connection's relay has the agent listen and carries the data back, SHA-256 ok", async () => {
        let r = await curlDown(aware, "aware-active.bin", { extraArgs: ["-v", "-P", "-"] });
        assert.match(r.stderr, /> EPRT \|1\|127\.0\.0\.1\|\d+\|/, why(r));
        const active = opened.filter((o) => o.grant === "ftp-active-data");
        assert.equal(active.length, 1, why(r));
        assert.deepEqual([...controlRelays(aware)], [active[0]!.relay], why(r));

        opened = [];
        r = await curl({
          url: `ftp://${aware}:${CONTROL}/upload/aware-active-up.bin`,
          upload: upload.path,
          extraArgs: ["-P", "-", "--disable-eprt"],
        });
        ok(r);
        assert.equal(await sha256File(join(ftp.uploadDir, "aware-active-up.bin")), upload.sha256);
        assert.equal(opened.filter((o) => o.grant === "ftp-active-data").length, 1, why(r));
      });

      // ---- what stays refused ----------------------------------------------------------------

      test("FTP-aware: on another relay a port no control connection announced is refused, the announced one opens once for its client only", async () => {
        const other = await stacks[0]!.addClient("flow-b");
        await waitFor(
          async () => {
            for (const s of stacks)
              if (!(await s.relay.store.findClientByUsername(other.username))) return false;
            return true;
          },
          { what: "the second client on every relay" },
        );
        // the control connection through the balancer, then EPSV
        const control = await socksConnect(haproxy.socksPort, stacks[0]!.client, aware, CONTROL);
        sockets.push(control);
        await loginAnonymously(control);
        control.write("EPSV\r\n");
        const reply = await readReply(control, /^229 /m);
        const port = Number(/\(\|\|\|(\d+)\|\)/.exec(reply)?.[1]);
        assert.ok(port >= ftp.pasvPorts.start && port <= ftp.pasvPorts.end, reply);
        const [held] = [...controlRelays(aware)];
        assert.notEqual(held, undefined);
        const elsewhere = stacks.filter((_, i) => i !== held);
        const [b, c] = elsewhere as [Stack, Stack];
        const notAnnounced = port === ftp.pasvPorts.end ? ftp.pasvPorts.start : port + 1;

        const refusedPort = await socksReply(b.socksPort, stacks[0]!.client, aware, notAnnounced);
        refusedPort.socket.destroy();
        assert.equal(refusedPort.reply, NOT_ALLOWED, "a port no control connection announced");

        const stranger = await socksReply(b.socksPort, other, aware, port);
        stranger.socket.destroy();
        assert.equal(stranger.reply, NOT_ALLOWED, "another client does not get the announced port");

        const granted = await socksReply(b.socksPort, stacks[0]!.client, aware, port);
        sockets.push(granted.socket);
        assert.equal(granted.reply, SUCCEEDED, "the announcing client gets it on another relay");
        assert.ok(opened.some((o) => o.relay === stacks.indexOf(b) && o.grant === "ftp-data"));

        const again = await socksReply(c.socksPort, stacks[0]!.client, aware, port);
        again.socket.destroy();
        assert.equal(again.reply, NOT_ALLOWED, "served once in the whole cluster");
        control.destroy();
      });
    });
  }
});
