/**
 * The demo FTP server's reading of its control connection: bytes in, command lines out. A line
 * ends at LF, a CR before it is dropped (RFC 959 §4.1.3 says CRLF; clients that send a bare LF
 * are served too); Telnet commands (RFC 854) are taken out wherever they fall, `IAC IAC` being
 * a data byte 0xff. Pure and incremental: state carries over between chunks, so a line, or an
 * IAC sequence, may be split anywhere. Memory is bounded by `maxLine`.
 */

/** Telnet IAC, "interpret as command" (RFC 854). */
const IAC = 0xff;
/** WILL, WONT, DO, DONT (RFC 854): the commands followed by one option byte. */
const WILL = 0xfb;
const DONT = 0xfe;
const CR = 0x0d;
const LF = 0x0a;

/** Where the reader is inside the Telnet stream. */
type TelnetState =
  /** plain data */
  | "data"
  /** after IAC: the command byte is next */
  | "command"
  /** after IAC WILL/WONT/DO/DONT: the option byte is next */
  | "option";

/** A complete command line (text without its line end), or a line that was longer than allowed. */
export type CommandLine = { readonly kind: "line"; readonly text: string } | { readonly kind: "too-long" };

export class FtpCommandReader {
  readonly #line: Buffer;
  #length = 0;
  #tooLong = false;
  #telnet: TelnetState = "data";

  /** `maxLine`: the longest line kept, in bytes after Telnet commands are taken out, CR included. */
  constructor(readonly maxLine: number) {
    this.#line = Buffer.alloc(maxLine);
  }

  /** Feed the next bytes; returns the lines they complete, in order. */
  push(chunk: Uint8Array): CommandLine[] {
    const out: CommandLine[] = [];
    for (const byte of chunk) {
      switch (this.#telnet) {
        case "command":
          this.#telnet = byte >= WILL && byte <= DONT ? "option" : "data";
          if (byte !== IAC) continue; // IAC IAC is a literal 0xff
          break;
        case "option":
          this.#telnet = "data";
          continue;
        case "data":
          if (byte === IAC) {
            this.#telnet = "command";
            continue;
          }
          break;
        default: {
          const never: never = this.#telnet;
          throw new Error(`unknown Telnet state ${String(never)}`);
        }
      }
      if (byte === LF) out.push(this.#endLine());
      else if (this.#length < this.maxLine) this.#line[this.#length++] = byte;
      else this.#tooLong = true;
    }
    return out;
  }

  #endLine(): CommandLine {
    const end = this.#length > 0 && this.#line[this.#length - 1] === CR ? this.#length - 1 : this.#length;
    const line: CommandLine = this.#tooLong
      ? { kind: "too-long" }
      : { kind: "line", text: this.#line.toString("utf8", 0, end) };
    this.#length = 0;
    this.#tooLong = false;
    return line;
  }
}
