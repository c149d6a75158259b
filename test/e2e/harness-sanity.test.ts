/**
 * Proves the end-to-end harness without Underpass: a real vsftpd, real curl and lftp, and
 * (through a minimal SOCKS5 server local to this file) the proxy paths the e2e tests use —
 * curl's `--proxy socks5h://` and lftp under proxychains4.
 */
import assert from "node:assert/strict";
import { mkdtemp, rm } from "node:fs/promises";
import { createServer, type Server, Socket } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import {
  ChildRegistry,
  curlFtp,
  formatResult,
  lftp,
  lftpProxychains,
  type SpawnResult,
} from "../helpers/clients.js";
import { freePortRange, waitFor, waitForPort } from "../helpers/ports.js";
import { makeFile, sha256File, startVsftpd, type VsftpdServer } from "../helpers/vsftpd.js";

const MiB = 1024 * 1024;
/**
 * A name only the test SOCKS server knows (it means 127.0.0.1): a client that reaches the FTP
 * server by this name must have let the proxy resolve it. Not "localhost": proxychains4
 * resolves names from /etc/hosts locally even with proxy_dns.
 */
const VIRTUAL_HOST = "ftp.harness.test";

function assertOk(r: SpawnResult): void {
  assert.equal(r.code, 0, formatResult(r));
}

// ---------------------------------------------------------------------------------------------
// A minimal SOCKS5 server (RFC 1928 CONNECT + RFC 1929 username/password), enough to check
// that the clients really go through a proxy. Not Underpass.

interface MiniSocks {
  port: number;
  /** `host:port` of every CONNECT, as the client sent it. */
  destinations: string[];
  /** Usernames that authenticated. */
  users: string[];
  close(): Promise<void>;
}

function byteReader(sock: Socket) {
  let buf = Buffer.alloc(0);
  let wake: (() => void) | undefined;
  let ended = false;
  const onData = (d: Buffer) => {
    buf = Buffer.concat([buf, d]);
    wake?.();
  };
  sock.on("data", onData);
  sock.once("close", () => {
    ended = true;
    wake?.();
  });
  return {
    async read(n: number): Promise<Buffer> {
      while (buf.length < n) {
        if (ended) throw new Error("client went away mid-handshake");
        await new Promise<void>((r) => (wake = r));
        wake = undefined;
      }
      const out = buf.subarray(0, n);
      buf = buf.subarray(n);
      return out;
    },
    /** Stops reading; returns bytes received past the handshake. */
    detach(): Buffer {
      sock.off("data", onData);
      return buf;
    },
  };
}

async function startMiniSocks(username: string, password: string): Promise<MiniSocks> {
  const destinations: string[] = [];
  const users: string[] = [];
  const sockets = new Set<Socket>();
  const server: Server = createServer((client) => {
    sockets.add(client);
    client.once("close", () => sockets.delete(client));
    client.on("error", () => {});
    void handshake(client).catch(() => client.destroy());
  });

  async function handshake(client: Socket): Promise<void> {
    const r = byteReader(client);
    const [ver, nMethods] = await r.read(2); // VER NMETHODS
    const methods = await r.read(nMethods ?? 0);
    if (ver !== 0x05 || !methods.includes(0x02)) {
      client.end(Buffer.from([0x05, 0xff])); // no acceptable method
      return;
    }
    client.write(Buffer.from([0x05, 0x02])); // USERNAME/PASSWORD
    const [, uLen] = await r.read(2); // VER(0x01) ULEN
    const user = (await r.read(uLen ?? 0)).toString("utf8");
    const [pLen] = await r.read(1);
    const pass = (await r.read(pLen ?? 0)).toString("utf8");
    if (user !== username || pass !== password) {
      client.end(Buffer.from([0x01, 0x01]));
      return;
    }
    users.push(user);
    client.write(Buffer.from([0x01, 0x00]));
    const [, cmd, , atyp] = await r.read(4); // VER CMD RSV ATYP
    let host: string;
    if (atyp === 0x01) host = [...(await r.read(4))].join(".");
    else if (atyp === 0x03) host = (await r.read((await r.read(1))[0] ?? 0)).toString("latin1");
    else {
      client.end(Buffer.from([0x05, 0x08, 0x00, 0x01, 0, 0, 0, 0, 0, 0])); // address type not supported
      return;
    }
    const port = (await r.read(2)).readUInt16BE(0);
    destinations.push(`${host}:${port}`);
    if (cmd !== 0x01) {
      client.end(Buffer.from([0x05, 0x07, 0x00, 0x01, 0, 0, 0, 0, 0, 0])); // command not supported
      return;
    }
    const upstream = new Socket();
    sockets.add(upstream);
    upstream.once("close", () => sockets.delete(upstream));
    upstream.once("error", () => {
      client.end(Buffer.from([0x05, 0x05, 0x00, 0x01, 0, 0, 0, 0, 0, 0])); // connection refused
    });
    upstream.connect(port, host === VIRTUAL_HOST ? "127.0.0.1" : host, () => {
      upstream.removeAllListeners("error");
      upstream.on("error", () => client.destroy());
      client.on("error", () => upstream.destroy());
      // 4 header + 4 IPv4 + 2 port; the bound address does not matter to these clients.
      client.write(Buffer.from([0x05, 0x00, 0x00, 0x01, 0, 0, 0, 0, 0, 0]));
      const rest = r.detach();
      if (rest.length > 0) upstream.write(rest);
      client.pipe(upstream);
      upstream.pipe(client);
    });
  }

  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const addr = server.address();
  assert.ok(addr !== null && typeof addr === "object");
  return {
    port: addr.port,
    destinations,
    users,
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
}

// ---------------------------------------------------------------------------------------------

describe("harness: vsftpd announcing 127.0.0.1", () => {
  const children = new ChildRegistry();
  let ftp: VsftpdServer;
  let work: string;
  let big: { path: string; sha256: string; size: number };

  before(async () => {
    work = await mkdtemp(join(tmpdir(), "underpass-sanity-"));
    const pasvPorts = await freePortRange(10);
    ftp = await startVsftpd({ pasvPorts, pasvAddress: "127.0.0.1", allowUpload: true, registry: children });
    big = await makeFile(ftp.root, "four-mib.bin", 4 * MiB);
  });

  after(async () => {
    await children.killAll();
    await ftp?.close();
    if (work) await rm(work, { recursive: true, force: true });
  });

  test("vsftpd answers with a 220 banner on its port", async () => {
    await waitForPort(ftp.port, ftp.host, 2000);
    assert.match(await ftp.readLog(), /220 \(vsFTPd/);
  });

  test("curl downloads 4 MiB over EPSV", async () => {
    const out = join(work, "epsv.bin");
    const r = await curlFtp({
      url: ftp.url("/four-mib.bin"),
      output: out,
      extraArgs: ["-v"],
      timeoutMs: 30_000,
      registry: children,
    });
    assertOk(r);
    assert.match(r.stderr, /> EPSV/, "curl should have used EPSV");
    assert.equal(await sha256File(out), big.sha256);
  });

  test("curl downloads over PASV with --disable-epsv, to the announced address", async () => {
    const out = join(work, "pasv.bin");
    const r = await curlFtp({
      url: ftp.url("/four-mib.bin"),
      output: out,
      disableEpsv: true,
      extraArgs: ["-v"],
      timeoutMs: 30_000,
      registry: children,
    });
    assertOk(r);
    assert.doesNotMatch(r.stderr, /> EPSV/);
    const m = /227 Entering Passive Mode \((\d+),(\d+),(\d+),(\d+),(\d+),(\d+)\)/.exec(r.stderr);
    assert.ok(m, formatResult(r));
    assert.equal(m.slice(1, 5).join("."), "127.0.0.1");
    const dataPort = Number(m[5]) * 256 + Number(m[6]);
    assert.ok(dataPort >= ftp.pasvPorts.start && dataPort <= ftp.pasvPorts.end, `data port ${dataPort}`);
    assert.equal(await sha256File(out), big.sha256);
  });

  test("curl lists the root directory", async () => {
    const r = await curlFtp({ url: ftp.url("/"), timeoutMs: 15_000, registry: children });
    assertOk(r);
    assert.match(r.stdout, /four-mib\.bin/);
    assert.match(r.stdout, /upload/);
  });

  test("curl uploads 2 MiB into upload/ and the server stores the same bytes", async () => {
    const local = await makeFile(work, "two-mib.bin", 2 * MiB);
    const r = await curlFtp({
      url: ftp.url("/upload/"),
      upload: local.path,
      timeoutMs: 30_000,
      registry: children,
    });
    assertOk(r);
    assert.equal(await sha256File(join(ftp.uploadDir, "two-mib.bin")), local.sha256);
  });

  test("curl in active mode (PORT) downloads", async () => {
    const out = join(work, "active.bin");
    const r = await curlFtp({
      url: ftp.url("/four-mib.bin"),
      output: out,
      extraArgs: ["--ftp-port", "127.0.0.1", "--disable-eprt", "-v"],
      timeoutMs: 30_000,
      registry: children,
    });
    assertOk(r);
    assert.match(r.stderr, /> PORT 127,0,0,1,/);
    assert.equal(await sha256File(out), big.sha256);
  });

  test("the root is not writable and a missing file fails fast", async () => {
    const local = await makeFile(work, "refused.bin", 1024);
    const up = await curlFtp({
      url: ftp.url("/refused.bin"),
      upload: local.path,
      timeoutMs: 15_000,
      registry: children,
    });
    assert.notEqual(up.code, 0, formatResult(up));
    const get = await curlFtp({
      url: ftp.url("/missing.bin"),
      output: join(work, "missing"),
      timeoutMs: 15_000,
      registry: children,
    });
    assert.equal(get.code, 78, formatResult(get)); // CURLE_REMOTE_FILE_NOT_FOUND
  });

  test("lftp (direct) lists and downloads", async () => {
    const out = join(work, "lftp.bin");
    const r = await lftp({
      script: [`open ${ftp.url("/")}`, "ls", `get four-mib.bin -o ${out}`].join("\n"),
      timeoutMs: 30_000,
      registry: children,
    });
    assertOk(r);
    assert.match(r.stdout, /four-mib\.bin/);
    assert.equal(await sha256File(out), big.sha256);
  });

  test("lftp (direct) exits non-zero at the first failing command", async () => {
    const r = await lftp({
      script: [`open ${ftp.url("/")}`, "get missing.bin -o /dev/null", "echo not-reached"].join("\n"),
      timeoutMs: 30_000,
      registry: children,
    });
    assert.notEqual(r.code, 0, formatResult(r));
    assert.equal(r.timedOut, false, formatResult(r));
    assert.doesNotMatch(r.stdout, /not-reached/);
  });

  test("close() also ends session processes (vsftpd sessions leave the process group)", async () => {
    const other = await startVsftpd({
      pasvPorts: await freePortRange(2),
      allowUpload: false,
      registry: children,
    });
    const control = new Socket();
    try {
      // A session left waiting in accept() on its passive port, as after a client gave up.
      let seen = "";
      const got = (re: RegExp) =>
        waitFor(() => re.test(seen), {
          timeoutMs: 5000,
          what: () => `${re} from vsftpd (got ${JSON.stringify(seen)})`,
        });
      control.on("data", (d: Buffer) => (seen += d.toString("latin1")));
      control.on("error", () => {});
      control.connect(other.port, other.host);
      await got(/^220 /m);
      control.write("USER anonymous\r\nPASS x\r\n");
      await got(/^230 /m);
      control.write("PASV\r\n");
      await got(/^227 /m);
      assert.ok(other.processes().length >= 2, "listener and session should be running");
      await other.close();
      assert.deepEqual(other.processes(), []);
    } finally {
      control.destroy();
      await other.close();
    }
  });

  describe("through a SOCKS5 proxy", () => {
    // Characters that must be URL-encoded in curl's --proxy URL; no spaces or '#' (proxychains).
    const username = "harness@user:x";
    const password = "p:ss/w%rd@?&=";
    let socks: MiniSocks;

    before(async () => {
      socks = await startMiniSocks(username, password);
    });
    after(async () => {
      await socks?.close();
    });

    test("curl --proxy socks5h:// downloads (remote DNS, URL-encoded credentials)", async () => {
      socks.destinations.length = 0;
      const out = join(work, "socks-curl.bin");
      const r = await curlFtp({
        url: `ftp://${VIRTUAL_HOST}:${ftp.port}/four-mib.bin`,
        socks: { host: "127.0.0.1", port: socks.port, username, password, remoteDns: true },
        output: out,
        timeoutMs: 30_000,
        registry: children,
      });
      assertOk(r);
      assert.ok(!r.command.includes(encodeURIComponent(password)), "the password must not reach the log");
      assert.equal(await sha256File(out), big.sha256);
      // Control and data connection both went through the proxy, by name.
      assert.equal(socks.destinations[0], `${VIRTUAL_HOST}:${ftp.port}`);
      assert.ok(socks.destinations.length >= 2, socks.destinations.join(", "));
      assert.ok(socks.users.includes(username));
    });

    test("curl --proxy socks5:// with a wrong password fails", async () => {
      const r = await curlFtp({
        url: `ftp://127.0.0.1:${ftp.port}/four-mib.bin`,
        socks: { host: "127.0.0.1", port: socks.port, username, password: "wrong", remoteDns: false },
        output: join(work, "never.bin"),
        timeoutMs: 15_000,
        registry: children,
      });
      assert.equal(r.code, 97, formatResult(r)); // CURLE_PROXY
    });

    test("lftp under proxychains4 lists and downloads (proxy_dns)", async () => {
      socks.destinations.length = 0;
      const out = join(work, "socks-lftp.bin");
      const r = await lftpProxychains({
        socks: { host: "127.0.0.1", port: socks.port, username, password },
        script: [`open ftp://${VIRTUAL_HOST}:${ftp.port}`, "ls", `get four-mib.bin -o ${out}`].join("\n"),
        timeoutMs: 30_000,
        registry: children,
      });
      assertOk(r);
      assert.match(r.stdout, /four-mib\.bin/);
      assert.equal(await sha256File(out), big.sha256);
      assert.equal(socks.destinations[0], `${VIRTUAL_HOST}:${ftp.port}`, socks.destinations.join(", "));
      const dataPorts = socks.destinations.slice(1).map((d) => Number(d.split(":").pop()));
      assert.ok(dataPorts.length >= 2, socks.destinations.join(", ")); // ls + get
      for (const p of dataPorts)
        assert.ok(p >= ftp.pasvPorts.start && p <= ftp.pasvPorts.end, `data port ${p}`);
    });
  });
});

describe("harness: vsftpd announcing an unroutable address (10.255.255.1)", () => {
  const children = new ChildRegistry();
  let ftp: VsftpdServer;
  let work: string;
  let file: { path: string; sha256: string; size: number };

  before(async () => {
    work = await mkdtemp(join(tmpdir(), "underpass-sanity-nat-"));
    ftp = await startVsftpd({
      pasvPorts: await freePortRange(5),
      pasvAddress: "10.255.255.1",
      allowUpload: false,
      registry: children,
    });
    file = await makeFile(ftp.root, "one-mib.bin", MiB);
  });

  after(async () => {
    await children.killAll();
    await ftp?.close();
    if (work) await rm(work, { recursive: true, force: true });
  });

  test("curl --disable-epsv ignores the 227 address and works; trusting it fails", async () => {
    const ok = join(work, "ok.bin");
    const skipping = await curlFtp({
      url: ftp.url("/one-mib.bin"),
      output: ok,
      disableEpsv: true,
      extraArgs: ["-v"],
      timeoutMs: 15_000,
      registry: children,
    });
    assertOk(skipping);
    assert.match(skipping.stderr, /227 Entering Passive Mode \(10,255,255,1,/);
    assert.equal(await sha256File(ok), file.sha256);

    const trusting = await curlFtp({
      url: ftp.url("/one-mib.bin"),
      output: join(work, "never.bin"),
      disableEpsv: true, // with EPSV there is no address to trust and the download would work
      extraArgs: ["--ftp-pasv", "--no-ftp-skip-pasv-ip", "-v"],
      // curl 7.88 does not apply --connect-timeout to the data connection: only --max-time
      // bounds a SYN to an unroutable address, so both are ~5 s here.
      connectTimeoutMs: 5000,
      timeoutMs: 5000,
      registry: children,
    });
    // 7 = could not connect (refused or unreachable), 28 = timed out (SYN into the void).
    assert.ok(trusting.code === 7 || trusting.code === 28, formatResult(trusting));
    assert.equal(trusting.timedOut, false, formatResult(trusting));
    assert.match(trusting.stderr, /Trying 10\.255\.255\.1:/, formatResult(trusting));
  });

  test("lftp under proxychains4 replaces the private 227 address with the virtual host", async () => {
    // lftp's ftp:fix-pasv-address (default on) swaps a private PASV address for the control
    // peer — here proxychains' 224.x.x.x stand-in, which it maps back to the name.
    const socks = await startMiniSocks("u", "p");
    try {
      const out = join(work, "lftp-nat.bin");
      const r = await lftpProxychains({
        socks: { host: "127.0.0.1", port: socks.port, username: "u", password: "p" },
        script: [`open ftp://${VIRTUAL_HOST}:${ftp.port}`, `get one-mib.bin -o ${out}`].join("\n"),
        timeoutMs: 20_000,
        registry: children,
      });
      assertOk(r);
      assert.equal(await sha256File(out), file.sha256);
      const [control, ...data] = socks.destinations;
      assert.equal(control, `${VIRTUAL_HOST}:${ftp.port}`);
      assert.ok(data.length >= 1, socks.destinations.join(", "));
      for (const d of data) assert.ok(d.startsWith(`${VIRTUAL_HOST}:`), socks.destinations.join(", "));
    } finally {
      await socks.close();
    }
  });

  test("curl over EPSV never sees the announced address and works", async () => {
    const out = join(work, "epsv.bin");
    const r = await curlFtp({
      url: ftp.url("/one-mib.bin"),
      output: out,
      extraArgs: ["--no-ftp-skip-pasv-ip"],
      timeoutMs: 15_000,
      registry: children,
    });
    assertOk(r);
    assert.equal(await sha256File(out), file.sha256);
  });
});
