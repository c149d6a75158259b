import assert from "node:assert/strict";
import { describe, it } from "node:test";
import {
  encodeAuthReply,
  encodeMethodReply,
  encodeReply,
  NEED_MORE,
  type Parsed,
  parseCredentials,
  parseGreeting,
  parseRequest,
} from "../../cloud/socks/codec.js";
import { SOCKS5_REPLY } from "../../cloud/socks/constants.js";
import { seededRandom } from "../helpers/seeded-random.js";

const hex = (text: string): Buffer => Buffer.from(text.replace(/\s+/g, ""), "hex");

/** Every proper prefix needs more; the whole message parses, and so does it with bytes after it. */
function parsesWhole<T>(parse: (b: Buffer) => Parsed<T>, bytes: Buffer): T {
  for (let n = 0; n < bytes.length; n++) {
    assert.equal(parse(bytes.subarray(0, n)), NEED_MORE, `${n} of ${bytes.length} bytes`);
  }
  const trailing = Buffer.concat([bytes, hex("deadbeef")]);
  for (const b of [bytes, trailing]) {
    const r = parse(b);
    assert.ok(r !== NEED_MORE && r.ok, `expected a value, got ${JSON.stringify(r)}`);
    assert.equal(r.consumed, bytes.length);
  }
  const r = parse(bytes);
  assert.ok(r !== NEED_MORE && r.ok);
  return r.value;
}

function failure<T>(r: Parsed<T>) {
  assert.ok(
    r !== NEED_MORE && !r.ok,
    `expected a failure, got ${String(r === NEED_MORE ? "need more" : "a value")}`,
  );
  return r;
}

describe("SOCKS5 greeting and credentials", () => {
  it("reads VER NMETHODS METHODS, byte by byte", () => {
    assert.deepEqual(parsesWhole(parseGreeting, hex("05 02 00 02")), { methods: [0x00, 0x02] });
    assert.match(failure(parseGreeting(hex("04 01 00"))).message, /not SOCKS5/);
    assert.match(failure(parseGreeting(hex("05 00"))).message, /no methods/);
  });

  it("reads RFC 1929 VER ULEN UNAME PLEN PASSWD, byte by byte", () => {
    const bytes = Buffer.concat([hex("01 03"), Buffer.from("bob"), hex("02"), Buffer.from("pw")]);
    assert.deepEqual(parsesWhole(parseCredentials, bytes), { username: "bob", password: "pw" });
    assert.deepEqual(parsesWhole(parseCredentials, hex("01 00 00")), { username: "", password: "" });
    assert.match(failure(parseCredentials(hex("05 00 00"))).message, /is not 1/);
  });

  it("writes the method and auth replies", () => {
    assert.deepEqual(encodeMethodReply(0x02), hex("05 02"));
    assert.deepEqual(encodeAuthReply(0x00), hex("01 00"));
  });
});

describe("SOCKS5 request (RFC 1928 §4)", () => {
  it("ATYP 0x01: 4 header + 4 ip + 2 port", () => {
    assert.deepEqual(parsesWhole(parseRequest, hex("05 01 00 01  0a 00 00 01  00 15")), {
      command: 0x01,
      addressType: "ipv4",
      host: "10.0.0.1",
      port: 21,
    });
  });

  it("ATYP 0x03: 4 header + 1 length + name + 2 port, the name as sent", () => {
    const bytes = Buffer.concat([hex("05 02 00 03 08"), Buffer.from("FTP.corp"), hex("75 30")]);
    assert.deepEqual(parsesWhole(parseRequest, bytes), {
      command: 0x02,
      addressType: "domain",
      host: "FTP.corp",
      port: 30000,
    });
    assert.match(failure(parseRequest(hex("05 01 00 03 00 00 15"))).message, /empty domain/);
  });

  it("ATYP 0x04: 4 header + 16 ip + 2 port, the address in RFC 5952 form", () => {
    const cases: Array<[string, string]> = [
      ["2001 0db8 0000 0000 0000 0000 0000 0001", "2001:db8::1"],
      ["0000 0000 0000 0000 0000 0000 0000 0000", "::"],
      ["0000 0000 0000 0000 0000 ffff 0a00 0001", "::ffff:a00:1"], // stays IPv6, as sent
      ["2001 0db8 0000 0001 0000 0000 0001 0000", "2001:db8:0:1::1:0"],
      ["fe80 0000 0000 0000 0000 0000 0000 00ff", "fe80::ff"],
    ];
    for (const [address, host] of cases) {
      const value = parsesWhole(parseRequest, hex(`05 01 00 04 ${address} 1f 90`));
      assert.deepEqual(value, { command: 0x01, addressType: "ipv6", host, port: 8080 });
    }
  });

  it("refuses another version, and names an unknown address type as such", () => {
    assert.match(failure(parseRequest(hex("04 01 00 01 0a 00 00 01 00 15"))).message, /not SOCKS5/);
    const r = failure(parseRequest(hex("05 01 00 05 00 00")));
    assert.equal(r.addressTypeUnsupported, true);
    assert.equal(failure(parseRequest(hex("05 01 00 03 00 00 15"))).addressTypeUnsupported, false);
  });

  it("never throws on garbage, and never consumes more than it was given", () => {
    const next = seededRandom(0x1234567);
    for (let n = 0; n < 3000; n++) {
      const bytes = Buffer.from(Array.from({ length: next() % 40 }, () => next() & 0xff));
      for (const parse of [parseGreeting, parseCredentials, parseRequest] as const) {
        const r = parse(bytes);
        if (r !== NEED_MORE && r.ok) assert.ok(r.consumed <= bytes.length);
      }
    }
  });
});

describe("SOCKS5 reply (RFC 1928 §6)", () => {
  it("IPv4: 4 header + 4 ip + 2 port", () => {
    assert.deepEqual(
      encodeReply(SOCKS5_REPLY.SUCCEEDED, "192.0.2.1", 1080),
      hex("05 00 00 01 c0 00 02 01 04 38"),
    );
    assert.deepEqual(encodeReply(SOCKS5_REPLY.SUCCEEDED), hex("05 00 00 01 00 00 00 00 00 00"));
  });

  it("IPv6: 4 header + 16 ip + 2 port, from any spelling, IPv4-mapped kept as IPv6, zone dropped", () => {
    const doc = hex("05 00 00 04 2001 0db8 0000 0000 0000 0000 0000 0001 00 15");
    for (const address of ["2001:db8::1", "2001:DB8:0:0:0:0:0:1", "2001:db8::0.0.0.1"]) {
      assert.deepEqual(encodeReply(SOCKS5_REPLY.SUCCEEDED, address, 21), doc, address);
    }
    assert.deepEqual(
      encodeReply(SOCKS5_REPLY.SUCCEEDED, "::ffff:10.0.0.1", 21),
      hex("05 00 00 04 0000 0000 0000 0000 0000 ffff 0a00 0001 00 15"),
    );
    assert.deepEqual(
      encodeReply(SOCKS5_REPLY.SUCCEEDED, "fe80::1%eth0", 21),
      hex("05 00 00 04 fe80 0000 0000 0000 0000 0000 0000 0001 00 15"),
    );
  });

  it("a name: 4 header + 1 length + name + 2 port", () => {
    assert.deepEqual(
      encodeReply(SOCKS5_REPLY.GENERAL_FAILURE, "relay.example", 443),
      Buffer.concat([hex("05 01 00 03 0d"), Buffer.from("relay.example"), hex("01 bb")]),
    );
  });

  it("is read back by the request parser (same layout, REP for CMD)", () => {
    for (const address of ["10.1.2.3", "2001:db8::8", "::ffff:a00:1", "relay.example"]) {
      const r = parseRequest(encodeReply(SOCKS5_REPLY.SUCCEEDED, address, 65535));
      assert.ok(r !== NEED_MORE && r.ok, address);
      assert.equal(r.value.host, address);
      assert.equal(r.value.port, 65535);
    }
  });
});
