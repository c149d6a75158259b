/**
 * The FTP check against vsftpd through the real path (SOCKS endpoint → tunnel → agent →
 * server): every step green for a good setup, and for each fault the step that fails with its
 * coded reason and a fix that names what to change — a passive range wider than the mapping,
 * an unroutable 227 address (ignored by a plain mapping, rewritten by an FTP-aware one), a wrong
 * login (nothing else tried), no agent (SOCKS 0x03 explained).
 */
import assert from "node:assert/strict";
import type { Socket } from "node:net";
import { after, before, describe, it } from "node:test";
import { type FtpCheckAnswer, type FtpCheckStep, runFtpCheck } from "../../cloud/ftp/check.js";
import { socksConnect } from "../../cloud/socks/client.js";
import type { MappingRecord } from "../../cloud/store/store.js";
import { ChildRegistry } from "../helpers/clients.js";
import { UNROUTABLE_PASV_ADDRESS } from "../helpers/ftp-servers.js";
import { freePortRange } from "../helpers/ports.js";
import { type Credentials, type Stack, startStack } from "../helpers/stack.js";
import { makeFile, startVsftpd, type VsftpdServer } from "../helpers/vsftpd.js";

const HOST = "ftp.check.example";

function step(a: FtpCheckAnswer, name: FtpCheckStep["step"]): FtpCheckStep {
  const s = a.steps.find((x) => x.step === name);
  assert.ok(s, `no ${name} step in ${JSON.stringify(a, null, 2)}`);
  return s;
}

describe("FTP check through the real path", () => {
  const children = new ChildRegistry();
  const sockets = new Set<Socket>();
  let ftp: VsftpdServer;
  let stack: Stack;

  async function mappingsOf(location = "default"): Promise<MappingRecord[]> {
    return [...(await stack.relay.store.mappingsOf(location))];
  }

  async function check(
    mappingId: string,
    creds: Credentials = stack.client,
    login: { username: string; password: string } = { username: "anonymous", password: "check@" },
  ): Promise<FtpCheckAnswer> {
    const mapping = await stack.relay.store.getMapping(mappingId);
    assert.ok(mapping);
    return runFtpCheck({
      mapping,
      mappings: await mappingsOf(mapping.location),
      ...login,
      path: "/",
      stepTimeoutMs: 15_000,
      async connect(host, port) {
        const { socket } = await socksConnect({
          proxyHost: "127.0.0.1",
          proxyPort: stack.socksPort,
          username: creds.username,
          password: creds.password,
          host,
          port,
          timeoutMs: 15_000,
        });
        sockets.add(socket);
        return socket;
      },
    });
  }

  /** Runs `fn` with mappings added for it, and removes them whatever happens. */
  async function withMappings<T>(
    bodies: ReadonlyArray<Record<string, unknown>>,
    fn: (ids: string[]) => Promise<T>,
  ): Promise<T> {
    const ids: string[] = [];
    try {
      for (const b of bodies) ids.push((await stack.addMapping(b)).id);
      return await fn(ids);
    } finally {
      for (const id of ids) await stack.api("DELETE", `/v1/mappings/${id}`);
    }
  }

  before(async () => {
    // the server's passive range is the upper ten of twenty ports; a mapping below names the gap
    const span = await freePortRange(20);
    ftp = await startVsftpd({
      pasvPorts: { start: span.start + 10, end: span.end },
      pasvAddress: UNROUTABLE_PASV_ADDRESS,
      allowUpload: false,
      registry: children,
    });
    await makeFile(ftp.root, "readme.txt", 64);
    await makeFile(ftp.root, "data.bin", 4096);
    stack = await startStack();
  });

  after(async () => {
    for (const s of sockets) s.destroy();
    await stack?.close();
    await ftp?.close();
    await children.killAll();
  });

  const controlMapping = (extra: Record<string, unknown> = {}): Record<string, unknown> => ({
    virtualHost: HOST,
    virtualPort: 21,
    internalHost: "127.0.0.1",
    internalPort: ftp.port,
    ...extra,
  });
  const sameRange = (range: string): Record<string, unknown> => ({
    virtualHost: HOST,
    virtualPort: range,
    internalHost: "127.0.0.1",
    internalPort: range,
  });

  it("names the gap when the server's passive range is wider than the mapping", async () => {
    const lower = `${ftp.pasvPorts.start - 10}-${ftp.pasvPorts.start - 1}`;
    await withMappings([controlMapping(), sameRange(lower)], async ([control, narrow]) => {
      const a = await check(control!);
      assert.equal(a.ok, false);
      assert.deepEqual(
        a.steps.map((s) => [s.step, s.ok]),
        [
          ["connect", true],
          ["greeting", true],
          ["login", true],
          ["epsv", false],
          ["pasv", false],
        ],
      );
      for (const name of ["epsv", "pasv"] as const) {
        const s = step(a, name);
        assert.equal(s.code, "UP_FTP_PASSIVE_PORT_NOT_MAPPED");
        const port = s.announced!.port;
        assert.ok(
          port >= ftp.pasvPorts.start && port <= ftp.pasvPorts.end,
          `${port} is in the server's range`,
        );
        assert.equal(s.coveredBy, null);
        assert.equal(s.dataOpened, false);
        assert.match(
          s.fix!,
          new RegExp(`announced passive port ${port}; mapping ${narrow} covers ${lower}: widen it`),
        );
        assert.match(s.fix!, /UNDERPASS_ALLOW/);
      }
      assert.equal(step(a, "pasv").announced!.host, UNROUTABLE_PASV_ADDRESS);
    });
  });

  it("is green with a passive range port for port, and says the 227's unroutable address is only ignored", async () => {
    const range = `${ftp.pasvPorts.start}-${ftp.pasvPorts.end}`;
    await withMappings([controlMapping(), sameRange(range)], async ([control, data]) => {
      const a = await check(control!);
      assert.equal(a.ok, true, JSON.stringify(a, null, 2));
      const epsv = step(a, "epsv");
      assert.equal(epsv.coveredBy, data);
      assert.equal(epsv.dataOpened, true);
      assert.deepEqual([...(epsv.names ?? [])].sort(), ["data.bin", "readme.txt"]);
      assert.equal(epsv.code, undefined);
      const pasv = step(a, "pasv");
      assert.equal(pasv.announced!.host, UNROUTABLE_PASV_ADDRESS);
      assert.equal(pasv.code, "UP_FTP_PASV_ADDRESS_IGNORED");
      assert.match(pasv.fix!, /ignore the 227 address/);
      assert.ok(
        !a.steps.some((s) => s.step === "active"),
        "active mode is checked for FTP-aware mappings only",
      );
    });
  });

  it("is green through one FTP-aware mapping: the 227 rewritten, active mode through the agent", async () => {
    await withMappings([controlMapping({ protocol: "ftp" })], async ([control]) => {
      const a = await check(control!);
      assert.equal(a.ok, true, JSON.stringify(a, null, 2));
      assert.deepEqual(
        a.steps.map((s) => s.step),
        ["connect", "greeting", "login", "epsv", "pasv", "active"],
      );
      const pasv = step(a, "pasv");
      assert.equal(pasv.code, "UP_FTP_PASV_ADDRESS_REWRITTEN");
      assert.notEqual(pasv.announced!.host, UNROUTABLE_PASV_ADDRESS);
      assert.equal(pasv.coveredBy, "ftp-aware");
      for (const name of ["epsv", "pasv", "active"] as const) {
        assert.deepEqual([...(step(a, name).names ?? [])].sort(), ["data.bin", "readme.txt"], name);
      }
    });
  });

  it("stops at the login when the server refuses it", async () => {
    await withMappings([controlMapping()], async ([control]) => {
      const a = await check(control!, stack.client, { username: "nobody-here", password: "wrong" });
      assert.equal(a.ok, false);
      assert.deepEqual(
        a.steps.map((s) => [s.step, s.ok]),
        [
          ["connect", true],
          ["greeting", true],
          ["login", false],
        ],
      );
      const login = step(a, "login");
      assert.equal(login.code, "UP_FTP_LOGIN_FAILED");
      assert.match(login.reply!, /^530 /);
      assert.match(login.fix!, /password of nobody-here/);
    });
  });

  it("explains a location without an agent (SOCKS 0x03)", async () => {
    const lonely = await stack.addClient("lonely flow", "plant-9");
    await withMappings([controlMapping({ location: "plant-9" })], async ([control]) => {
      const a = await check(control!, lonely);
      assert.equal(a.ok, false);
      assert.equal(a.steps.length, 1);
      const s = step(a, "connect");
      assert.equal(s.code, "UP_FTP_NO_AGENT");
      assert.match(s.detail, /no agent of location plant-9 is connected \(SOCKS reply 0x03\)/);
      assert.match(s.fix!, /--location plant-9/);
    });
  });
});
