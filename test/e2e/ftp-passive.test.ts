/**
 * Passive FTP through the whole chain: real curl and lftp (under proxychains4) → the relay's
 * SOCKS5 endpoint → the tunnel → the agent → a real vsftpd that announces an unroutable
 * address in its 227 replies, as a server behind NAT does. The clients only ever name the
 * virtual host; its control port and its passive range are two mappings.
 */
import assert from "node:assert/strict";
import { mkdtemp, readdir, rm, stat } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import {
  ChildRegistry,
  type CurlFtpOptions,
  curlFtp,
  formatResult,
  lftpProxychains,
  type SocksProxy,
  type SpawnResult,
} from "../helpers/clients.js";
import { freePortRange } from "../helpers/ports.js";
import { type Credentials, type Stack, socksReply, startStack } from "../helpers/stack.js";
import { makeFile, sha256File, startVsftpd, type VsftpdServer } from "../helpers/vsftpd.js";

const MiB = 1024 * 1024;
const VIRTUAL_HOST = "ftp.corp.example";
/** What the server announces in 227 replies: a private address no client can reach. */
const NAT_ADDRESS = "10.255.255.1";
/** CURLE_PROXY: the SOCKS5 handshake failed (curl ≥ 7.73). */
const CURLE_PROXY = 97;
/** Bound on one client run, in ms (a loaded 2-core machine moves 24 MiB in well under this). */
const CLIENT_TIMEOUT_MS = 90_000;

function assertOk(r: SpawnResult): void {
  assert.equal(r.code, 0, formatResult(r));
  assert.equal(r.timedOut, false, formatResult(r));
}

/** Size of a file, or -1 when there is none. */
async function sizeOf(path: string): Promise<number> {
  return stat(path).then(
    (s) => s.size,
    () => -1,
  );
}

describe("passive FTP through relay and agent, server behind NAT (227 announces 10.255.255.1)", () => {
  const children = new ChildRegistry();
  let ftp: VsftpdServer;
  let stack: Stack;
  let work: string;
  let big: { path: string; sha256: string; size: number };
  let range = "";

  const socks = (creds: Credentials = stack.client): SocksProxy & { remoteDns: true } => ({
    host: "127.0.0.1",
    port: stack.socksPort,
    username: creds.username,
    password: creds.password,
    remoteDns: true,
  });
  const curl = (path: string, o: Partial<CurlFtpOptions> = {}): Promise<SpawnResult> =>
    curlFtp({
      url: `ftp://${VIRTUAL_HOST}${path}`,
      socks: socks(),
      timeoutMs: CLIENT_TIMEOUT_MS,
      registry: children,
      ...o,
    });
  const lftpScript = (...commands: string[]): Promise<SpawnResult> =>
    lftpProxychains({
      socks: socks(),
      script: [`open ftp://${VIRTUAL_HOST}`, ...commands].join("\n"),
      timeoutMs: CLIENT_TIMEOUT_MS,
      registry: children,
    });

  before(async () => {
    work = await mkdtemp(join(tmpdir(), "underpass-e2e-ftp-"));
    const pasvPorts = await freePortRange(20);
    range = `${pasvPorts.start}-${pasvPorts.end}`;
    ftp = await startVsftpd({ pasvPorts, pasvAddress: NAT_ADDRESS, allowUpload: true, registry: children });
    big = await makeFile(ftp.root, "big.bin", 24 * MiB);
    await makeFile(ftp.root, "empty.bin", 0);
    await makeFile(ftp.root, "notes.txt", 1000);
    // The premises allow exactly the FTP server's control port and passive range.
    stack = await startStack({ allow: `127.0.0.1:${ftp.port},${range}` });
    await stack.addMapping({
      virtualHost: VIRTUAL_HOST,
      virtualPort: 21,
      internalHost: "127.0.0.1",
      internalPort: ftp.port,
      description: "FTP control",
    });
    // vsftpd names its real passive port; the virtual range is the same numbers.
    await stack.addMapping({
      virtualHost: VIRTUAL_HOST,
      virtualPort: range,
      internalHost: "127.0.0.1",
      internalPort: range,
      description: "FTP passive data ports",
    });
  });

  after(async () => {
    await children.killAll();
    await stack?.close();
    await ftp?.close();
    if (work) await rm(work, { recursive: true, force: true });
  });

  it("curl over EPSV downloads 24 MiB intact (SHA-256)", async () => {
    const out = join(work, "curl-epsv.bin");
    const r = await curl("/big.bin", { output: out, extraArgs: ["-v"] });
    assertOk(r);
    assert.match(r.stderr, /> EPSV/, "curl should have used EPSV");
    assert.equal(await sizeOf(out), big.size);
    assert.equal(await sha256File(out), big.sha256);
  });

  it("curl over PASV (--disable-epsv) skips the NAT address and downloads 24 MiB intact", async () => {
    const out = join(work, "curl-pasv.bin");
    const r = await curl("/big.bin", { output: out, disableEpsv: true, extraArgs: ["-v"] });
    assertOk(r);
    assert.doesNotMatch(r.stderr, /> EPSV/);
    assert.match(
      r.stderr,
      /227 Entering Passive Mode \(10,255,255,1,/,
      "the server announced the NAT address",
    );
    assert.equal(await sha256File(out), big.sha256);
  });

  it("lftp under proxychains4 (PASV, private address fixed to the control peer) downloads 24 MiB intact", async () => {
    const out = join(work, "lftp.bin");
    const r = await lftpScript(`get big.bin -o ${out}`);
    assertOk(r);
    assert.equal(await sha256File(out), big.sha256);
  });

  it("curl -T uploads 16 MiB and the server stores the same bytes", async () => {
    const local = await makeFile(work, "curl-up.bin", 16 * MiB);
    const r = await curl("/upload/", { upload: local.path });
    assertOk(r);
    assert.equal(await sha256File(join(ftp.uploadDir, "curl-up.bin")), local.sha256);
  });

  it("lftp put uploads 16 MiB and the server stores the same bytes", async () => {
    const local = await makeFile(work, "lftp-up.bin", 16 * MiB);
    const r = await lftpScript("cd upload", `put ${local.path} -o lftp-up.bin`);
    assertOk(r);
    assert.equal(await sha256File(join(ftp.uploadDir, "lftp-up.bin")), local.sha256);
  });

  it("an empty file downloads as 0 bytes with exit code 0 (curl and lftp)", async () => {
    const viaCurl = join(work, "empty-curl.bin");
    const r = await curl("/empty.bin", { output: viaCurl });
    assertOk(r);
    assert.equal(await sizeOf(viaCurl), 0);
    const viaLftp = join(work, "empty-lftp.bin");
    const l = await lftpScript(`get empty.bin -o ${viaLftp}`);
    assertOk(l);
    assert.equal(await sizeOf(viaLftp), 0);
  });

  it("a directory listing names every file (curl and lftp)", async () => {
    const names = (await readdir(ftp.root)).sort();
    assert.deepEqual(names, ["big.bin", "empty.bin", "notes.txt", "upload"]);
    const r = await curl("/", { extraArgs: ["--list-only"] });
    assertOk(r);
    assert.deepEqual(r.stdout.trim().split(/\r?\n/).sort(), names);
    const l = await lftpScript("cls -1");
    assertOk(l);
    assert.deepEqual(
      l.stdout
        .trim()
        .split(/\r?\n/)
        .map((n) => n.replace(/\/$/, ""))
        .sort(),
      names,
    );
  });

  it("8 parallel curl downloads of 24 MiB all arrive intact", async () => {
    const outs = Array.from({ length: 8 }, (_, i) => join(work, `parallel-${i}.bin`));
    const results = await Promise.all(
      outs.map((out, i) => curl("/big.bin", { output: out, disableEpsv: i % 2 === 1 })),
    );
    for (const r of results) assertOk(r);
    for (const out of outs) assert.equal(await sha256File(out), big.sha256, out);
  });

  describe("denials", () => {
    it("an unmapped port on the virtual host: SOCKS reply 0x02, curl exit 97", async () => {
      const { reply, socket } = await socksReply(stack.socksPort, stack.client, VIRTUAL_HOST, 2121);
      socket.destroy();
      assert.equal(reply, 0x02);
      const r = await curlFtp({
        url: `ftp://${VIRTUAL_HOST}:2121/big.bin`,
        socks: socks(),
        output: join(work, "denied-port.bin"),
        timeoutMs: 20_000,
        registry: children,
      });
      assert.equal(r.code, CURLE_PROXY, formatResult(r));
      assert.equal(await sizeOf(join(work, "denied-port.bin")), -1);
    });

    it("an unmapped host: SOCKS reply 0x02, curl exit 97", async () => {
      const { reply, socket } = await socksReply(stack.socksPort, stack.client, "ftp.other.example", 21);
      socket.destroy();
      assert.equal(reply, 0x02);
      const r = await curlFtp({
        url: "ftp://ftp.other.example/big.bin",
        socks: socks(),
        timeoutMs: 20_000,
        registry: children,
      });
      assert.equal(r.code, CURLE_PROXY, formatResult(r));
      assert.equal(r.stdout, "");
    });

    it("the internal address used directly (127.0.0.1:<vsftpd port>): SOCKS reply 0x02, curl exit 97", async () => {
      const { reply, socket } = await socksReply(stack.socksPort, stack.client, "127.0.0.1", ftp.port);
      socket.destroy();
      assert.equal(reply, 0x02);
      const r = await curlFtp({
        url: `ftp://127.0.0.1:${ftp.port}/big.bin`,
        socks: { ...socks(), remoteDns: false },
        timeoutMs: 20_000,
        registry: children,
      });
      assert.equal(r.code, CURLE_PROXY, formatResult(r));
      assert.equal(r.stdout, "");
    });

    it("bad SOCKS credentials are refused: curl exit 97, no bytes", async () => {
      const out = join(work, "bad-creds.bin");
      const bad = { username: stack.client.username, password: `${stack.client.password}x` };
      const { reply, socket } = await socksReply(stack.socksPort, bad, VIRTUAL_HOST, 21);
      socket.destroy();
      assert.equal(reply, "auth-failed");
      const r = await curlFtp({
        url: `ftp://${VIRTUAL_HOST}/big.bin`,
        socks: socks(bad),
        output: out,
        timeoutMs: 20_000,
        registry: children,
      });
      assert.equal(r.code, CURLE_PROXY, formatResult(r));
      assert.equal(await sizeOf(out), -1, "no output file");
    });

    it("no agent connected for the client's location: SOCKS reply 0x03, curl exit 97", async () => {
      const branch = await stack.addClient("flow-branch", "branch-b");
      await stack.addMapping({
        virtualHost: VIRTUAL_HOST,
        virtualPort: 21,
        internalHost: "127.0.0.1",
        internalPort: ftp.port,
        location: "branch-b",
      });
      const { reply, socket } = await socksReply(stack.socksPort, branch, VIRTUAL_HOST, 21);
      socket.destroy();
      assert.equal(reply, 0x03);
      const r = await curlFtp({
        url: `ftp://${VIRTUAL_HOST}/big.bin`,
        socks: socks(branch),
        timeoutMs: 20_000,
        registry: children,
      });
      assert.equal(r.code, CURLE_PROXY, formatResult(r));
      assert.equal(r.stdout, "");
    });
  });
});
