import assert from "node:assert/strict";
import { describe, it } from "node:test";
import {
  dnsNameProblem,
  hostProblem,
  normalizeAddress,
  normalizeHost,
  normalizeHostName,
  unbracket,
  unmapIPv4,
} from "../../shared/net/host.js";
import { parseIp } from "../../shared/net/ip.js";

describe("normalizeHost", () => {
  it("gives names and addresses one spelling each", () => {
    const cases: Array<[string, string]> = [
      ["FTP.Corp.", "ftp.corp"],
      ["  ftp.corp  ", "ftp.corp"],
      ["[FD00::0021]", "fd00::21"],
      ["2001:DB8:0:0:0:0:0:1", "2001:db8::1"],
      ["[10.0.0.1]", "10.0.0.1"],
      ["10.0.0.1", "10.0.0.1"],
      ["::ffff:10.0.0.1", "::ffff:a00:1"], // stays IPv6: unmapIPv4 is the caller's choice
      ["fe80::0:1%eth0", "fe80::1%eth0"],
      [".", "."],
      ["Not A Host", "not a host"], // a key, not a validator
    ];
    for (const [input, output] of cases) assert.equal(normalizeHost(input), output, input);
  });
});

describe("unmapIPv4", () => {
  it("turns an IPv4-mapped IPv6 address into dotted IPv4, in any spelling", () => {
    for (const text of ["::ffff:10.0.0.1", "::FFFF:10.0.0.1", "::ffff:a00:1", "0:0:0:0:0:ffff:0a00:0001"]) {
      assert.equal(unmapIPv4(text), "10.0.0.1", text);
    }
  });

  it("returns anything else exactly as given", () => {
    for (const text of [
      "10.0.0.1",
      "fd00::1",
      "FD00:0::1",
      "::10.0.0.1",
      "ftp.corp",
      "",
      "[::ffff:10.0.0.1]",
    ]) {
      assert.equal(unmapIPv4(text), text, text);
    }
  });
});

describe("normalizeAddress", () => {
  it("is one key per host for socket and PORT addresses, IPv4-mapped ones as IPv4", () => {
    for (const text of ["10.0.0.1", "::ffff:10.0.0.1", "::FFFF:A00:1", "0:0:0:0:0:ffff:10.0.0.1"]) {
      assert.equal(normalizeAddress(text), "10.0.0.1", text);
    }
    assert.equal(normalizeAddress("FD00:0::1"), "fd00::1");
    assert.equal(normalizeAddress("::10.0.0.1"), "::a00:1");
    assert.equal(normalizeAddress("FTP.Corp."), "ftp.corp");
  });
});

describe("unbracket", () => {
  it("takes off a pair of brackets and only a pair", () => {
    assert.equal(unbracket("[::1]"), "::1");
    assert.equal(unbracket("[::1"), "[::1");
    assert.equal(unbracket("::1]"), "::1]");
    assert.equal(unbracket("ftp.corp"), "ftp.corp");
  });
});

describe("the one host-name rule", () => {
  const accepted = [
    "ftp.corp",
    "FTP.Corp",
    "localhost",
    "files_01.corp", // underscores, as real on-premise names have them
    "_ldap._tcp.corp",
    "a-b.c-d",
    "0xcafe.corp", // a hex-looking label is fine anywhere but last
    "10.corp",
    `${"a".repeat(63)}.corp`,
    `${"abcd.".repeat(49)}corp`, // 249 characters
    "ftp.corp.",
  ];
  const refused: Array<[string, RegExp]> = [
    ["", /empty label/],
    ["ftp..corp", /empty label/],
    ["-ftp.corp", /not a valid host name/],
    ["ftp.corp-", /not a valid host name/],
    ["ftp corp", /not a valid host name/],
    ["ftp.*.corp", /not a valid host name/],
    ["bücher.example", /not ASCII/],
    [`${"a".repeat(64)}.corp`, /longer than 63/],
    [`${"abc.".repeat(64)}corp`, /longer than 253/],
    ["1.2.3", /not a valid IPv4 address/],
    ["files.corp.0x10", /not a valid IPv4 address/], // WHATWG URL: ends in a number
    ["files.corp.0X", /not a valid IPv4 address/],
    ["files.corp.42", /not a valid IPv4 address/],
  ];

  it("accepts RFC 1123 names, with underscores", () => {
    for (const name of accepted) {
      const bare = name.endsWith(".") ? name.slice(0, -1) : name;
      assert.equal(dnsNameProblem(bare), undefined, name);
      assert.equal(normalizeHostName(name), normalizeHost(name), name);
    }
  });

  it("refuses the rest, saying why", () => {
    for (const [name, why] of refused) {
      assert.match(dnsNameProblem(name) ?? "", why, name);
      assert.equal(normalizeHostName(name), undefined, name);
    }
  });

  it("is the same rule for the admin API (hostProblem) and the local policy (normalizeHostName)", () => {
    const inputs = [...accepted, ...refused.map(([name]) => name), "10.0.0.1", "fd00::1", "a.b.", "."];
    for (const input of inputs) {
      const isIp = parseIp(input) !== undefined;
      const policyAccepts = isIp || normalizeHostName(input) !== undefined;
      assert.equal(hostProblem(input) === undefined, policyAccepts, input);
    }
  });
});

describe("hostProblem", () => {
  it("takes names, IPv4 and IPv6 (bracketed or not), blanks around them ignored", () => {
    for (const input of ["ftp.corp", " ftp.corp ", "10.0.0.5", "[::1]", "2001:db8::5", "::ffff:10.0.0.1"]) {
      assert.equal(hostProblem(input), undefined, input);
    }
  });

  it("refuses zone ids, unbalanced brackets and bracketed IPv4", () => {
    assert.match(hostProblem("fe80::1%eth0") ?? "", /zone ids/);
    assert.match(hostProblem("[fe80::1%eth0]") ?? "", /zone ids/);
    assert.match(hostProblem("[::1") ?? "", /unbalanced/);
    assert.match(hostProblem("[10.0.0.1]") ?? "", /only for IPv6/);
    assert.match(hostProblem("ftp:21") ?? "", /not a valid IPv6 address/);
    assert.match(hostProblem("  ") ?? "", /host is empty/);
  });
});
