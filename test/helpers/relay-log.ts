/**
 * The relay's own log, kept in memory, so a test can say which SOCKS requests a real client
 * made and what the relay answered: pass `logger` and `audit` to `startStack({ relay })`.
 */
import assert from "node:assert/strict";
import { Writable } from "node:stream";
import { createLogger, type Logger } from "../../shared/logger.js";
import type { PortSpan } from "./ports.js";

/** One parsed pino line. */
export interface RelayLogLine {
  readonly level: number;
  readonly msg: string;
  readonly [field: string]: unknown;
}

/** A SOCKS request as the relay's audit log and SOCKS logger tell it. */
export interface SocksEvent {
  /**
   * `connect` (CONNECT granted), `ftp-data` (CONNECT to a data port an FTP-aware mapping
   * announced), `bind` (BIND listening on premises), `denied` (0x02: no mapping, or a BIND
   * without a control connection), `refused` (any other failure reply).
   */
  readonly kind: "connect" | "ftp-data" | "bind" | "denied" | "refused";
  /** The destination as the client asked for it; for `bind`, where the agent listens. */
  readonly destination?: string;
  /** The SOCKS reply code sent (for `bind`, the first reply). */
  readonly reply: number;
  readonly msg: string;
}

export interface RelayLog {
  /** The relay's main logger (debug level). */
  readonly logger: Logger;
  /** The audit logger. */
  readonly audit: Logger;
  /** Every line so far. */
  lines(): RelayLogLine[];
  /** The SOCKS requests so far, in order. */
  socksEvents(): SocksEvent[];
  /** `socksEvents()` as text, one per line, for assertion messages and the FTP matrix. */
  describe(): string;
  /** What the relay did on FTP-aware control connections so far, in order. */
  ftpControlEvents(): FtpControlEvent[];
  /** Forgets what was logged so far (between tests of one stack). */
  clear(): void;
}

/** A step of an FTP-aware control connection (`protocol: "ftp"`) as the relay logs it. */
export type FtpControlEvent =
  /** A 227/229 reply opened `port` for the client. */
  | { readonly kind: "announced"; readonly port: number }
  /** A PORT/EPRT named the client's own `client` address: the agent listens at `listen`. */
  | { readonly kind: "active"; readonly client: string; readonly listen: string }
  /** A PORT/EPRT named `named`, not the client's own address (500, audited). */
  | { readonly kind: "bounce-refused"; readonly named: string }
  /** AUTH TLS accepted or TLS from the first byte: the bytes pass unread from here on. */
  | { readonly kind: "opaque"; readonly msg: string }
  /** The relay could not carry active-mode data back to the client. */
  | { readonly kind: "dial-back-failed"; readonly client: string };

export function captureRelayLog(): RelayLog {
  let lines: RelayLogLine[] = [];
  let partial = "";
  const sink = new Writable({
    write(chunk: Buffer | string, _encoding, callback) {
      partial += chunk.toString();
      let nl = partial.indexOf("\n");
      while (nl >= 0) {
        const text = partial.slice(0, nl);
        partial = partial.slice(nl + 1);
        try {
          lines.push(JSON.parse(text) as RelayLogLine);
        } catch {
          // not JSON: not ours
        }
        nl = partial.indexOf("\n");
      }
      callback();
    },
  });
  const logger = createLogger({ name: "relay", level: "debug", destination: sink });
  const socksEvents = (): SocksEvent[] => {
    const events: SocksEvent[] = [];
    for (const l of lines) {
      const msg = l.msg;
      switch (l["event"]) {
        case "socks.connect":
        case "socks.ftp-data":
          events.push({
            kind: l["event"] === "socks.connect" ? "connect" : "ftp-data",
            destination: `${l["virtualHost"]}:${l["virtualPort"]}`,
            reply: 0x00,
            msg,
          });
          break;
        case "socks.bind":
          events.push({ kind: "bind", destination: String(l["listen"]), reply: 0x00, msg });
          break;
        case "socks.denied":
        case "socks.bind-denied":
          events.push({ kind: "denied", destination: `${l["host"]}:${l["port"]}`, reply: 0x02, msg });
          break;
        default:
          // the SOCKS logger's line for every failure reply; 0x02 was audited above
          if (typeof l["reply"] === "number" && typeof l["code"] === "string" && l["reply"] !== 0x02) {
            events.push({ kind: "refused", reply: l["reply"], msg });
          }
      }
    }
    return events;
  };
  const ftpControlEvents = (): FtpControlEvent[] => {
    const events: FtpControlEvent[] = [];
    for (const l of lines) {
      if (l["event"] === "ftp.bounce-refused") {
        events.push({ kind: "bounce-refused", named: String(l["named"]) });
        continue;
      }
      if (l["ftp"] !== true) continue;
      if (l.msg === "passive data port announced") {
        events.push({ kind: "announced", port: Number(l["port"]) });
      } else if (l.msg === "active-mode data: the agent listens") {
        events.push({ kind: "active", client: String(l["client"]), listen: String(l["listen"]) });
      } else if (l.msg === "active-mode dial-back failed") {
        events.push({ kind: "dial-back-failed", client: String(l["client"]) });
      } else if (/control channel is (encrypted|opaque)/.test(l.msg)) {
        events.push({ kind: "opaque", msg: l.msg });
      }
    }
    return events;
  };
  return {
    logger,
    audit: logger.child({ audit: true }),
    lines: () => lines,
    socksEvents,
    ftpControlEvents,
    describe: () =>
      socksEvents()
        .map((e) => `${e.kind} ${e.destination ?? ""} 0x${e.reply.toString(16).padStart(2, "0")} ${e.msg}`)
        .join("\n"),
    clear: () => {
      lines = [];
    },
  };
}

export interface CarriedExpectation {
  /** The virtual host every CONNECT named. */
  readonly host: string;
  /** The port of the first CONNECT (the control connection). */
  readonly controlPort: number;
  /** How many more CONNECTs (data connections) there were at least, and at most. */
  readonly minData: number;
  readonly maxData?: number;
  /** The range every data CONNECT's port lies in (the passive range). */
  readonly dataPorts?: PortSpan;
  /**
   * How the data CONNECTs were granted: `connect` by a mapping (the default) or `ftp-data` as
   * a port an FTP-aware control connection announced.
   */
  readonly dataKind?: "connect" | "ftp-data";
  /** The host every data CONNECT named; `host` unless given (e.g. the proxy's own address). */
  readonly dataHost?: string;
}

/**
 * Asserts that every SOCKS request logged so far was a granted CONNECT by name to `host`: the
 * control connection first, then the data connections (granted as `dataKind`, to `dataHost`).
 * `context` goes into the message.
 */
export function assertCarried(log: RelayLog, expected: CarriedExpectation, context = ""): void {
  const events = log.socksEvents();
  const why = `${context}\n--- relay\n${log.describe()}`;
  const [control, ...data] = events;
  assert.equal(control?.kind, "connect", why);
  assert.equal(control?.destination, `${expected.host}:${expected.controlPort}`, why);
  assert.ok(data.length >= expected.minData, `at least ${expected.minData} data connection(s)${why}`);
  if (expected.maxData !== undefined) {
    assert.ok(data.length <= expected.maxData, `at most ${expected.maxData} data connection(s)${why}`);
  }
  for (const e of data) {
    assert.equal(e.kind, expected.dataKind ?? "connect", why);
    const [host, port] = (e.destination ?? "").split(":");
    assert.equal(host, expected.dataHost ?? expected.host, why);
    const range = expected.dataPorts;
    if (range) assert.ok(Number(port) >= range.start && Number(port) <= range.end, `port ${port}${why}`);
  }
}
