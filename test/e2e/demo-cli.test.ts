/**
 * `underpass demo` as a user meets it: start it, copy the curl commands it prints and run
 * them as they are. The demo keeps its files under the temp dir it is given (TMPDIR), which
 * is how the test reads the file the download must reproduce.
 */
import assert from "node:assert/strict";
import { mkdtemp, readdir, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { ChildRegistry, formatResult, spawnBounded } from "../helpers/clients.js";
import { type CliProcess, cliEnv, spawnCli, splitCommandLine } from "../helpers/processes.js";

/** The line the demo prints last, once everything is up. */
const READY = /Press Ctrl-C to stop\./;

describe("underpass demo --socks-port 0", () => {
  const children = new ChildRegistry();
  let demo: CliProcess;
  let temp: string;
  let work: string;
  /** The curl commands the demo printed, split into argv. */
  let commands: string[][];

  before(async () => {
    temp = await mkdtemp(join(tmpdir(), "underpass-e2e-demo-tmp-"));
    work = await mkdtemp(join(tmpdir(), "underpass-e2e-demo-cwd-"));
    demo = spawnCli(["demo", "--socks-port", "0"], cliEnv({ TMPDIR: temp }), children);
    await demo.waitForOutput(READY, { timeoutMs: 30_000 });
    commands = demo
      .stdout()
      .split("\n")
      .map((line) => line.trim())
      .filter((line) => line.startsWith("curl "))
      .map(splitCommandLine);
  });

  after(async () => {
    await demo?.stop();
    await children.killAll();
    if (temp) await rm(temp, { recursive: true, force: true });
    if (work) await rm(work, { recursive: true, force: true });
  });

  /** The demo FTP server's root: the one `underpass-demo-*` dir under the demo's TMPDIR. */
  async function demoRoot(): Promise<string> {
    const dirs = (await readdir(temp)).filter((d) => d.startsWith("underpass-demo-"));
    assert.equal(dirs.length, 1, `demo work dirs under ${temp}: ${dirs.join(", ")}`);
    return join(temp, dirs[0]!, "ftp");
  }

  /** Runs a printed command (curl) as its argv, bounded, from a scratch directory. */
  function run(argv: string[]) {
    const [cmd, ...args] = argv;
    assert.equal(cmd, "curl");
    return spawnBounded(cmd, args, { timeoutMs: 30_000, cwd: work, env: cliEnv(), registry: children });
  }

  it("prints a SOCKS5 curl command that lists the demo FTP server's files", async () => {
    const list = commands.find((c) => c.some((a) => a.startsWith("ftp://") && a.endsWith("/")));
    assert.ok(list, demo.describe());
    assert.ok(list.includes("--proxy"), list.join(" "));
    assert.match(list[list.indexOf("--proxy") + 1] ?? "", /^socks5h:\/\/[^:]+:[^@]+@127\.0\.0\.1:\d+$/);
    const r = await run(list);
    assert.equal(r.code, 0, formatResult(r));
    const served = await readdir(await demoRoot());
    assert.ok(served.length >= 2, served.join(", "));
    const listed = r.stdout.split(/\r?\n/).map((line) => line.split(/\s+/).at(-1));
    for (const name of served) assert.ok(listed.includes(name), `${name} missing from:\n${r.stdout}`);
  });

  it("prints a download command that fetches the same bytes as the demo file", async () => {
    const download = commands.find((c) => c.includes("-o"));
    assert.ok(download, demo.describe());
    const output = download[download.indexOf("-o") + 1];
    const url = download.at(-1) ?? "";
    assert.ok(output && url.startsWith("ftp://"), download.join(" "));
    const r = await run(download);
    assert.equal(r.code, 0, formatResult(r));
    const remotePath = new URL(url).pathname;
    const want = await readFile(join(await demoRoot(), remotePath));
    const got = await readFile(join(work, output));
    assert.ok(want.length > 0);
    assert.ok(got.equals(want), `downloaded ${got.length} bytes, the demo file has ${want.length}`);
  });

  it("prints an admin API command that lists the registered mappings", async () => {
    const adminCall = commands.find((c) =>
      c.some((a) => /^http:\/\/127\.0\.0\.1:\d+\/v1\/mappings$/.test(a)),
    );
    assert.ok(adminCall, demo.describe());
    const r = await run([...adminCall.slice(0, 1), "-sS", ...adminCall.slice(1)]);
    assert.equal(r.code, 0, formatResult(r));
    const mappings = JSON.parse(r.stdout) as Array<{ virtualHost: string; virtualPort: unknown }>;
    assert.ok(mappings.length >= 2, r.stdout);
    assert.ok(mappings.some((m) => m.virtualPort === 21));
  });

  it("stops cleanly on SIGTERM and removes its files", async () => {
    await demo.stop();
    const { code, signal } = await demo.exited;
    assert.equal(signal, null, demo.describe());
    assert.equal(code, 0, demo.describe());
    assert.deepEqual(
      (await readdir(temp)).filter((d) => d.startsWith("underpass-demo-")),
      [],
      "the demo's work dir is gone",
    );
  });
});
