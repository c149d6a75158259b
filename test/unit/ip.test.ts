import assert from "node:assert/strict";
import { describe, it } from "node:test";
import {
  formatIp,
  type IpAddress,
  ipFromBytes,
  isIPv4Mapped,
  isLoopback,
  networkOf,
  parseIp,
  unmapIp,
  withoutZone,
} from "../../shared/net/ip.js";
import { seededRandom } from "../helpers/seeded-random.js";

function parsed(text: string): IpAddress {
  const ip = parseIp(text);
  assert.ok(ip, `${text} should parse`);
  return ip;
}

function bytesOf(text: string): number[] {
  return [...parsed(text).bytes];
}

describe("parseIp", () => {
  it("reads IPv4 into 4 bytes in network order", () => {
    assert.deepEqual(parsed("192.0.2.1"), { family: 4, bytes: Uint8Array.of(192, 0, 2, 1) });
    assert.deepEqual(bytesOf("0.0.0.0"), [0, 0, 0, 0]);
    assert.deepEqual(bytesOf("255.255.255.255"), [255, 255, 255, 255]);
  });

  it("reads every IPv6 spelling into 16 bytes in network order", () => {
    const one = [0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1];
    for (const text of ["2001:db8::1", "2001:DB8:0:0:0:0:0:1", "2001:0db8:0000::0001", "2001:db8::0.0.0.1"]) {
      assert.deepEqual(bytesOf(text), one, text);
    }
    assert.deepEqual(bytesOf("::"), new Array(16).fill(0));
    assert.deepEqual(bytesOf("::1"), [...new Array(15).fill(0), 1]);
    assert.deepEqual(bytesOf("1::"), [0, 1, ...new Array(14).fill(0)]);
    assert.deepEqual(bytesOf("::ffff:10.0.0.1"), [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 10, 0, 0, 1]);
    assert.deepEqual(bytesOf("1:2:3:4:5:6:7:8"), [0, 1, 0, 2, 0, 3, 0, 4, 0, 5, 0, 6, 0, 7, 0, 8]);
    assert.deepEqual(bytesOf("1::8"), [0, 1, ...new Array(12).fill(0), 0, 8]);
  });

  it("keeps an IPv6 zone apart from the address bits", () => {
    const ip = parsed("fe80::1%eth0");
    assert.equal(ip.zone, "eth0");
    assert.deepEqual([...ip.bytes], bytesOf("fe80::1"));
    assert.equal(withoutZone(ip).zone, undefined);
    assert.equal(parsed("fe80::1").zone, undefined);
  });

  it("refuses what node:net's isIP refuses: shorthand, leading zeros, brackets, blanks", () => {
    for (const text of [
      "",
      "1.2.3",
      "1.2.3.4.5",
      "010.0.0.1",
      "0x0a000001",
      "167772161",
      "10.0.0.256",
      " 10.0.0.1",
      "::g",
      "1::2::3",
      "1:2:3:4:5:6:7:8:9",
      "[::1]",
      "fe80::1%",
      "ftp.corp",
    ]) {
      assert.equal(parseIp(text), undefined, JSON.stringify(text));
    }
  });
});

describe("formatIp", () => {
  // RFC 5952 §4: lower case, no leading zeros, "::" for the first longest run of 2+ zero words
  const cases: Array<[string, string]> = [
    ["2001:0db8:0000:0000:0000:0000:0000:0001", "2001:db8::1"],
    ["2001:db8:0:0:1:0:0:1", "2001:db8::1:0:0:1"], // §4.2.3: the first of two equal runs
    ["2001:0:0:1:0:0:0:1", "2001:0:0:1::1"], // §4.2.3: the longest run
    ["2001:db8:0:1:1:1:1:1", "2001:db8:0:1:1:1:1:1"], // §4.2.2: one zero word stays
    ["2001:DB8::ABCD", "2001:db8::abcd"], // §4.3
    ["::", "::"],
    ["::1", "::1"],
    ["1::", "1::"],
    ["1:0:0:0:0:0:0:0", "1::"],
    ["0:0:0:0:0:0:0:1", "::1"],
    ["::ffff:192.0.2.1", "::ffff:c000:201"], // hexadecimal, IPv4-mapped included
    ["64:ff9b::192.0.2.33", "64:ff9b::c000:221"],
    ["fe80::0:1%eth0", "fe80::1%eth0"],
    ["192.0.2.1", "192.0.2.1"],
  ];
  for (const [input, output] of cases) {
    it(`${input} -> ${output}`, () => assert.equal(formatIp(parsed(input)), output));
  }

  it("writes what WHATWG URL writes, and reads it back, for many addresses", () => {
    const next = seededRandom(0x5eed);
    for (let n = 0; n < 2000; n++) {
      // words that are often zero, so that runs of every length and position come up
      const words = Array.from({ length: 8 }, () => (next() % 2 === 0 ? 0 : next() & 0xffff));
      const bytes = new Uint8Array(16);
      words.forEach((w, i) => {
        bytes[i * 2] = w >> 8;
        bytes[i * 2 + 1] = w & 0xff;
      });
      const text = formatIp(ipFromBytes(bytes));
      const full = words.map((w) => w.toString(16)).join(":");
      assert.equal(text, new URL(`http://[${full}]/`).hostname.slice(1, -1), full);
      assert.deepEqual(parsed(text).bytes, bytes, text);
    }
  });
});

describe("ipFromBytes", () => {
  it("takes 4 or 16 bytes and nothing else", () => {
    assert.equal(formatIp(ipFromBytes(Uint8Array.of(10, 0, 0, 1))), "10.0.0.1");
    assert.equal(ipFromBytes(new Uint8Array(16)).family, 6);
    for (const length of [0, 3, 5, 15, 17]) {
      assert.throws(() => ipFromBytes(new Uint8Array(length)), RangeError);
    }
  });
});

describe("unmapIp / isIPv4Mapped", () => {
  it("turns ::ffff:0:0/96 into IPv4, in every spelling", () => {
    for (const text of [
      "::ffff:10.0.0.1",
      "::FFFF:a00:1",
      "0:0:0:0:0:ffff:10.0.0.1",
      "::ffff:10.0.0.1%eth0",
    ]) {
      const ip = parsed(text);
      assert.ok(isIPv4Mapped(ip), text);
      assert.deepEqual(unmapIp(ip), { family: 4, bytes: Uint8Array.of(10, 0, 0, 1) }, text);
    }
  });

  it("leaves every other address as it is", () => {
    for (const text of ["::10.0.0.1", "::fffe:a00:1", "64:ff9b::a00:1", "1::ffff:a00:1", "::", "10.0.0.1"]) {
      const ip = parsed(text);
      assert.ok(!isIPv4Mapped(ip), text);
      assert.equal(unmapIp(ip), ip, text);
    }
  });
});

describe("networkOf", () => {
  const cases: Array<[string, number, string]> = [
    ["10.9.9.9", 31, "10.9.9.8"],
    ["10.9.9.9", 32, "10.9.9.9"],
    ["10.200.0.1", 8, "10.0.0.0"],
    ["255.255.255.255", 0, "0.0.0.0"],
    ["192.168.255.255", 17, "192.168.128.0"],
    ["fd12:3456::1", 8, "fd00::"],
    ["2001:db8::1", 127, "2001:db8::"],
    ["2001:db8:ffff:ffff:ffff:ffff:ffff:ffff", 57, "2001:db8:ffff:ff80::"],
    ["ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", 128, "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"],
    ["ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", 0, "::"],
  ];
  for (const [address, prefix, network] of cases) {
    it(`${address}/${prefix} is in ${network}`, () => {
      assert.equal(formatIp(networkOf(parsed(address), prefix)), network);
    });
  }

  it("does not change the address it was given", () => {
    const ip = parsed("10.9.9.9");
    networkOf(ip, 8);
    assert.equal(formatIp(ip), "10.9.9.9");
  });
});

describe("isLoopback", () => {
  it("is 127.0.0.0/8 and ::1, IPv4-mapped loopback included", () => {
    for (const text of ["127.0.0.1", "127.255.255.254", "::1", "::ffff:127.0.0.1", "::ffff:7f00:2"]) {
      assert.ok(isLoopback(parsed(text)), text);
    }
    for (const text of ["128.0.0.1", "126.255.255.255", "::2", "::", "::7f00:1", "fe80::1%lo", "0.0.0.1"]) {
      assert.ok(!isLoopback(parsed(text)), text);
    }
  });
});
