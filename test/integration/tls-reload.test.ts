/**
 * A renewed certificate without a restart, on a real relay with real TLS clients: the relay
 * starts on certificate A; its files are replaced by B the way certbot does it (new files
 * renamed over the old ones); once the relay says it reloaded, a new connection to the tunnel
 * and to the admin port sees B while the agent's tunnel opened under A carries on. A broken
 * replacement (not PEM, a key of another certificate) is refused and B keeps serving. SIGHUP
 * reloads too, with the file watch off.
 */
import assert from "node:assert/strict";
import { copyFile, mkdtemp, readFile, rename, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { connect } from "node:tls";
import { type Agent, startAgent } from "../../agent/agent.js";
import { allowAll } from "../../agent/policy.js";
import type { TlsReloaded } from "../../cloud/events.js";
import type { Relay } from "../../cloud/relay.js";
import { certificateFingerprint } from "../../cloud/tls-reload.js";
import { mapEcho, type Stack, socksConnect, startStack, testLogger } from "../helpers/stack.js";
import { readAll, type Target } from "../helpers/targets.js";
import { makeSelfSignedCert, type SelfSignedCert } from "../helpers/tls.js";

/** The fingerprint a new TLS connection to `port` is shown. */
function servedFingerprint(port: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const s = connect({ host: "127.0.0.1", port, rejectUnauthorized: false, servername: "localhost" }, () => {
      const fp = s.getPeerCertificate().fingerprint256;
      s.destroy();
      resolve(fp);
    });
    s.setTimeout(20_000, () => s.destroy(new Error("TLS handshake timed out")));
    s.on("error", reject);
  });
}

/** The next reload of `listener` the relay publishes that satisfies `want`, within 20 s. */
function nextReload(relay: Relay, listener: string, want: (m: TlsReloaded) => boolean): Promise<TlsReloaded> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      stop();
      reject(new Error(`no matching TLS reload of ${listener} within 20 s`));
    }, 20_000);
    const stop = relay.events.tlsReloaded.subscribe((m) => {
      if (m.listener !== listener || !want(m)) return;
      clearTimeout(timer);
      stop();
      resolve(m);
    });
  });
}

/** Put `from` at `to` as a renewal does: written beside it, renamed over it. */
async function replace(from: string | Buffer, to: string): Promise<void> {
  const tmp = `${to}.new`;
  if (typeof from === "string") await copyFile(from, tmp);
  else await writeFile(tmp, from);
  await rename(tmp, to);
}

describe("TLS certificate reload", () => {
  let a: SelfSignedCert;
  let b: SelfSignedCert;
  let fpA: string;
  let fpB: string;
  let dir: string;
  let certFile: string;
  let keyFile: string;
  let stack: Stack;
  let target: Target;
  let agent: Agent | null = null;

  before(async () => {
    a = await makeSelfSignedCert({ commonName: "relay-a" });
    b = await makeSelfSignedCert({ commonName: "relay-b" });
    fpA = certificateFingerprint(await readFile(a.certFile));
    fpB = certificateFingerprint(await readFile(b.certFile));
    assert.notEqual(fpA, fpB);
    dir = await mkdtemp(join(tmpdir(), "underpass-live-"));
    certFile = join(dir, "fullchain.pem");
    keyFile = join(dir, "privkey.pem");
    await copyFile(a.certFile, certFile);
    await copyFile(a.keyFile, keyFile);
    stack = await startStack({
      agent: false,
      relay: {
        tls: { certFile, keyFile },
        adminTls: { certFile, keyFile },
        tlsReload: { watch: true, debounceMs: 200 },
      },
    });
    target = await mapEcho(stack, "echo.corp", "220 behind\r\n");
  });

  after(async () => {
    await agent?.close();
    await target?.close();
    await stack?.close();
    await rm(dir, { recursive: true, force: true });
    await a?.close();
    await b?.close();
  });

  it("serves the renewed certificate to new connections; the tunnel opened before carries on", async () => {
    const tunnelPort = stack.relay.tunnelAddress.port;
    const adminPort = stack.relay.adminAddress.port;
    assert.equal(await servedFingerprint(tunnelPort), fpA);
    assert.equal(await servedFingerprint(adminPort), fpA);
    // an agent pinned to A only: were its tunnel dropped, it could not come back under B
    agent = startAgent({
      relayUrl: `wss://127.0.0.1:${tunnelPort}/tunnel`,
      token: stack.agentToken,
      policy: allowAll(),
      logger: testLogger("agent"),
      pins: { fingerprints: new Set([fpA.replaceAll(":", "").toLowerCase()]) },
      backoff: { baseMs: 50, maxMs: 300 },
    });
    await agent.waitUp(1, 15_000);
    const session = agent.clients[0]?.session;
    assert.ok(session);

    const tunnelB = nextReload(stack.relay, "tunnel", (m) => m.ok && m.fingerprint === fpB);
    const adminB = nextReload(stack.relay, "admin", (m) => m.ok && m.fingerprint === fpB);
    await replace(b.certFile, certFile);
    await replace(b.keyFile, keyFile);
    const reloaded = await tunnelB;
    assert.equal(reloaded.trigger, "watch");
    await adminB;

    assert.equal(await servedFingerprint(tunnelPort), fpB);
    assert.equal(await servedFingerprint(adminPort), fpB);
    assert.equal(agent.clients[0]?.session, session, "the same tunnel, not a new one");
    assert.equal(session.closed, false);
    const s = await socksConnect(stack.socksPort, stack.client, "echo.corp", 21);
    assert.equal((await readAll(s, 12)).toString(), "220 behind\r\n", "the old tunnel still carries");
    s.destroy();
    const admin = await stack.api("GET", "/v1/agents");
    assert.equal(admin.body[0].tunnels, 1);
  });

  it("keeps the serving pair when the new one is broken or does not match", async () => {
    const tunnelPort = stack.relay.tunnelAddress.port;
    const notPem = nextReload(stack.relay, "tunnel", (m) => !m.ok);
    await replace(Buffer.from("not a certificate\n"), certFile);
    const refused = await notPem;
    assert.equal(refused.fingerprint, null);
    assert.ok(refused.error);
    assert.equal(await servedFingerprint(tunnelPort), fpB, "B still serves");

    // A's certificate with B's key: a pair that does not match
    const mismatch = nextReload(stack.relay, "tunnel", (m) => !m.ok && /mismatch/i.test(String(m.error)));
    await replace(a.certFile, certFile);
    await mismatch;
    assert.equal(await servedFingerprint(tunnelPort), fpB, "B still serves");

    // the right pair again is taken up
    const back = nextReload(stack.relay, "tunnel", (m) => m.ok && m.fingerprint === fpB);
    await replace(b.certFile, certFile);
    await back;
    assert.equal(agent?.upCount(), 1, "the tunnel opened under A is still up");
  });

  it("reloads on SIGHUP with the file watch off", async () => {
    const quiet = await startStack({
      agent: false,
      relay: { tls: { certFile, keyFile }, tlsReload: { watch: false, debounceMs: 200 } },
    });
    try {
      const port = quiet.relay.tunnelAddress.port;
      assert.equal(await servedFingerprint(port), fpB);
      await replace(a.certFile, certFile);
      await replace(a.keyFile, keyFile);
      const hup = nextReload(quiet.relay, "tunnel", (m) => m.ok && m.fingerprint === fpA);
      process.kill(process.pid, "SIGHUP");
      assert.equal((await hup).trigger, "sighup");
      assert.equal(await servedFingerprint(port), fpA);
    } finally {
      await quiet.close();
    }
  });
});
