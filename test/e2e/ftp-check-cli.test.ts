/**
 * `underpass mappings ftp-check` as an operator runs it: a real `underpass cloud`, a real
 * `underpass agent`, vsftpd announcing an unroutable 10.255.255.1. The printed diagnosis names
 * each fault: a passive range wider than the mapping, an address only ignored or rewritten, a
 * refused login, a location without an agent. Each answer is also kept as a test diagnostic.
 */
import assert from "node:assert/strict";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it, type TestContext } from "node:test";
import { ChildRegistry, type SpawnResult, spawnBounded } from "../helpers/clients.js";
import { UNROUTABLE_PASV_ADDRESS } from "../helpers/ftp-servers.js";
import { freePortRange } from "../helpers/ports.js";
import {
  CLI,
  type CliProcess,
  type CloudProcess,
  cliEnv,
  REPO_ROOT,
  startAgentProcess,
  startCloud,
} from "../helpers/processes.js";
import { makeFile, startVsftpd, type VsftpdServer } from "../helpers/vsftpd.js";

const ADMIN_TOKEN = "ftp-check-cli-admin-token-0123456789";
const HOST = "ftp.plant.example";

describe("underpass mappings ftp-check (relay, agent and vsftpd as processes)", () => {
  const registry = new ChildRegistry();
  let dataDir = "";
  let cloud: CloudProcess;
  let agent: CliProcess;
  let ftp: VsftpdServer;

  function underpass(args: readonly string[]): Promise<SpawnResult> {
    return spawnBounded(process.execPath, [CLI, ...args], {
      timeoutMs: 120_000,
      env: cliEnv({
        UNDERPASS_ADMIN_URL: `http://127.0.0.1:${cloud.ports.admin}`,
        UNDERPASS_ADMIN_TOKEN: ADMIN_TOKEN,
      }),
      cwd: REPO_ROOT,
      registry,
      display: `underpass ${args.join(" ")}`,
    });
  }

  async function addMapping(args: readonly string[]): Promise<string> {
    const r = await underpass(["mappings", "add", ...args, "--json"]);
    assert.equal(r.code, 0, r.stderr);
    return (JSON.parse(r.stdout) as { id: string }).id;
  }

  async function ftpCheck(t: TestContext, id: string, ...extra: string[]): Promise<SpawnResult> {
    const r = await underpass(["mappings", "ftp-check", id, ...extra]);
    t.diagnostic(`$ underpass mappings ftp-check ${id} ${extra.join(" ")}\n${r.stdout}${r.stderr}`);
    return r;
  }

  before(async () => {
    dataDir = await mkdtemp(join(tmpdir(), "underpass-ftp-check-cli-"));
    const span = await freePortRange(20);
    ftp = await startVsftpd({
      pasvPorts: { start: span.start + 10, end: span.end },
      pasvAddress: UNROUTABLE_PASV_ADDRESS,
      allowUpload: false,
      registry,
    });
    await makeFile(ftp.root, "invoice-0001.csv", 128);
    cloud = await startCloud({ dataDir, adminToken: ADMIN_TOKEN, registry });
    const added = await cloud.admin.addAgent("plant agent", "plant-1");
    agent = startAgentProcess({ relayUrl: cloud.relayUrl, token: added.token, registry });
    await cloud.admin.waitAgentConnected(added.id);
  });

  after(async () => {
    await agent?.stop();
    await cloud?.stop();
    await ftp?.close();
    await registry.killAll();
    await rm(dataDir, { recursive: true, force: true });
  });

  it("names the mapping whose range misses the port the server announced", async (t) => {
    const control = await addMapping([`${HOST}:21`, `127.0.0.1:${ftp.port}`, "--location", "plant-1"]);
    const lower = `${ftp.pasvPorts.start - 10}-${ftp.pasvPorts.start - 1}`;
    const narrow = await addMapping([`${HOST}:${lower}`, `127.0.0.1:${lower}`, "--location", "plant-1"]);
    const r = await ftpCheck(t, control);
    assert.equal(r.code, 1, "a failed check exits 1");
    assert.match(r.stdout, /^✓ connect /m);
    assert.match(r.stdout, /^✓ login +logged in as anonymous/m);
    assert.match(
      r.stdout,
      /^✗ epsv +the server announced passive port \d+; no mapping of location plant-1 covers/m,
    );
    assert.match(r.stdout, /UP_FTP_PASSIVE_PORT_NOT_MAPPED/);
    assert.match(
      r.stdout,
      new RegExp(`fix: the server announced passive port \\d+; mapping ${narrow} covers ${lower}: widen it`),
    );
    assert.match(r.stdout, /^FTP check failed$/m);
    // widened to the server's range, every step passes, and PASV says its address is only ignored
    const range = `${ftp.pasvPorts.start - 10}-${ftp.pasvPorts.end}`;
    const edited = await underpass([
      "mappings",
      "edit",
      narrow,
      "--virtual",
      `${HOST}:${range}`,
      "--internal",
      `127.0.0.1:${range}`,
    ]);
    assert.equal(edited.code, 0, edited.stderr);
    const fixed = await ftpCheck(t, control);
    assert.equal(fixed.code, 0, fixed.stdout);
    assert.match(fixed.stdout, /^✓ epsv +listed \/: invoice-0001\.csv$/m);
    assert.match(fixed.stdout, /^✓ pasv +listed \/: invoice-0001\.csv$/m);
    const json = JSON.parse((await underpass(["mappings", "ftp-check", control, "--json"])).stdout);
    const pasv = json.steps.find((s: { step: string }) => s.step === "pasv");
    assert.equal(pasv.code, "UP_FTP_PASV_ADDRESS_IGNORED");
    assert.equal(pasv.announced.host, UNROUTABLE_PASV_ADDRESS);
    await underpass(["mappings", "rm", narrow]);
    await underpass(["mappings", "rm", control]);
  });

  it("through one FTP-aware mapping: green, the 227 rewritten, active mode through the agent", async (t) => {
    const control = await addMapping([
      `${HOST}:21`,
      `127.0.0.1:${ftp.port}`,
      "--location",
      "plant-1",
      "--protocol",
      "ftp",
    ]);
    const r = await ftpCheck(t, control);
    assert.equal(r.code, 0, r.stdout);
    for (const step of ["connect", "greeting", "login", "epsv", "pasv", "active"]) {
      assert.match(r.stdout, new RegExp(`^✓ ${step} `, "m"));
    }
    assert.match(r.stdout, /^✓ active +listed \/: invoice-0001\.csv$/m);
    const json = JSON.parse((await underpass(["mappings", "ftp-check", control, "--json"])).stdout);
    assert.equal(
      json.steps.find((s: { step: string }) => s.step === "pasv").code,
      "UP_FTP_PASV_ADDRESS_REWRITTEN",
    );

    const wrong = await ftpCheck(t, control, "--user", "alice", "--password", "not-hers");
    assert.equal(wrong.code, 1);
    assert.match(wrong.stdout, /^✗ login +the server refused the login of alice: 530 /m);
    assert.match(wrong.stdout, /UP_FTP_LOGIN_FAILED/);
    assert.doesNotMatch(wrong.stdout, /epsv|pasv|active/, "nothing else is tried");
    await underpass(["mappings", "rm", control]);
  });

  it("explains a location without an agent", async (t) => {
    const control = await addMapping([`${HOST}:21`, `127.0.0.1:${ftp.port}`, "--location", "plant-2"]);
    const r = await ftpCheck(t, control);
    assert.equal(r.code, 1);
    assert.match(r.stdout, /^✗ connect +no agent of location plant-2 is connected \(SOCKS reply 0x03\)$/m);
    assert.match(r.stdout, /UP_FTP_NO_AGENT/);
    assert.match(r.stdout, /fix: start an agent with a token of location plant-2/);
  });
});
