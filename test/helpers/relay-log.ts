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
  /** Forgets what was logged so far (between tests of one stack). */
  clear(): void;
}

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
  return {
    logger,
    audit: logger.child({ audit: true }),
    lines: () => lines,
    socksEvents,
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
}

/**
 * Asserts that every SOCKS request logged so far was a granted CONNECT by name to `host`: the
 * control connection first, then the data connections. `context` goes into the message.
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
    assert.equal(e.kind, "connect", why);
    const [host, port] = (e.destination ?? "").split(":");
    assert.equal(host, expected.host, why);
    const range = expected.dataPorts;
    if (range) assert.ok(Number(port) >= range.start && Number(port) <= range.end, `port ${port}${why}`);
  }
}
