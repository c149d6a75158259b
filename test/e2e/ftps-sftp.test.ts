/**
 * Encrypted file transfer through plain mappings: explicit FTPS (AUTH TLS) and implicit FTPS
 * against vsftpd requiring TLS on login and data and TLS session reuse on every data
 * connection (require_ssl_reuse, vsftpd's default), with curl and lftp; and SFTP/scp to a
 * private OpenSSH sshd, through a ProxyCommand that speaks SOCKS5 with username/password.
 * The relay only carries bytes here: it cannot read an FTPS control channel.
 */
import assert from "node:assert/strict";
import { copyFile, mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, beforeEach, describe, test } from "node:test";
import { ChildRegistry, curlFtp, formatResult, type SpawnResult } from "../helpers/clients.js";
import { curlFtps, ftpsUrl, lftpFtps, scpCopy, sftpBatch, socksProxyOf } from "../helpers/ftp-clients.js";
import { addPlainFtpMappings, UNROUTABLE_PASV_ADDRESS } from "../helpers/ftp-servers.js";
import { freePortRange, waitFor } from "../helpers/ports.js";
import { assertCarried, captureRelayLog, type RelayLog } from "../helpers/relay-log.js";
import { type SshdServer, startSshd } from "../helpers/sshd.js";
import { type Stack, startStack } from "../helpers/stack.js";
import { makeSelfSignedCert, type SelfSignedCert } from "../helpers/tls.js";
import { makeFile, sha256File, startVsftpd, type VsftpdServer } from "../helpers/vsftpd.js";

const MiB = 1024 * 1024;
/** Explicit FTPS on the usual control port, implicit FTPS on the usual 990, SSH on 22. */
const EXPLICIT = { host: "ftps.corp.test", port: 21 } as const;
const IMPLICIT = { host: "ftps-implicit.corp.test", port: 990 } as const;
const SSH = { host: "sftp.corp.test", port: 22 } as const;
/**
 * Uploads speak TLS 1.2: a TLS 1.3 FTPS upload to vsftpd 3.0.3 through any SOCKS proxy loses
 * its tail now and then — curl (OpenSSL) and lftp (GnuTLS) alike, through a plain microsocks
 * as well as through Underpass, never without a proxy and never over TLS 1.2 (vsftpd logs
 * "DATA connection terminated without SSL shutdown" and answers 426).
 */
const CURL_TLS12 = ["--tls-max", "1.2"];
const LFTP_TLS12 = { "ssl:priority": "NORMAL:-VERS-TLS1.3" };

describe("FTPS and SFTP through plain mappings", () => {
  const children = new ChildRegistry();
  let log: RelayLog;
  let stack: Stack;
  let cert: SelfSignedCert;
  let explicit: VsftpdServer;
  let implicit: VsftpdServer;
  let sshd: SshdServer;
  let work: string;
  /** The same 16 MiB file on both FTPS servers, and one to upload. */
  let big: { sha256: string };
  let upload: { path: string; sha256: string };

  function assertOk(r: SpawnResult, what?: () => Promise<string>): Promise<void> | void {
    if (r.code === 0) return;
    const extra = what ? what() : Promise.resolve("");
    return extra.then((text) => assert.fail(`${formatResult(r)}\n--- relay\n${log.describe()}\n${text}`));
  }

  before(async () => {
    log = captureRelayLog();
    stack = await startStack({ relay: { logger: log.logger, audit: log.audit } });
    cert = await makeSelfSignedCert({ dnsNames: [EXPLICIT.host, IMPLICIT.host] });
    const tls = { certFile: cert.certFile, keyFile: cert.keyFile };
    [explicit, implicit, sshd] = await Promise.all([
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
      startSshd({ registry: children }),
    ]);
    await addPlainFtpMappings(stack, explicit, EXPLICIT.host, EXPLICIT.port);
    await addPlainFtpMappings(stack, implicit, IMPLICIT.host, IMPLICIT.port);
    await stack.addMapping({
      virtualHost: SSH.host,
      virtualPort: SSH.port,
      internalHost: sshd.host,
      internalPort: sshd.port,
    });
    work = await mkdtemp(join(tmpdir(), "underpass-ftps-e2e-"));
    big = await makeFile(explicit.root, "sixteen-mib.bin", 16 * MiB);
    // the same bytes on every server
    await copyFile(join(explicit.root, "sixteen-mib.bin"), join(implicit.root, "sixteen-mib.bin"));
    await copyFile(join(explicit.root, "sixteen-mib.bin"), join(sshd.filesDir, "sixteen-mib.bin"));
    upload = await makeFile(work, "upload-eight.bin", 8 * MiB);
  });

  beforeEach(() => log.clear());

  after(async () => {
    await children.killAll();
    await Promise.all([explicit?.close(), implicit?.close(), sshd?.close()]);
    await stack?.close();
    await cert?.close();
    if (work) await rm(work, { recursive: true, force: true });
  });

  for (const mode of ["explicit", "implicit"] as const) {
    const vhost = mode === "explicit" ? EXPLICIT : IMPLICIT;
    const server = () => (mode === "explicit" ? explicit : implicit);

    test(`curl --ssl-reqd, ${mode} FTPS: 16 MiB down (TLS 1.3) and 8 MiB up (TLS 1.2) over EPSV with TLS session reuse, SHA-256 ok`, async () => {
      const socks = { ...socksProxyOf(stack), remoteDns: true };
      const out = join(work, `curl-${mode}.bin`);
      const down = await curlFtps({
        url: ftpsUrl(mode, vhost.host, vhost.port, "/sixteen-mib.bin"),
        socks,
        output: out,
        extraArgs: ["-v"],
        timeoutMs: 60_000,
        registry: children,
      });
      await assertOk(down, () => server().readLog());
      assert.equal(await sha256File(out), big.sha256);
      // curl 7.88 asks for AUTH SSL first; vsftpd takes it (234) as the same TLS upgrade.
      if (mode === "explicit") assert.match(down.stderr, /> AUTH (SSL|TLS)\r?\n< 234 /, formatResult(down));
      assert.match(down.stderr, /> EPSV/, formatResult(down));
      assertCarried(log, {
        host: vhost.host,
        controlPort: vhost.port,
        minData: 1,
        dataPorts: server().pasvPorts,
      });

      log.clear();
      const name = `curl-${mode}-up.bin`;
      const up = await curlFtps({
        url: ftpsUrl(mode, vhost.host, vhost.port, `/upload/${name}`),
        socks,
        upload: upload.path,
        extraArgs: CURL_TLS12,
        timeoutMs: 60_000,
        registry: children,
      });
      await assertOk(up, () => server().readLog());
      assert.equal(await sha256File(join(server().uploadDir, name)), upload.sha256);
      assertCarried(log, {
        host: vhost.host,
        controlPort: vhost.port,
        minData: 1,
        dataPorts: server().pasvPorts,
      });
    });

    test(`curl --ssl-reqd --disable-epsv, ${mode} FTPS: the encrypted 227's 10.255.255.1 is skipped, SHA-256 ok`, async () => {
      const out = join(work, `curl-${mode}-pasv.bin`);
      const r = await curlFtps({
        url: ftpsUrl(mode, vhost.host, vhost.port, "/sixteen-mib.bin"),
        socks: { ...socksProxyOf(stack), remoteDns: true },
        output: out,
        disableEpsv: true,
        extraArgs: ["-v"],
        timeoutMs: 60_000,
        registry: children,
      });
      await assertOk(r, () => server().readLog());
      assert.match(r.stderr, /< 227 Entering Passive Mode \(10,255,255,1,/, formatResult(r));
      assert.equal(await sha256File(out), big.sha256);
      assertCarried(log, {
        host: vhost.host,
        controlPort: vhost.port,
        minData: 1,
        dataPorts: server().pasvPorts,
      });
    });

    test(`${mode} FTPS: vsftpd really demands TLS session reuse and encrypted data (curl --no-sessionid, --ftp-ssl-control fail)`, async () => {
      const socks = { ...socksProxyOf(stack), remoteDns: true };
      const noReuse = await curlFtps({
        url: ftpsUrl(mode, vhost.host, vhost.port, "/sixteen-mib.bin"),
        socks,
        output: join(work, "never.bin"),
        extraArgs: ["--no-sessionid", "-v"],
        timeoutMs: 30_000,
        registry: children,
      });
      assert.notEqual(noReuse.code, 0, formatResult(noReuse));
      assert.equal(noReuse.timedOut, false, formatResult(noReuse));
      // vsftpd may write its log line after curl has seen the 522 and exited: poll, bounded
      let vsftpdLog = "";
      await waitFor(
        async () => {
          vsftpdLog = await server().readLog();
          return /522 SSL connection failed: session reuse required/.test(vsftpdLog);
        },
        { timeoutMs: 10_000, what: () => `vsftpd to log the refused session reuse\n${vsftpdLog}` },
      );
      if (mode === "explicit") {
        // TLS on the control connection only: the server refuses PROT C data.
        const clearData = await curlFtp({
          url: ftpsUrl(mode, vhost.host, vhost.port, "/sixteen-mib.bin"),
          socks,
          output: join(work, "never.bin"),
          extraArgs: ["--ftp-ssl-control", "-k", "-v"],
          timeoutMs: 30_000,
          registry: children,
        });
        assert.notEqual(clearData.code, 0, formatResult(clearData));
        assert.match(clearData.stderr, /< 5\d\d .*(encrypt|Private)/i, formatResult(clearData));
      }
    });

    test(`lftp under proxychains4, ${mode} FTPS over TLS 1.2 (ssl-force, no cert check): ls, 16 MiB down, 8 MiB up, SHA-256 ok`, async () => {
      const out = join(work, `lftp-${mode}.bin`);
      const name = `lftp-${mode}-up.bin`;
      const r = await lftpFtps({
        socks: socksProxyOf(stack),
        script: [
          `open ${ftpsUrl(mode, vhost.host, vhost.port)}`,
          "ls",
          `get sixteen-mib.bin -o ${out}`,
          `put ${upload.path} -o upload/${name}`,
        ].join("\n"),
        settings: LFTP_TLS12,
        timeoutMs: 90_000,
        registry: children,
      });
      await assertOk(r, () => server().readLog());
      assert.match(r.stdout, /sixteen-mib\.bin/);
      assert.equal(await sha256File(out), big.sha256);
      assert.equal(await sha256File(join(server().uploadDir, name)), upload.sha256);
      assertCarried(log, {
        host: vhost.host,
        controlPort: vhost.port,
        minData: 3,
        dataPorts: server().pasvPorts,
      });
    });
  }

  test("sftp with a SOCKS5 ProxyCommand: ls, 16 MiB down, 8 MiB up, SHA-256 ok, host key pinned", async () => {
    const out = join(work, "sftp.bin");
    const r = await sftpBatch({
      host: SSH.host,
      port: SSH.port,
      login: sshd,
      socks: socksProxyOf(stack),
      commands: [
        `ls -l ${sshd.filesDir}`,
        `get ${sshd.filesDir}/sixteen-mib.bin ${out}`,
        `put ${upload.path} ${sshd.filesDir}/sftp-up.bin`,
      ],
      timeoutMs: 60_000,
      registry: children,
    });
    await assertOk(r, () => sshd.readLog());
    assert.match(r.stdout, /sixteen-mib\.bin/);
    assert.equal(await sha256File(out), big.sha256);
    assert.equal(await sha256File(join(sshd.filesDir, "sftp-up.bin")), upload.sha256);
    // One SSH connection carries everything: a single CONNECT.
    assertCarried(log, { host: SSH.host, controlPort: SSH.port, minData: 0, maxData: 0 });
  });

  for (const legacy of [false, true]) {
    const how = legacy ? "scp -O (the SCP protocol)" : "scp (SFTP underneath)";
    test(`${how} with a SOCKS5 ProxyCommand: 16 MiB down, 8 MiB up, SHA-256 ok`, async () => {
      const out = join(work, `scp-${legacy}.bin`);
      const common = { host: SSH.host, port: SSH.port, login: sshd, socks: socksProxyOf(stack), legacy };
      const down = await scpCopy({
        ...common,
        direction: "download",
        remotePath: `${sshd.filesDir}/sixteen-mib.bin`,
        localPath: out,
        timeoutMs: 60_000,
        registry: children,
      });
      await assertOk(down, () => sshd.readLog());
      assert.equal(await sha256File(out), big.sha256);
      const name = `scp-${legacy}-up.bin`;
      const up = await scpCopy({
        ...common,
        direction: "upload",
        remotePath: `${sshd.filesDir}/${name}`,
        localPath: upload.path,
        timeoutMs: 60_000,
        registry: children,
      });
      await assertOk(up, () => sshd.readLog());
      assert.equal(await sha256File(join(sshd.filesDir, name)), upload.sha256);
      // one SSH connection each way
      assertCarried(log, { host: SSH.host, controlPort: SSH.port, minData: 1, maxData: 1 });
    });
  }

  /** `sftp pwd` through the relay, expected to fail: bounded, not timed out. */
  async function sftpFails(host: string, login: SshdServer): Promise<SpawnResult> {
    const r = await sftpBatch({
      host,
      port: SSH.port,
      login,
      socks: socksProxyOf(stack),
      commands: ["pwd"],
      timeoutMs: 30_000,
      registry: children,
    });
    assert.notEqual(r.code, 0, formatResult(r));
    assert.equal(r.timedOut, false, formatResult(r));
    return r;
  }

  test("ssh refuses a server whose host key is not the pinned one (the ProxyCommand really reached sshd)", async () => {
    const other = await startSshd({ registry: children });
    try {
      // the right server behind the mapping, but the other server's pinned key
      const r = await sftpFails(SSH.host, { ...sshd, knownHostsFile: other.knownHostsFile });
      assert.match(r.stderr, /HOST IDENTIFICATION HAS CHANGED|Host key verification failed/, formatResult(r));
    } finally {
      await other.close();
    }
  });

  test("the ProxyCommand reports a refused CONNECT (no mapping) and sftp fails fast", async () => {
    const r = await sftpFails("unmapped.corp.test", sshd);
    assert.match(r.stderr, /socks-connect: unmapped\.corp\.test:22: .*NotAllowed/i, formatResult(r));
    assert.deepEqual(
      log.socksEvents().map((e) => [e.kind, e.destination]),
      [["denied", "unmapped.corp.test:22"]],
    );
  });
});
