/**
 * The second FTP server, proftpd, behind the relay and agent with plain mappings only (control
 * port 21 and the passive range), announcing an unroutable PASV address as behind NAT: curl
 * over EPSV and PASV, and lftp under proxychains4, download, upload and list, every byte
 * checked by SHA-256 and every SOCKS request read back from the relay's audit log.
 */
import assert from "node:assert/strict";
import { mkdtemp, rm } from "node:fs/promises";
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
import { socksProxyOf } from "../helpers/ftp-clients.js";
import {
  addPlainFtpMappings,
  type ProftpdServer,
  startProftpd,
  UNROUTABLE_PASV_ADDRESS,
} from "../helpers/ftp-servers.js";
import { freePortRange } from "../helpers/ports.js";
import { assertCarried, captureRelayLog, type RelayLog } from "../helpers/relay-log.js";
import { type Stack, startStack } from "../helpers/stack.js";
import { makeFile, sha256File } from "../helpers/vsftpd.js";

const MiB = 1024 * 1024;
const VHOST = "proftpd.corp.test";
/** The virtual control port; the agent dials proftpd's real one. */
const CONTROL = 21;

describe("proftpd behind plain mappings (control 21 + passive range), announcing 10.255.255.1", () => {
  const children = new ChildRegistry();
  let log: RelayLog;
  let stack: Stack;
  let ftp: ProftpdServer;
  let work: string;
  let big: { path: string; sha256: string; size: number };

  /** Every SOCKS request of the last client run was a granted CONNECT by name: control, then data ports. */
  function assertAllByName(r: SpawnResult, minData: number): void {
    assertCarried(
      log,
      { host: VHOST, controlPort: CONTROL, minData, dataPorts: ftp.pasvPorts },
      formatResult(r),
    );
  }

  /** curl through the relay by name (socks5h), bounded, tracked. */
  const curl = (o: Omit<CurlFtpOptions, "socks" | "timeoutMs" | "registry">) =>
    curlFtp({
      socks: { ...socksProxyOf(stack), remoteDns: true },
      timeoutMs: 60_000,
      registry: children,
      ...o,
    });

  function assertOk(r: SpawnResult): void {
    assert.equal(r.code, 0, `${formatResult(r)}\n${log.describe()}`);
  }

  before(async () => {
    log = captureRelayLog();
    stack = await startStack({ relay: { logger: log.logger, audit: log.audit } });
    ftp = await startProftpd({
      pasvPorts: await freePortRange(10),
      pasvAddress: UNROUTABLE_PASV_ADDRESS,
      registry: children,
    });
    await addPlainFtpMappings(stack, ftp, VHOST, CONTROL);
    work = await mkdtemp(join(tmpdir(), "underpass-proftpd-e2e-"));
    big = await makeFile(ftp.root, "sixteen-mib.bin", 16 * MiB);
  });

  beforeEach(() => log.clear());

  after(async () => {
    await children.killAll();
    await ftp?.close();
    await stack?.close();
    if (work) await rm(work, { recursive: true, force: true });
  });

  test("curl over EPSV downloads 16 MiB by the virtual host, SHA-256 ok", async () => {
    const out = join(work, "curl-epsv.bin");
    const r = await curl({
      url: `ftp://${VHOST}:${CONTROL}/sixteen-mib.bin`,
      output: out,
      extraArgs: ["-v"],
    });
    assertOk(r);
    assert.match(r.stderr, /< 229 Entering Extended Passive Mode \(\|\|\|\d+\|\)/, formatResult(r));
    assert.equal(await sha256File(out), big.sha256);
    assertAllByName(r, 1);
  });

  test("curl --disable-epsv skips 227's 10.255.255.1 and dials the virtual host, SHA-256 ok", async () => {
    const out = join(work, "curl-pasv.bin");
    const r = await curl({
      url: `ftp://${VHOST}:${CONTROL}/sixteen-mib.bin`,
      output: out,
      disableEpsv: true,
      extraArgs: ["-v"],
    });
    assertOk(r);
    assert.match(r.stderr, /< 227 Entering Passive Mode \(10,255,255,1,\d+,\d+\)/, formatResult(r));
    assert.equal(await sha256File(out), big.sha256);
    assertAllByName(r, 1);
  });

  test("curl uploads 16 MiB into upload/ over EPSV and PASV, SHA-256 ok on the server", async () => {
    const local = await makeFile(work, "upload-sixteen.bin", 16 * MiB);
    for (const disableEpsv of [false, true]) {
      log.clear();
      const name = disableEpsv ? "curl-pasv-up.bin" : "curl-epsv-up.bin";
      const r = await curl({
        url: `ftp://${VHOST}:${CONTROL}/upload/${name}`,
        upload: local.path,
        disableEpsv,
      });
      assertOk(r);
      assert.equal(await sha256File(join(ftp.uploadDir, name)), local.sha256, name);
      assertAllByName(r, 1);
    }
  });

  test("curl lists the root through a passive data connection", async () => {
    const r = await curl({ url: `ftp://${VHOST}:${CONTROL}/` });
    assertOk(r);
    assert.match(r.stdout, /sixteen-mib\.bin/);
    assert.match(r.stdout, /upload/);
    assertAllByName(r, 1);
  });

  test("lftp under proxychains4 lists, downloads and uploads 16 MiB, SHA-256 ok", async () => {
    const out = join(work, "lftp.bin");
    const local = await makeFile(work, "lftp-up.bin", 16 * MiB);
    const r = await lftpProxychains({
      socks: socksProxyOf(stack),
      script: [
        `open ftp://${VHOST}:${CONTROL}`,
        "ls",
        `get sixteen-mib.bin -o ${out}`,
        `put ${local.path} -o upload/lftp-up.bin`,
      ].join("\n"),
      timeoutMs: 90_000,
      registry: children,
    });
    assertOk(r);
    assert.match(r.stdout, /sixteen-mib\.bin/);
    assert.equal(await sha256File(out), big.sha256);
    assert.equal(await sha256File(join(ftp.uploadDir, "lftp-up.bin")), local.sha256);
    // lftp's ftp:fix-pasv-address swaps the private 227 address for the control peer, which
    // proxychains maps back to the name: ls, get and put each open a data connection by name.
    assertAllByName(r, 3);
  });
});
