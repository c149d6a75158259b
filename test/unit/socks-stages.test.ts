/**
 * The SOCKS connection's stages on their own: the state machine, the handshake reader (byte
 * vectors, split at every offset, garbage), authentication, destination resolution, tunnel
 * pick and open, each against in-memory stand-ins of the store, the registry and a session.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { hashSecret } from "../../cloud/admin/secrets.js";
import { FtpDataExpectations, ownerKey } from "../../cloud/ftp/expectations.js";
import { resolveDestination } from "../../cloud/socks/access-control.js";
import { anonymous, authenticate, chooseMethod } from "../../cloud/socks/authenticate.js";
import type { RemoteBindControls } from "../../cloud/socks/bind-controls.js";
import { NEED_MORE } from "../../cloud/socks/codec.js";
import { type LiveConnection, LiveConnections } from "../../cloud/socks/connections.js";
import { SOCKS5_AUTH } from "../../cloud/socks/constants.js";
import { readHandshake } from "../../cloud/socks/handshake.js";
import { openOnPremises, pickTunnel } from "../../cloud/socks/open.js";
import { resolveBind, resolveConnect } from "../../cloud/socks/resolve.js";
import { HANDSHAKE_STATES, nextState, REPLYING_STATES, type SocksState } from "../../cloud/socks/state.js";
import type { ClientRecord, MappingRecord, Store } from "../../cloud/store/store.js";
import { AgentRegistry, type Tunnel } from "../../cloud/tunnel/registry.js";
import {
  AuthError,
  HostUnreachableError,
  NoAgentError,
  NotAllowedError,
  SocksHandshakeError,
  UnderpassError,
  UnsupportedAddressTypeError,
} from "../../shared/errors.js";
import { OPEN_KIND } from "../../shared/tunnel/constants.js";
import type { MuxSession } from "../../shared/tunnel/mux-session.js";
import type { MuxStream } from "../../shared/tunnel/mux-stream.js";

const STRICT = { requireAuth: true, anonymousLocation: "default" };
const OPEN = { requireAuth: false, anonymousLocation: "yard" };

function mapping(over: Partial<MappingRecord> & Pick<MappingRecord, "id">): MappingRecord {
  return {
    virtualHost: "ftp.corp",
    virtualPort: { start: 21, end: 21 },
    internalHost: "10.0.0.5",
    internalPort: { start: 21, end: 21 },
    location: "default",
    protocol: "tcp",
    description: "",
    createdAt: "2026-01-01T00:00:00.000Z",
    updatedAt: "2026-01-01T00:00:00.000Z",
    ...over,
  };
}

const CONTROL = mapping({ id: "mp_control", protocol: "ftp" });
const RANGE = mapping({
  id: "mp_range",
  virtualPort: { start: 30000, end: 30010 },
  internalPort: { start: 40000, end: 40010 },
});
const BERLIN = mapping({ id: "mp_berlin", virtualHost: "ftp.berlin", location: "berlin" });
const CLIENT: ClientRecord = {
  id: "cl_1",
  name: "flow",
  location: "default",
  username: "flow-1",
  passwordHash: hashSecret("ups_right"),
  createdAt: "2026-01-01T00:00:00.000Z",
};

/** The store's read side, answering asynchronously as a database would. */
function fakeStore(): Store {
  const all = [CONTROL, RANGE, BERLIN];
  return {
    findClientByUsername: async (u: string) => (u === CLIENT.username ? CLIENT : undefined),
    mappingsOf: async (location: string) => all.filter((m) => m.location === location),
    getMapping: async (id: string) => all.find((m) => m.id === id),
  } as unknown as Store;
}

describe("SOCKS stages", () => {
  describe("states", () => {
    it("moves along the handshake and the stages, and BIND through bound", () => {
      const path: SocksState[] = [
        "greeting",
        "credentials",
        "authenticating",
        "request",
        "resolving",
        "opening",
      ];
      for (let i = 1; i < path.length; i++) assert.equal(nextState(path[i - 1]!, path[i]!), path[i]);
      assert.equal(nextState("greeting", "request"), "request", "no authentication");
      assert.equal(nextState("opening", "spliced"), "spliced");
      assert.equal(nextState("opening", "bound"), "bound");
      assert.equal(nextState("bound", "spliced"), "spliced");
    });

    it("lets every state close, and closed be left for nothing", () => {
      for (const s of [
        "greeting",
        "credentials",
        "authenticating",
        "request",
        "resolving",
        "opening",
        "bound",
        "spliced",
      ] as const) {
        assert.equal(nextState(s, "closed"), "closed");
      }
      for (const to of ["greeting", "request", "spliced", "closed"] as const)
        assert.equal(nextState("closed", to), null);
    });

    it("refuses a move the machine does not have", () => {
      assert.throws(() => nextState("greeting", "spliced"), /cannot move from greeting to spliced/);
      assert.throws(() => nextState("spliced", "opening"), /cannot move/);
      assert.throws(
        () => nextState("credentials", "request"),
        /cannot move/,
        "no request before authentication",
      );
    });

    it("applies the handshake deadline and failure replies where the spec says", () => {
      assert.deepEqual([...HANDSHAKE_STATES], ["greeting", "credentials", "authenticating", "request"]);
      assert.deepEqual([...REPLYING_STATES], ["request", "resolving", "opening"]);
    });
  });

  describe("handshake reader", () => {
    const greeting = Buffer.from([0x05, 0x02, 0x00, 0x02]);
    // VER | ULEN | "flow-1" | PLEN | "pw"
    const credentials = Buffer.concat([
      Buffer.from([0x01, 6]),
      Buffer.from("flow-1"),
      Buffer.from([2]),
      Buffer.from("pw"),
    ]);
    // VER CMD RSV ATYP=domain | LEN | "ftp.corp" | port 21
    const request = Buffer.concat([
      Buffer.from([0x05, 0x01, 0x00, 0x03, 8]),
      Buffer.from("ftp.corp"),
      Buffer.from([0, 21]),
    ]);

    it("needs more for every split of each message, and reads it whole", () => {
      const cases = [
        ["greeting", greeting],
        ["credentials", credentials],
        ["request", request],
      ] as const;
      for (const [state, bytes] of cases) {
        for (let n = 0; n < bytes.length; n++) {
          assert.equal(readHandshake(state, bytes.subarray(0, n), STRICT), NEED_MORE, `${state} cut at ${n}`);
        }
        const step = readHandshake(state, Buffer.concat([bytes, Buffer.from("early")]), STRICT);
        assert.ok(step !== NEED_MORE && !(step instanceof UnderpassError), state);
        assert.equal(step.consumed, bytes.length, `${state} consumes only its own bytes`);
      }
    });

    it("chooses the method, and hands on credentials and request", () => {
      const m = readHandshake("greeting", greeting, STRICT);
      assert.deepEqual(m, { step: "method", method: SOCKS5_AUTH.USERNAME_PASSWORD, consumed: 4 });
      assert.deepEqual(readHandshake("greeting", greeting, OPEN), {
        step: "method",
        method: SOCKS5_AUTH.NO_AUTH,
        consumed: 4,
      });
      const c = readHandshake("credentials", credentials, STRICT);
      assert.deepEqual(c, {
        step: "credentials",
        credentials: { username: "flow-1", password: "pw" },
        consumed: 11,
      });
      const r = readHandshake("request", request, STRICT);
      assert.ok(r !== NEED_MORE && !(r instanceof UnderpassError) && r.step === "request");
      assert.deepEqual(r.request, { command: 0x01, addressType: "domain", host: "ftp.corp", port: 21 });
    });

    it("answers garbage with the coded error", () => {
      assert.ok(
        readHandshake("greeting", Buffer.from([0x04, 0x01, 0x00]), STRICT) instanceof SocksHandshakeError,
      );
      assert.ok(readHandshake("greeting", Buffer.from([0x05, 0x00]), STRICT) instanceof SocksHandshakeError);
      assert.ok(
        readHandshake("credentials", Buffer.from([0x02, 0x00, 0x00]), STRICT) instanceof SocksHandshakeError,
      );
      const atyp = readHandshake("request", Buffer.from([0x05, 0x01, 0x00, 0x05, 1, 2, 3, 4, 0, 21]), STRICT);
      assert.ok(atyp instanceof UnsupportedAddressTypeError);
    });
  });

  describe("authenticate", () => {
    it("chooses no authentication only where it is off", () => {
      const both = [SOCKS5_AUTH.NO_AUTH, SOCKS5_AUTH.USERNAME_PASSWORD];
      assert.equal(chooseMethod(both, STRICT), SOCKS5_AUTH.USERNAME_PASSWORD);
      assert.equal(chooseMethod(both, OPEN), SOCKS5_AUTH.NO_AUTH);
      assert.equal(chooseMethod([SOCKS5_AUTH.NO_AUTH], STRICT), SOCKS5_AUTH.NO_ACCEPTABLE);
      assert.equal(chooseMethod([SOCKS5_AUTH.GSSAPI], OPEN), SOCKS5_AUTH.NO_ACCEPTABLE);
      assert.equal(chooseMethod([SOCKS5_AUTH.USERNAME_PASSWORD], OPEN), SOCKS5_AUTH.USERNAME_PASSWORD);
    });

    it("finds the client by its password, and refuses a wrong one with AuthError", async () => {
      const store = fakeStore();
      assert.deepEqual(await authenticate(store, STRICT, { username: "flow-1", password: "ups_right" }), {
        clientId: "cl_1",
        clientName: "flow",
        location: "default",
      });
      const wrong = await authenticate(store, STRICT, { username: "flow-1", password: "ups_wrong" });
      assert.ok(wrong instanceof AuthError);
      assert.ok(!wrong.message.includes("ups_wrong"), "the password is not repeated");
      assert.ok(
        (await authenticate(store, STRICT, { username: "nobody", password: "x" })) instanceof AuthError,
      );
    });

    it("with authentication off, honours matching credentials and makes anything else anonymous", async () => {
      const store = fakeStore();
      const right = await authenticate(store, OPEN, { username: "flow-1", password: "ups_right" });
      assert.deepEqual(right, { clientId: "cl_1", clientName: "flow", location: "default" });
      const wrong = await authenticate(store, OPEN, { username: "flow-1", password: "nope" });
      assert.deepEqual(wrong, anonymous(OPEN));
      assert.deepEqual(anonymous(OPEN), { clientId: null, clientName: null, location: "yard" });
    });
  });

  describe("resolve", () => {
    const who = { clientId: "cl_1", clientName: "flow", location: "default" };
    const owner = ownerKey("cl_1", "198.51.100.7");
    /** A CONNECT of `who` (or of another owner) to host:port, through the relay at 203.0.113.1. */
    const connectTo = (
      host: string,
      port: number,
      expectations = new FtpDataExpectations(),
      by = owner,
    ): ReturnType<typeof resolveConnect> =>
      resolveConnect(fakeStore(), expectations, who, by, { host, port }, "203.0.113.1");

    it("maps a port of a range with the offset arithmetic, case-insensitively", async () => {
      const t = await connectTo("FTP.Corp", 30004);
      assert.ok(!("error" in t));
      assert.equal(t.grant, "connect");
      assert.equal(t.mapping.id, "mp_range");
      assert.equal(t.internalPort, 40004);
      assert.equal(t.agentId, undefined);
    });

    it("denies what no mapping of the location covers, naming the nearest mappings", async () => {
      const d = await connectTo("ftp.corp", 22);
      assert.ok("error" in d);
      assert.ok(d.error instanceof NotAllowedError);
      assert.equal(d.error.message, "ftp.corp:22 is not mapped for location default");
      assert.deepEqual(d.nearest, ["ftp.corp:21", "ftp.corp:30000-30010"]);
      const berlin = await connectTo("ftp.berlin", 21);
      assert.ok("error" in berlin, "another location's mapping is out of reach");
    });

    it("takes an announced FTP data port first, once, for its owner only", async () => {
      const expectations = new FtpDataExpectations();
      expectations.add({
        owner,
        controlId: "cn_control",
        port: 31000,
        hosts: new Set(["ftp.corp"]),
        mapping: CONTROL,
        internalHost: "10.0.0.5",
        internalPort: 31000,
        agentId: "ag_control",
        expiresAt: Date.now() + 60_000,
      });
      const other = await connectTo("ftp.corp", 31000, expectations, ownerKey("cl_2", "x"));
      assert.ok("error" in other, "another client does not get it");
      const t = await connectTo("ftp.corp", 31000, expectations);
      assert.ok(!("error" in t));
      assert.deepEqual([t.grant, t.internalPort, t.agentId], ["ftp-data", 31000, "ag_control"]);
      const again = await connectTo("ftp.corp", 31000, expectations);
      assert.ok("error" in again, "served once");
    });

    /** A live CONNECT of `who` to the control mapping, from 198.51.100.7. */
    const liveControl = (id: string): LiveConnection => ({
      id,
      kind: "connect",
      clientId: "cl_1",
      clientName: "flow",
      mappingId: "mp_control",
      location: "default",
      virtualHost: "ftp.corp",
      virtualPort: 21,
      internalHost: "10.0.0.5",
      internalPort: 21,
      agentId: "ag_1",
      remoteAddress: "198.51.100.7:5000",
      startedAt: new Date(),
      stream: {} as MuxStream,
      socket: {} as never,
    });

    it("puts a BIND beside the client's live connection, or denies it", async () => {
      const connections = new LiveConnections();
      const none = await resolveBind(fakeStore(), connections, who, "198.51.100.7", {
        host: "0.0.0.0",
        port: 0,
      });
      assert.ok(!(none instanceof UnderpassError) && "error" in none);
      assert.match(none.error.message, /BIND needs a live connection/);
      connections.add(liveControl("cn_1"));
      const t = await resolveBind(fakeStore(), connections, who, "198.51.100.7", {
        host: "0.0.0.0",
        port: 0,
      });
      assert.ok(!(t instanceof UnderpassError) && !("error" in t));
      assert.deepEqual([t.control.id, t.mapping.id], ["cn_1", "mp_control"]);
    });

    it("in a cluster, takes another relay's connection to DST's host over this relay's to another host, and waits for one only when there is none here", async () => {
      const connections = new LiveConnections();
      const asked: Array<[string, boolean]> = [];
      /** Another relay carries the client's connection to ftp.other. */
      const others: RemoteBindControls = {
        find: async (_client, _address, host, patient) => {
          asked.push([host, patient]);
          return {
            id: "cn_there",
            location: "default",
            mappingId: "mp_control",
            virtualHost: "ftp.other",
            virtualPort: 21,
            internalHost: "10.0.0.6",
            internalPort: 21,
            agentId: "ag_2",
          };
        },
        whenGone: () => () => {},
      };
      const bind = (host: string) =>
        resolveBind(fakeStore(), connections, who, "198.51.100.7", { host, port: 0 }, others);
      const none = await bind("0.0.0.0");
      assert.ok(!(none instanceof UnderpassError) && !("error" in none));
      assert.deepEqual([none.control.id, none.local], ["cn_there", false], "none here: another relay's");
      connections.add(liveControl("cn_here"));
      const toHere = await bind("FTP.corp");
      assert.ok(!(toHere instanceof UnderpassError) && !("error" in toHere));
      assert.deepEqual([toHere.control.id, toHere.local], ["cn_here", true]);
      const toThere = await bind("ftp.other");
      assert.ok(!(toThere instanceof UnderpassError) && !("error" in toThere));
      assert.deepEqual([toThere.control.id, toThere.local], ["cn_there", false], "to DST's host, elsewhere");
      const fake = await bind("0.0.0.0");
      assert.ok(!(fake instanceof UnderpassError) && !("error" in fake));
      assert.deepEqual([fake.control.id, fake.local], ["cn_here", true], "to no one's host: this relay's");
      assert.deepEqual(asked, [
        ["0.0.0.0", true],
        ["ftp.other", false],
        ["0.0.0.0", false],
      ]);
    });

    it("resolves against the mappings alone (pure)", () => {
      const g = resolveDestination([RANGE], "ftp.corp", 30010);
      assert.ok(g.allowed);
      assert.equal(g.internalPort, 40010);
      assert.equal(resolveDestination([RANGE], "ftp.corp", 30011).allowed, false);
    });
  });

  describe("pick and open", () => {
    /** A tunnel whose session is a stand-in: live, with a stream count and an `open` answer. */
    function tunnel(
      id: string,
      agentId: string,
      open: MuxSession["open"],
      capabilities = ["connect"],
    ): Tunnel {
      const session = { closed: false, established: true, streamCount: 0, open } as unknown as MuxSession;
      return {
        id,
        agentId,
        agentName: agentId,
        location: "default",
        session,
        connectedAt: new Date(),
        remoteAddress: "127.0.0.1:1",
        agentVersion: "0.1.0",
        hostName: null,
        instanceId: null,
        capabilities,
        opens: { pending: 0 },
        maxStreams: 32_768,
        maxPendingOpens: 1024,
      };
    }
    const never: MuxSession["open"] = () => new Promise(() => {});

    it("answers NoAgentError naming the location, and for BIND the capability", () => {
      const registry = new AgentRegistry();
      const none = pickTunnel(registry, "default");
      assert.ok(none instanceof NoAgentError);
      assert.equal(none.message, "no agent connected for location default");
      registry.add(tunnel("tn_1", "ag_1", never));
      const bind = pickTunnel(registry, "default", { capability: "bind" });
      assert.ok(bind instanceof NoAgentError);
      assert.equal(bind.message, "no agent serving BIND for location default");
    });

    it("prefers the agent asked for", () => {
      const registry = new AgentRegistry();
      registry.add(tunnel("tn_1", "ag_1", never));
      registry.add(tunnel("tn_2", "ag_2", never));
      for (let i = 0; i < 4; i++) {
        const t = pickTunnel(registry, "default", { agentId: "ag_2" });
        assert.ok(!(t instanceof UnderpassError));
        assert.equal(t.id, "tn_2");
      }
    });

    it("turns a failed open into its coded error, and hands a good one on", async () => {
      const failing = tunnel("tn_1", "ag_1", () =>
        Promise.reject(new HostUnreachableError("dial timed out")),
      );
      const failed = await openOnPremises(failing, OPEN_KIND.CONNECT, "10.0.0.5", 21, 1_000);
      assert.ok(failed instanceof HostUnreachableError);
      const crashed = tunnel("tn_2", "ag_1", () => Promise.reject(new Error("boom")));
      const internal = await openOnPremises(crashed, OPEN_KIND.CONNECT, "10.0.0.5", 21, 1_000);
      assert.ok(internal instanceof UnderpassError);
      assert.equal(internal.code, "UP_ERR_INTERNAL");
      const stream = { id: 1 } as MuxStream;
      const good = tunnel("tn_3", "ag_1", async () => ({ stream, address: "10.0.0.9", port: 50000 }));
      assert.deepEqual(await openOnPremises(good, OPEN_KIND.CONNECT, "10.0.0.5", 21, 1_000), {
        stream,
        address: "10.0.0.9",
        port: 50000,
      });
    });
  });
});
