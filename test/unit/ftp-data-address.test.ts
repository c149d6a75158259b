import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { ValidationError } from "../../shared/errors.js";
import {
  type DataAddressProblem,
  type DataAddressResult,
  formatEprtArgument,
  formatEpsvPort,
  formatHostPortNumbers,
  formatLongHostPort,
  type HostPort,
  parseEprtAddress,
  parseEpsvReply,
  parseHostPortNumbers,
  parseLprtAddress,
  parsePasvReply,
  parsePortAddress,
} from "../../shared/ftp/data-address.js";

function value(r: DataAddressResult): HostPort {
  assert.ok(r.ok, `expected an address, got ${r.ok ? "" : `${r.problem}: ${r.message}`}`);
  return r.value;
}

function problem(r: DataAddressResult): DataAddressProblem {
  assert.ok(!r.ok, `expected a problem, got ${JSON.stringify(r)}`);
  return r.problem;
}

/** `6,16,` and the 16 bytes of `::1` (or of the address given) as LPRT numbers. */
const V6_LOOPBACK = "6,16,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,1";

/** Inputs no parser may take, whichever command they follow. */
const GARBAGE = [
  "",
  " ",
  ",",
  ",,,,,",
  "||||",
  "\x00\x01\x02",
  "\xff\xfe",
  "1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20,21,22,23,24,25",
  "9".repeat(5000),
  "(1,2,3,4,5,6)",
  "-1,2,3,4,5,6",
];

describe("PORT (RFC 959 §4.1.2)", () => {
  it("reads exactly six numbers, blanks around them allowed", () => {
    assert.deepEqual(value(parsePortAddress("127,0,0,1,200,1")), { host: "127.0.0.1", port: 51201 });
    assert.deepEqual(value(parsePortAddress(" 10,1,2,3,0,1 \t")), { host: "10.1.2.3", port: 1 });
    assert.deepEqual(value(parsePortAddress("255,255,255,255,255,255")), {
      host: "255.255.255.255",
      port: 65535,
    });
  });

  it("says what is wrong: syntax, or port 0", () => {
    for (const arg of [
      "1,2,3",
      "127,0,0,1,200,1,5",
      "127,0,0,1,256,1",
      "127,0,0,1,200",
      "127, 0,0,1,200,1",
    ]) {
      assert.equal(problem(parsePortAddress(arg)), "syntax", arg);
    }
    assert.equal(problem(parsePortAddress("127,0,0,1,0,0")), "port");
    for (const arg of GARBAGE) assert.equal(problem(parsePortAddress(arg)), "syntax", JSON.stringify(arg));
  });

  it("writes what it reads, IPv4 only", () => {
    assert.equal(formatHostPortNumbers("10.1.2.3", 40001), "10,1,2,3,156,65");
    assert.deepEqual(value(parsePortAddress(formatHostPortNumbers("192.0.2.1", 65535))), {
      host: "192.0.2.1",
      port: 65535,
    });
    for (const host of ["fd00::1", "::ffff:10.0.0.1", "ftp.corp", ""]) {
      assert.throws(() => formatHostPortNumbers(host, 21), ValidationError, host);
    }
  });

  it("finds the six numbers of a 227 reply, with or without parentheses", () => {
    assert.deepEqual(parsePasvReply("227 Entering Passive Mode (10,255,255,1,117,48)."), {
      host: "10.255.255.1",
      port: 30000,
    });
    assert.deepEqual(parseHostPortNumbers("=10,0,0,5,4,1"), { host: "10.0.0.5", port: 1025 });
    assert.equal(parsePasvReply("227-Entering Passive Mode (10,0,0,1,4,1)."), null);
    assert.equal(parsePasvReply("227 Entering Passive Mode (10,0,0,1,0,0)."), null);
    assert.equal(parseHostPortNumbers("no numbers"), null);
  });
});

describe("EPRT (RFC 2428 §2)", () => {
  it("reads both families with any delimiter of ASCII 33-126, the address in canonical form", () => {
    assert.deepEqual(value(parseEprtAddress("|1|132.235.1.2|6275|")), { host: "132.235.1.2", port: 6275 });
    assert.deepEqual(value(parseEprtAddress("|2|1080::8:800:200C:417A|5282|")), {
      host: "1080::8:800:200c:417a",
      port: 5282,
    });
    assert.deepEqual(value(parseEprtAddress("!2!FD00:0::1!21!")), { host: "fd00::1", port: 21 });
    assert.deepEqual(value(parseEprtAddress("~1~10.0.0.1~65535~")), { host: "10.0.0.1", port: 65535 });
    assert.deepEqual(value(parseEprtAddress("  |1|10.0.0.1|1|  ")), { host: "10.0.0.1", port: 1 });
  });

  it("says what is wrong: syntax, an unknown protocol, a wrong address, or the port", () => {
    const cases: Array<[string, DataAddressProblem]> = [
      ["|1|10.0.0.1|6446", "syntax"],
      ["|1|10.0.0.1|6446|x", "syntax"],
      ["|1|10.0.0.1|64a6|", "syntax"],
      ["|1|10.0.0.1||", "syntax"],
      ["|1|10.0.0.1|123456|", "syntax"],
      ["\x011\x0110.0.0.1\x016446\x01", "syntax"], // a control character is no delimiter
      ["\x7f1\x7f10.0.0.1\x7f6446\x7f", "syntax"],
      ["garbage", "syntax"],
      ["|3|10.0.0.1|6446|", "protocol"],
      ["||10.0.0.1|6446|", "protocol"],
      ["|2|10.0.0.1|6446|", "address"],
      ["|1|::1|6446|", "address"],
      ["|1|010.0.0.1|6446|", "address"],
      ["|1|ftp.corp|6446|", "address"],
      ["|1|10.0.0.1|0|", "port"],
      ["|1|10.0.0.1|65536|", "port"],
    ];
    for (const [arg, expected] of cases)
      assert.equal(problem(parseEprtAddress(arg)), expected, JSON.stringify(arg));
    for (const arg of GARBAGE) assert.ok(!parseEprtAddress(arg).ok, JSON.stringify(arg));
  });

  it("writes what it reads", () => {
    assert.equal(formatEprtArgument("10.0.0.1", 5), "|1|10.0.0.1|5|");
    assert.equal(formatEprtArgument("fd00::1", 5), "|2|fd00::1|5|");
    for (const [host, port] of [
      ["192.0.2.1", 1],
      ["2001:db8::1", 65535],
    ] as const) {
      assert.deepEqual(value(parseEprtAddress(formatEprtArgument(host, port))), { host, port });
    }
  });
});

describe("LPRT (RFC 1639 §2)", () => {
  it("reads IPv4 (af 4, hal 4) and IPv6 (af 6, hal 16), pal 2", () => {
    assert.deepEqual(value(parseLprtAddress("4,4,132,235,1,2,2,24,131")), {
      host: "132.235.1.2",
      port: 6275,
    });
    assert.deepEqual(value(parseLprtAddress(` ${V6_LOOPBACK},2,200,1 `)), { host: "::1", port: 51201 });
    assert.deepEqual(value(parseLprtAddress("6,16,254,128,0,0,0,0,0,0,0,0,0,0,0,0,0,1,2,0,21")), {
      host: "fe80::1",
      port: 21,
    });
    assert.deepEqual(value(parseLprtAddress("6,16,0,0,0,0,0,0,0,0,0,0,255,255,10,0,0,1,2,4,1")), {
      host: "::ffff:a00:1", // as sent: the family is the client's to choose
      port: 1025,
    });
  });

  it("says what is wrong: syntax, an unknown family, or the port", () => {
    const cases: Array<[string, DataAddressProblem]> = [
      ["4,4,10,0,0,1,2,4", "syntax"], // one port byte short
      ["4,4,10,0,0,1,2,4,1,0", "syntax"], // one byte too many
      ["4,4,10,0,0,1,3,0,4,1", "syntax"], // pal 3
      ["4,4,10,0,0,1,1,21", "syntax"], // pal 1
      ["4,4,10,0,0,1,3,4,1", "syntax"], // pal 3 before two port bytes
      ["4,4,10,0,0,1,1,4,1", "syntax"], // pal 1 before two port bytes
      ["4,16,10,0,0,1,2,4,1", "syntax"], // hal of the other family
      [`6,4,10,0,0,1,2,4,1`, "syntax"],
      ["4,4,10,0,0,256,2,4,1", "syntax"],
      ["4,4,10,0,0,1,2,4,1,", "syntax"],
      ["4,4,10,0,0,1,2,4,1 x", "syntax"],
      ["4;4;10;0;0;1;2;4;1", "syntax"],
      ["5,4,10,0,0,1,2,4,1", "protocol"],
      ["0,4,10,0,0,1,2,4,1", "protocol"],
      ["4,4,10,0,0,1,2,0,0", "port"],
      [`${V6_LOOPBACK},2,0,0`, "port"],
    ];
    for (const [arg, expected] of cases) assert.equal(problem(parseLprtAddress(arg)), expected, arg);
    for (const arg of GARBAGE) assert.ok(!parseLprtAddress(arg).ok, JSON.stringify(arg));
  });

  it("writes what it reads, for both families", () => {
    assert.equal(formatLongHostPort("10.0.0.1", 1025), "4,4,10,0,0,1,2,4,1");
    assert.equal(formatLongHostPort("::1", 51201), `${V6_LOOPBACK},2,200,1`);
    for (const [host, port] of [
      ["192.0.2.1", 1],
      ["2001:db8::1", 65535],
      ["fe80::1", 21],
    ] as const) {
      assert.deepEqual(value(parseLprtAddress(formatLongHostPort(host, port))), { host, port });
    }
    assert.throws(() => formatLongHostPort("ftp.corp", 21), ValidationError);
  });
});

describe("229 (RFC 2428 §3)", () => {
  it("reads the port with any delimiter and writes the form the demo server sends", () => {
    assert.equal(parseEpsvReply(`229 Entering Extended Passive Mode ${formatEpsvPort(6446)}`), 6446);
    assert.equal(parseEpsvReply("229 Entering Extended Passive Mode (!!!6446!)"), 6446);
    assert.equal(parseEpsvReply("229 Entering Extended Passive Mode (|!|6446|)"), null);
    assert.equal(parseEpsvReply("229 Entering Extended Passive Mode (|||0|)"), null);
    assert.equal(parseEpsvReply("229-Entering Extended Passive Mode (|||6446|)"), null);
    assert.equal(formatEpsvPort(21), "(|||21|)");
  });
});
