import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { createHash, randomBytes } from "node:crypto";
import { once } from "node:events";
import { mkdir, mkdtemp, readFile, rm, stat, symlink, writeFile } from "node:fs/promises";
import net from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { PassThrough, Readable } from "node:stream";
import { after, before, describe, it } from "node:test";
import { Client, enterPassiveModeIPv4, enterPassiveModeIPv6, FTPError } from "basic-ftp";
import {
  type DemoFtpServer,
  type DemoFtpServerOptions,
  startDemoFtpServer,
} from "../../cli/demo/ftp-server.js";
import { formatLongHostPort, parseLprtAddress } from "../../shared/ftp/data-address.js";

const TEST_TIMEOUT = { timeout: 30_000 };
const sha256 = (data: Buffer) => createHash("sha256").update(data).digest("hex");

// ---- helpers -------------------------------------------------------------------------------

interface Reply {
  code: number;
  lines: string[];
}

/** A bare control connection, to send exactly the bytes a test wants and read each reply. */
class RawFtp {
  private buffer = "";
  private readonly lines: string[] = [];
  private waiting: ((line: string | undefined) => void) | undefined;
  private ended = false;

  private constructor(readonly socket: net.Socket) {
    socket.setEncoding("utf8");
    socket.on("data", (text: string) => {
      this.buffer += text;
      for (let i = this.buffer.indexOf("\r\n"); i >= 0; i = this.buffer.indexOf("\r\n")) {
        this.push(this.buffer.slice(0, i));
        this.buffer = this.buffer.slice(i + 2);
      }
    });
    socket.on("close", () => {
      this.ended = true;
      this.waiting?.(undefined);
    });
    socket.on("error", () => {});
  }

  static async connect(port: number): Promise<RawFtp> {
    const socket = net.connect({ host: "127.0.0.1", port });
    await once(socket, "connect");
    const raw = new RawFtp(socket);
    assert.equal((await raw.read()).code, 220);
    return raw;
  }

  private push(line: string): void {
    const waiter = this.waiting;
    this.waiting = undefined;
    if (waiter) waiter(line);
    else this.lines.push(line);
  }

  private async readLine(): Promise<string> {
    const line =
      this.lines.shift() ??
      (this.ended ? undefined : await new Promise<string | undefined>((r) => (this.waiting = r)));
    if (line === undefined) throw new Error("control connection closed");
    return line;
  }

  /** The next reply, multi-line replies (RFC 959 §4.2) included. */
  async read(): Promise<Reply> {
    const first = await this.readLine();
    const lines = [first];
    if (first[3] === "-") {
      const end = `${first.slice(0, 3)} `;
      while (!lines[lines.length - 1]!.startsWith(end)) lines.push(await this.readLine());
    }
    return { code: Number(first.slice(0, 3)), lines };
  }

  /** Reply lines received and not read yet. */
  get buffered(): number {
    return this.lines.length + (this.buffer.length > 0 ? 1 : 0);
  }

  write(data: string | Buffer): void {
    this.socket.write(data);
  }

  async send(command: string): Promise<Reply> {
    this.write(`${command}\r\n`);
    return this.read();
  }

  async login(user = "anonymous", password = "guest@example.com"): Promise<void> {
    assert.equal((await this.send(`USER ${user}`)).code, 331);
    assert.equal((await this.send(`PASS ${password}`)).code, 230);
  }

  /** EPSV and connect the data connection. */
  async passiveData(): Promise<net.Socket> {
    const reply = await this.send("EPSV");
    assert.equal(reply.code, 229);
    const port = Number(/\(\|\|\|(\d+)\|\)/.exec(reply.lines[0]!)![1]);
    const data = net.connect({ host: "127.0.0.1", port });
    data.on("error", () => {});
    await once(data, "connect");
    return data;
  }

  close(): void {
    this.socket.destroy();
  }
}

async function collect(socket: net.Socket): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of socket) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

async function curl(args: string[]): Promise<{ status: number | null; stdout: Buffer; stderr: string }> {
  const child = spawn("curl", ["-sS", "-v", "--max-time", "20", ...args], {
    stdio: ["ignore", "pipe", "pipe"],
  });
  const stdout: Buffer[] = [];
  let stderr = "";
  child.stdout.on("data", (c: Buffer) => stdout.push(c));
  child.stderr.on("data", (c: Buffer) => (stderr += c.toString()));
  const [status] = (await once(child, "close")) as [number | null];
  return { status, stdout: Buffer.concat(stdout), stderr };
}

async function connectClient(
  server: DemoFtpServer,
  strategy = enterPassiveModeIPv6,
  user?: [string, string],
) {
  const client = new Client(10_000);
  await client.access({ host: "127.0.0.1", port: server.port, user: user?.[0], password: user?.[1] });
  client.prepareTransfer = strategy;
  return client;
}

async function listen(port: number): Promise<net.Server> {
  const server = net.createServer();
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen({ host: "127.0.0.1", port }, () => resolve());
  });
  return server;
}

async function closeServer(server: net.Server): Promise<void> {
  await new Promise<void>((resolve) => server.close(() => resolve()));
}

/** Listeners on `count` consecutive free ports. */
async function holdConsecutivePorts(count: number): Promise<net.Server[]> {
  for (let attempt = 0; attempt < 50; attempt++) {
    const first = await listen(0);
    const base = (first.address() as net.AddressInfo).port;
    const held = [first];
    try {
      for (let i = 1; i < count; i++) held.push(await listen(base + i));
      return held;
    } catch {
      await Promise.all(held.map(closeServer));
    }
  }
  throw new Error(`no ${count} consecutive free ports`);
}

// ---- fixture -------------------------------------------------------------------------------

let base: string;
let root: string;
const big = randomBytes(5 * 1024 * 1024);
const started: DemoFtpServer[] = [];

async function start(options: Partial<DemoFtpServerOptions> = {}): Promise<DemoFtpServer> {
  const server = await startDemoFtpServer({ root, allowUpload: true, ...options });
  started.push(server);
  return server;
}

before(async () => {
  base = await mkdtemp(join(tmpdir(), "underpass-ftp-"));
  root = join(base, "root");
  await mkdir(join(root, "sub"), { recursive: true });
  await writeFile(join(root, "hello.txt"), "hello, ftp\n");
  await writeFile(join(root, "big.bin"), big);
  await writeFile(join(root, "sub", "lines.txt"), "a\nb\r\nc\n");
  await writeFile(join(base, "secret.txt"), "outside the root");
  await symlink(join(base, "secret.txt"), join(root, "escape-file"));
  await symlink(base, join(root, "escape-dir"));
  await symlink(join(root, "hello.txt"), join(root, "inside-link"));
});

after(async () => {
  await Promise.all(started.map((s) => s.close()));
  await rm(base, { recursive: true, force: true });
});

// ---- tests ---------------------------------------------------------------------------------

describe("demo FTP server with basic-ftp", () => {
  for (const [mode, strategy] of [
    ["EPSV", enterPassiveModeIPv6],
    ["PASV", enterPassiveModeIPv4],
  ] as const) {
    it(`${mode}: uploads and downloads a 5 MiB random file intact`, TEST_TIMEOUT, async () => {
      const server = await start();
      const client = await connectClient(server, strategy);
      try {
        await client.uploadFrom(Readable.from([big]), `up-${mode}.bin`);
        assert.equal(sha256(await readFile(join(root, `up-${mode}.bin`))), sha256(big));
        const sink = new PassThrough();
        const chunks: Buffer[] = [];
        sink.on("data", (c: Buffer) => chunks.push(c));
        await client.downloadTo(sink, `up-${mode}.bin`);
        assert.equal(sha256(Buffer.concat(chunks)), sha256(big));
        assert.equal(await client.size(`up-${mode}.bin`), big.length);
      } finally {
        client.close();
      }
    });
  }

  it("lists directories with MLSD, and files with their size and time", TEST_TIMEOUT, async () => {
    const server = await start();
    const client = await connectClient(server);
    try {
      const names = (await client.list()).map((f) => f.name).sort();
      assert.ok(names.includes("hello.txt") && names.includes("sub") && names.includes("inside-link"));
      assert.ok(
        !names.includes("escape-file") && !names.includes("escape-dir"),
        "links out of the root are hidden",
      );
      const hello = (await client.list()).find((f) => f.name === "hello.txt")!;
      assert.equal(hello.size, 11);
      assert.ok(hello.isFile);
      const mtime = (await stat(join(root, "hello.txt"))).mtime;
      assert.equal(
        Math.floor((await client.lastMod("hello.txt")).getTime() / 1000),
        Math.floor(mtime.getTime() / 1000),
      );
      await client.cd("sub");
      assert.equal(await client.pwd(), "/sub");
      assert.deepEqual(
        (await client.list()).map((f) => f.name),
        ["lines.txt"],
      );
      await client.cd("/");
      assert.equal(await client.pwd(), "/");
    } finally {
      client.close();
    }
  });

  it("stores and fetches an empty file", TEST_TIMEOUT, async () => {
    const server = await start();
    const client = await connectClient(server);
    try {
      await client.uploadFrom(Readable.from([]), "empty.bin");
      assert.equal((await stat(join(root, "empty.bin"))).size, 0);
      const sink = new PassThrough();
      let received = 0;
      sink.on("data", (c: Buffer) => (received += c.length));
      await client.downloadTo(sink, "empty.bin");
      assert.equal(received, 0);
      assert.equal(await client.size("empty.bin"), 0);
      await client.remove("empty.bin");
      await assert.rejects(stat(join(root, "empty.bin")), { code: "ENOENT" });
    } finally {
      client.close();
    }
  });

  it("resumes a download with REST", TEST_TIMEOUT, async () => {
    const server = await start();
    const client = await connectClient(server);
    try {
      const sink = new PassThrough();
      const chunks: Buffer[] = [];
      sink.on("data", (c: Buffer) => chunks.push(c));
      await client.downloadTo(sink, "big.bin", 1_000_000);
      assert.equal(sha256(Buffer.concat(chunks)), sha256(big.subarray(1_000_000)));
    } finally {
      client.close();
    }
  });

  it("refuses paths that leave the root, by .. or by symlink", TEST_TIMEOUT, async () => {
    const server = await start();
    const client = await connectClient(server);
    const refused = async (promise: Promise<unknown>) => {
      const err = await promise.then(
        () => assert.fail("should have been refused"),
        (e: unknown) => e,
      );
      assert.ok(err instanceof FTPError, String(err));
      assert.equal(err.code, 550);
    };
    try {
      await refused(client.downloadTo(new PassThrough(), "../secret.txt"));
      await refused(client.downloadTo(new PassThrough(), "/sub/../../secret.txt"));
      await refused(client.downloadTo(new PassThrough(), "escape-file"));
      await refused(client.cd("escape-dir"));
      await refused(client.cd(".."));
      await refused(client.uploadFrom(Readable.from(["x"]), "../planted.txt"));
      await refused(client.uploadFrom(Readable.from(["x"]), "escape-dir/planted.txt"));
      await refused(client.uploadFrom(Readable.from(["x"]), "escape-file"));
      await assert.rejects(stat(join(base, "planted.txt")), { code: "ENOENT" });
      assert.equal(await readFile(join(base, "secret.txt"), "utf8"), "outside the root");
      const sink = new PassThrough();
      const chunks: Buffer[] = [];
      sink.on("data", (c: Buffer) => chunks.push(c));
      await client.downloadTo(sink, "inside-link");
      assert.equal(Buffer.concat(chunks).toString(), "hello, ftp\n");
    } finally {
      client.close();
    }
  });

  it("checks named users' passwords and refuses uploads when they are off", TEST_TIMEOUT, async () => {
    const server = await start({ users: { alice: "s3cret" }, allowUpload: false, anonymous: false });
    const client = new Client(10_000);
    try {
      await assert.rejects(
        client.access({ host: "127.0.0.1", port: server.port, user: "alice", password: "x" }),
        {
          code: 530,
        },
      );
      await assert.rejects(client.access({ host: "127.0.0.1", port: server.port }), { code: 530 });
      await client.access({ host: "127.0.0.1", port: server.port, user: "alice", password: "s3cret" });
      await assert.rejects(client.uploadFrom(Readable.from(["x"]), "nope.txt"), { code: 550 });
      await assert.rejects(client.send("MKD newdir"), { code: 550 });
      assert.equal(await client.size("hello.txt"), 11);
    } finally {
      client.close();
    }
  });

  it(
    "uses a free port of pasvPorts, skipping busy ones, and answers 425 when none is free",
    TEST_TIMEOUT,
    async () => {
      const held = await holdConsecutivePorts(3);
      const first = (held[0]!.address() as net.AddressInfo).port;
      await Promise.all(held.slice(1).map(closeServer)); // first stays busy
      const server = await start({ pasvPorts: { start: first, end: first + 2 } });
      const raw = await RawFtp.connect(server.port);
      const blockers: net.Server[] = [held[0]!];
      try {
        await raw.login();
        const announced: number[] = [];
        for (let i = 0; i < 3; i++) {
          const reply = await raw.send("PASV");
          assert.equal(reply.code, 227);
          const [p1, p2] = /,(\d+),(\d+)\)/.exec(reply.lines[0]!)!.slice(1).map(Number);
          announced.push(p1! * 256 + p2!);
        }
        assert.ok(
          announced.every((p) => p === first + 1 || p === first + 2),
          `${announced}`,
        );
        // A transfer through the range really works.
        const client = await connectClient(server, enterPassiveModeIPv4);
        const sink = new PassThrough();
        const chunks: Buffer[] = [];
        sink.on("data", (c: Buffer) => chunks.push(c));
        await client.downloadTo(sink, "hello.txt");
        client.close();
        assert.equal(Buffer.concat(chunks).toString(), "hello, ftp\n");
        assert.equal((await raw.send("ABOR")).code, 225); // drops raw's pending listener
        blockers.push(await listen(first + 1), await listen(first + 2));
        assert.equal((await raw.send("PASV")).code, 425);
        assert.equal((await raw.send("EPSV")).code, 425);
        assert.equal((await raw.send("NOOP")).code, 200);
      } finally {
        raw.close();
        await Promise.all(blockers.map(closeServer));
      }
    },
  );
});

describe("demo FTP server with curl", () => {
  let server: DemoFtpServer;
  before(async () => {
    server = await start();
  });

  const modes: Array<[string, string[], string]> = [
    ["EPSV", [], "> EPSV"],
    ["PASV", ["--disable-epsv"], "> PASV"],
    ["active EPRT", ["-P", "127.0.0.1"], "> EPRT |1|127.0.0.1|"],
    ["active PORT", ["-P", "127.0.0.1", "--disable-eprt"], "> PORT 127,0,0,1,"],
  ];
  for (const [name, args, command] of modes) {
    it(`downloads in ${name} mode`, TEST_TIMEOUT, async () => {
      const result = await curl([...args, `ftp://127.0.0.1:${server.port}/big.bin`]);
      assert.equal(result.status, 0, result.stderr);
      assert.ok(result.stderr.includes(command), `curl did not use ${command}`);
      assert.equal(sha256(result.stdout), sha256(big));
    });
  }

  it("lists a directory and uploads a file", TEST_TIMEOUT, async () => {
    const listing = await curl([`ftp://127.0.0.1:${server.port}/sub/`]);
    assert.equal(listing.status, 0, listing.stderr);
    // curl turns the CRLF of an ASCII listing into LF; the raw tests check the wire bytes.
    assert.match(listing.stdout.toString(), /^-rw\S+ +1 ftp ftp +7 \w{3} [ \d]\d [\d:]{5} lines\.txt\r?\n$/);
    const upload = join(base, "curl-up.bin");
    await writeFile(upload, big.subarray(0, 100_000));
    const put = await curl(["-T", upload, `ftp://127.0.0.1:${server.port}/sub/curl-up.bin`]);
    assert.equal(put.status, 0, put.stderr);
    assert.equal(sha256(await readFile(join(root, "sub", "curl-up.bin"))), sha256(big.subarray(0, 100_000)));
  });

  it("fails a missing file with 550", TEST_TIMEOUT, async () => {
    const result = await curl([`ftp://127.0.0.1:${server.port}/missing.bin`]);
    assert.notEqual(result.status, 0);
    assert.match(result.stderr, /< 550/);
  });
});

describe("demo FTP server protocol edges", () => {
  let server: DemoFtpServer;
  before(async () => {
    server = await start({ users: { bob: "pw" } });
  });

  it("answers every bad command with a clean 5xx and keeps serving", TEST_TIMEOUT, async () => {
    const raw = await RawFtp.connect(server.port);
    try {
      assert.equal((await raw.send("LIST")).code, 530);
      assert.equal((await raw.send("PASS x")).code, 503);
      assert.equal((await raw.send("USER bob")).code, 331);
      assert.equal((await raw.send("PASS wrong")).code, 530);
      await raw.login("bob", "pw");
      const bad: Array<[string, number]> = [
        ["FOO bar", 502],
        ["__proto__", 502],
        ["TYPE X", 501],
        ["TYPE E", 504],
        ["MODE B", 504],
        ["MODE", 501],
        ["STRU R", 504],
        ["PORT 1,2,3", 501],
        ["PORT 127,0,0,1,300,1", 501],
        ["PORT 10,9,8,7,200,1", 500],
        ["PORT 127,0,0,1,0,21", 500],
        ["EPRT |3|127.0.0.1|5000|", 522],
        ["EPRT |1|::1|5000|", 501],
        ["EPRT garbage", 501],
        ["LPRT 4,4,127,0,0,1,2", 501],
        ["LPRT 4,16,127,0,0,1,2,200,1", 501],
        ["LPRT 5,4,127,0,0,1,2,200,1", 521],
        ["LPRT 4,4,10,9,8,7,2,200,1", 500],
        ["LPRT 4,4,127,0,0,1,2,0,21", 500],
        ["LPRT 4,4,127,0,0,1,2,0,0", 501],
        ["EPSV 9", 501],
        ["EPSV 2", 522],
        ["REST abc", 501],
        ["RETR hello.txt", 425],
        ["RETR", 501],
        ["CWD /nowhere", 550],
        ["SIZE sub", 550],
        ["MDTM missing", 550],
        ["RMD /", 550],
        ["DELE sub", 550],
        ["OPTS UTF8 OFF", 504],
        ["OPTS NONSENSE", 501],
        [`NOOP ${"x".repeat(5000)}`, 500],
      ];
      for (const [command, code] of bad) {
        assert.equal((await raw.send(command)).code, code, command.slice(0, 40));
      }
      // Telnet IAC sequences (IP, DM, a DO with its option) are stripped from commands.
      raw.write(Buffer.from([0xff, 0xf4, 0xff, 0xf2, 0xff, 0xfd, 0x01, ...Buffer.from("NOOP\r\n")]));
      assert.equal((await raw.read()).code, 200);
      assert.equal((await raw.send("EPSV ALL")).code, 200);
      assert.equal((await raw.send("PASV")).code, 503);
      assert.equal((await raw.send("PORT 127,0,0,1,200,1")).code, 503);
      assert.equal((await raw.send("LPSV")).code, 503);
      assert.equal((await raw.send("LPRT 4,4,127,0,0,1,2,200,1")).code, 503);
      const feat = await raw.send("FEAT");
      assert.equal(feat.code, 211);
      assert.ok(feat.lines.some((l) => l.trim() === "EPSV") && feat.lines.some((l) => l.trim() === "SIZE"));
      assert.deepEqual(await raw.send("PWD"), { code: 257, lines: ['257 "/" is the current directory'] });
      assert.equal((await raw.send("SIZE /hello.txt")).lines[0], "213 11");
      assert.match((await raw.send("MDTM hello.txt")).lines[0]!, /^213 \d{14}$/);
      assert.equal((await raw.send("QUIT")).code, 221);
    } finally {
      raw.close();
    }
  });

  it("carries a transfer set up by LPSV or by LPRT (RFC 1639)", TEST_TIMEOUT, async () => {
    const raw = await RawFtp.connect(server.port);
    const active = net.createServer();
    try {
      await raw.login();
      const lpsv = await raw.send("LPSV");
      assert.equal(lpsv.code, 228);
      const announced = /^228 Entering Long Passive Mode \(([\d,]+)\)$/.exec(lpsv.lines[0]!);
      assert.ok(announced, lpsv.lines[0]);
      const passive = parseLprtAddress(announced[1]!);
      assert.ok(passive.ok);
      assert.equal(passive.value.host, "127.0.0.1");
      const data = net.connect({ host: "127.0.0.1", port: passive.value.port });
      await once(data, "connect");
      assert.equal((await raw.send("RETR hello.txt")).code, 150);
      assert.equal((await collect(data)).toString(), "hello, ftp\n");
      assert.equal((await raw.read()).code, 226);

      active.listen({ host: "127.0.0.1", port: 0 });
      await once(active, "listening");
      const port = (active.address() as net.AddressInfo).port;
      assert.equal((await raw.send(`LPRT ${formatLongHostPort("127.0.0.1", port)}`)).code, 200);
      const accepted = once(active, "connection") as Promise<[net.Socket]>;
      raw.write("RETR hello.txt\r\n");
      const [socket] = await accepted;
      assert.equal((await raw.read()).code, 150);
      assert.equal((await collect(socket)).toString(), "hello, ftp\n");
      assert.equal((await raw.read()).code, 226);
    } finally {
      raw.close();
      active.close();
    }
  });

  it("ABOR interrupts a running transfer: 426 for it, then 226", TEST_TIMEOUT, async () => {
    const raw = await RawFtp.connect(server.port);
    try {
      await raw.login();
      const data = await raw.passiveData();
      data.pause(); // read nothing: the transfer stays blocked on backpressure
      assert.equal((await raw.send("RETR big.bin")).code, 150);
      raw.write("ABOR\r\n");
      assert.equal((await raw.read()).code, 426);
      assert.equal((await raw.read()).code, 226);
      data.destroy();
      assert.equal((await raw.send("NOOP")).code, 200);
    } finally {
      raw.close();
    }
  });

  it("answers 426, never 226, when the data connection breaks", TEST_TIMEOUT, async () => {
    const raw = await RawFtp.connect(server.port);
    try {
      await raw.login();
      const data = await raw.passiveData();
      assert.equal((await raw.send("RETR big.bin")).code, 150);
      await once(data, "data");
      data.resetAndDestroy();
      assert.equal((await raw.read()).code, 426);

      const upload = await raw.passiveData();
      assert.equal((await raw.send("STOR broken.bin")).code, 150);
      upload.write(randomBytes(64 * 1024));
      upload.resetAndDestroy();
      assert.equal((await raw.read()).code, 426);
      assert.equal((await raw.send("NOOP")).code, 200);
    } finally {
      raw.close();
    }
  });

  it("sends ASCII with CRLF and stores it with LF", TEST_TIMEOUT, async () => {
    const raw = await RawFtp.connect(server.port);
    try {
      await raw.login();
      assert.equal((await raw.send("TYPE A")).code, 200);
      let data = await raw.passiveData();
      assert.equal((await raw.send("RETR sub/lines.txt")).code, 150);
      assert.equal((await collect(data)).toString(), "a\r\nb\r\nc\r\n");
      assert.equal((await raw.read()).code, 226);
      data = await raw.passiveData();
      assert.equal((await raw.send("STOR ascii.txt")).code, 150);
      data.end("x\r\ny\r\n\r");
      assert.equal((await raw.read()).code, 226);
      assert.equal(await readFile(join(root, "ascii.txt"), "utf8"), "x\ny\n\r");
    } finally {
      raw.close();
    }
  });

  it("sends 226 only once the client has closed the data connection", TEST_TIMEOUT, async () => {
    const raw = await RawFtp.connect(server.port);
    const other = await RawFtp.connect(server.port);
    try {
      await raw.login();
      const data = await raw.passiveData();
      data.on("data", () => {});
      assert.equal((await raw.send("RETR hello.txt")).code, 150);
      await once(data, "end"); // the server's FIN: every byte has been sent
      // A round trip on another connection lets a premature 226 arrive first.
      assert.equal((await other.send("NOOP")).code, 200);
      assert.equal(raw.buffered, 0, "226 came before the data connection was closed");
      data.end();
      assert.equal((await raw.read()).code, 226);
    } finally {
      raw.close();
      other.close();
    }
  });

  it("times out an unused passive listener and an idle control connection", TEST_TIMEOUT, async () => {
    const quick = await start({ dataTimeoutMs: 100, idleTimeoutMs: 300, pasvAddress: "10.1.2.3" });
    const raw = await RawFtp.connect(quick.port);
    try {
      await raw.login();
      const pasv = await raw.send("PASV");
      assert.match(pasv.lines[0]!, /^227 Entering Passive Mode \(10,1,2,3,\d+,\d+\)$/);
      assert.equal((await raw.send("RETR hello.txt")).code, 150);
      assert.equal((await raw.read()).code, 425);
      assert.deepEqual((await raw.read()).code, 421);
      await once(raw.socket, "close");
    } finally {
      raw.close();
    }
  });

  it("answers 421 beyond maxSessions", TEST_TIMEOUT, async () => {
    const small = await start({ maxSessions: 1 });
    const first = await RawFtp.connect(small.port);
    const second = net.connect({ host: "127.0.0.1", port: small.port });
    try {
      second.setEncoding("utf8");
      const [greeting] = (await once(second, "data")) as [string];
      assert.match(greeting, /^421 /);
      assert.equal((await first.send("NOOP")).code, 200);
    } finally {
      first.close();
      second.destroy();
    }
  });

  it("close() ends control connections and passive listeners", TEST_TIMEOUT, async () => {
    const own = await startDemoFtpServer({ root });
    started.push(own);
    const raw = await RawFtp.connect(own.port);
    await raw.login();
    const reply = await raw.send("EPSV");
    const port = Number(/\|\|\|(\d+)\|/.exec(reply.lines[0]!)![1]);
    const closedControl = once(raw.socket, "close");
    await own.close();
    await closedControl;
    const refused = net.connect({ host: "127.0.0.1", port });
    const [err] = (await once(refused, "error")) as [NodeJS.ErrnoException];
    assert.equal(err.code, "ECONNREFUSED");
    const control = net.connect({ host: "127.0.0.1", port: own.port });
    assert.equal(((await once(control, "error")) as [NodeJS.ErrnoException])[0].code, "ECONNREFUSED");
  });
});
