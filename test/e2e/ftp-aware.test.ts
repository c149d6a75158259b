/**
 * FTP-aware mappings (`protocol: "ftp"`): ONE mapping for the control port, no passive range.
 * The relay follows the control channel, opens exactly the data ports vsftpd announces (for
 * that client, once) and serves active mode by having the agent listen on premises. vsftpd
 * announces an unroutable address, as a server behind NAT does; clients never see it.
 */
import assert from "node:assert/strict";
import { mkdtemp, rm } from "node:fs/promises";
import type { Socket } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import {
  ChildRegistry,
  type CurlFtpOptions,
  curlFtp,
  formatResult,
  lftpProxychains,
  type SpawnResult,
} from "../helpers/clients.js";
import { loginAnonymously, readReply } from "../helpers/ftp-dialogue.js";
import { freePortRange } from "../helpers/ports.js";
import { type Credentials, type Stack, socksConnect, socksReply, startStack } from "../helpers/stack.js";
import { makeFile, sha256File, startVsftpd, type VsftpdServer } from "../helpers/vsftpd.js";

const MiB = 1024 * 1024;
const VIRTUAL_HOST = "ftp.aware.example";
const NAT_ADDRESS = "10.255.255.1";
const CLIENT_TIMEOUT_MS = 90_000;

function assertOk(r: SpawnResult): void {
  assert.equal(r.code, 0, formatResult(r));
}

describe("FTP-aware mapping: one control mapping, data ports opened as announced", () => {
  const children = new ChildRegistry();
  const sockets: Socket[] = [];
  let ftp: VsftpdServer;
  let stack: Stack;
  let work: string;
  let file: { path: string; sha256: string; size: number };

  const curl = (opts: Partial<CurlFtpOptions> & { url: string }, creds: Credentials = stack.client) =>
    curlFtp({
      socks: {
        host: "127.0.0.1",
        port: stack.socksPort,
        username: creds.username,
        password: creds.password,
        remoteDns: true,
      },
      timeoutMs: CLIENT_TIMEOUT_MS,
      registry: children,
      ...opts,
    });
  const url = (path: string): string => `ftp://${VIRTUAL_HOST}/${path}`;

  before(async () => {
    work = await mkdtemp(join(tmpdir(), "underpass-ftp-aware-"));
    ftp = await startVsftpd({
      pasvPorts: await freePortRange(10),
      pasvAddress: NAT_ADDRESS,
      registry: children,
    });
    file = await makeFile(ftp.root, "data.bin", 8 * MiB);
    stack = await startStack();
    await stack.addMapping({
      virtualHost: VIRTUAL_HOST,
      virtualPort: 21,
      internalHost: "127.0.0.1",
      internalPort: ftp.port,
      protocol: "ftp",
    });
  });

  after(async () => {
    for (const s of sockets) s.destroy();
    await children.killAll();
    await stack?.close();
    await ftp?.close();
    if (work) await rm(work, { recursive: true, force: true });
  });

  it("downloads with curl in EPSV mode, with no passive range mapped", async () => {
    const out = join(work, "epsv.bin");
    assertOk(await curl({ url: url("data.bin"), output: out }));
    assert.equal(await sha256File(out), file.sha256);
  });

  it("downloads with curl in PASV mode, skipping the 227 address", async () => {
    const out = join(work, "pasv.bin");
    assertOk(await curl({ url: url("data.bin"), output: out, disableEpsv: true }));
    assert.equal(await sha256File(out), file.sha256);
  });

  it("rewrites the 227 reply: a client that trusts it sees the relay, never the NAT'ed address", async () => {
    const out = join(work, "trusting.bin");
    const r = await curl({
      url: url("data.bin"),
      output: out,
      disableEpsv: true,
      extraArgs: ["-v", "--no-ftp-skip-pasv-ip"],
    });
    assertOk(r);
    assert.equal(await sha256File(out), file.sha256);
    const reply = r.stderr.split("\n").find((l) => l.includes("227 "));
    assert.ok(reply, formatResult(r));
    assert.match(reply, /\(127,0,0,1,\d+,\d+\)/, "the relay's own address");
    assert.doesNotMatch(r.stderr, /10,255,255,1/);
  });

  it("serves active mode (EPRT) for curl -P -: the agent listens, the data comes back to curl", async () => {
    const out = join(work, "eprt.bin");
    assertOk(await curl({ url: url("data.bin"), output: out, extraArgs: ["-P", "-"] }));
    assert.equal(await sha256File(out), file.sha256);
  });

  it("serves active mode (PORT) for an upload", async () => {
    const r = await curl({
      url: url("upload/active-up.bin"),
      upload: file.path,
      extraArgs: ["-P", "-", "--disable-eprt"],
    });
    assertOk(r);
    assert.equal(await sha256File(join(ftp.uploadDir, "active-up.bin")), file.sha256);
  });

  it("refuses a PORT that names a third host (no FTP bounce)", async () => {
    const r = await curl({
      url: url("data.bin"),
      output: join(work, "bounce.bin"),
      extraArgs: ["-P", "127.0.0.5", "--disable-eprt"],
    });
    assert.notEqual(r.code, 0, formatResult(r));
    assert.equal(r.code, 30, `curl says the PORT failed: ${formatResult(r)}`);
  });

  it("opens an announced port for the announcing client only, and no other port", async () => {
    const control = await socksConnect(stack.socksPort, stack.client, VIRTUAL_HOST, 21);
    sockets.push(control);
    await loginAnonymously(control);
    control.write("PASV\r\n");
    const reply = await readReply(control, /^227 /);
    const m = /\((\d+),(\d+),(\d+),(\d+),(\d+),(\d+)\)/.exec(reply)!;
    const port = Number(m[5]) * 256 + Number(m[6]);

    const other = await stack.addClient("flow-other");
    const stolen = await socksReply(stack.socksPort, other, VIRTUAL_HOST, port);
    sockets.push(stolen.socket);
    assert.equal(stolen.reply, 0x02, "another client may not use the announced port");
    const neighbour = await socksReply(
      stack.socksPort,
      stack.client,
      VIRTUAL_HOST,
      port === 65535 ? port - 1 : port + 1,
    );
    sockets.push(neighbour.socket);
    assert.equal(neighbour.reply, 0x02, "a port that was not announced stays closed");
    const mine = await socksReply(stack.socksPort, stack.client, VIRTUAL_HOST, port);
    sockets.push(mine.socket);
    assert.equal(mine.reply, 0x00, "the announcing client gets its data connection");
    const again = await socksReply(stack.socksPort, stack.client, VIRTUAL_HOST, port);
    sockets.push(again.socket);
    assert.equal(again.reply, 0x02, "an announcement serves once");
  });

  it("keeps reading after a stray TLS byte: a PORT behind it is still checked, never passed blind", async () => {
    const control = await socksConnect(stack.socksPort, stack.client, VIRTUAL_HOST, 21);
    sockets.push(control);
    await readReply(control, /^220 /);
    // only a TLS hello before the server speaks means implicit FTPS; this one is a smuggling try
    control.write("\x16\r\nPORT 10,0,0,9,0,22\r\n");
    const reply = await readReply(control, /^5\d\d .*(own|refused)/);
    assert.match(reply, /^50[04] /, "the relay answers the PORT itself");
    control.write("EPRT |1|127.0.0.1|22|\r\n");
    assert.match(await readReply(control, /^504 /), /below 1024/, "no data connection to a privileged port");
  });

  it("refuses a command with a stray Telnet IAC, which servers read differently (a PORT in disguise)", async () => {
    const control = await socksConnect(stack.socksPort, stack.client, VIRTUAL_HOST, 21);
    sockets.push(control);
    await loginAnonymously(control);
    control.write(Buffer.from("P\xffAORT 10,0,0,9,0,22\r\n", "latin1"));
    assert.match(await readReply(control, /^500 /), /Telnet IAC/, "the relay refuses it itself");
    control.write("NOOP\r\n");
    assert.match(await readReply(control, /^200 /), /^200 /, "the session goes on");
    const log = await ftp.readLog();
    assert.doesNotMatch(log, /10,0,0,9/, "the server never saw it");
  });

  it("carries a command line with a bare CR inside it to the server, and goes on", async () => {
    const control = await socksConnect(stack.socksPort, stack.client, VIRTUAL_HOST, 21);
    sockets.push(control);
    await loginAnonymously(control);
    control.write("NOOP\rX\r\n");
    await readReply(control, /^\d{3} /);
    control.write("NOOP\r\n");
    assert.match(await readReply(control, /^200 /), /^200 /, "the relay and the session are still there");
  });

  it("carries lftp under proxychains4 in passive and in active mode", async () => {
    const passive = join(work, "lftp-pasv.bin");
    const active = join(work, "lftp-port.bin");
    const socks = {
      host: "127.0.0.1",
      port: stack.socksPort,
      username: stack.client.username,
      password: stack.client.password,
    };
    assertOk(
      await lftpProxychains({
        socks,
        timeoutMs: CLIENT_TIMEOUT_MS,
        registry: children,
        script: `open ftp://anonymous:x@${VIRTUAL_HOST}\nget data.bin -o ${passive}`,
      }),
    );
    assert.equal(await sha256File(passive), file.sha256);
    assertOk(
      await lftpProxychains({
        socks,
        timeoutMs: CLIENT_TIMEOUT_MS,
        registry: children,
        settings: { "ftp:passive-mode": "off" },
        script: `open ftp://anonymous:x@${VIRTUAL_HOST}\nget data.bin -o ${active}`,
      }),
    );
    assert.equal(await sha256File(active), file.sha256);
  });
});
