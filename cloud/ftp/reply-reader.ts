/**
 * Reads FTP replies off a control connection (RFC 959 §4.2): a reply is one line `ddd text` or
 * several, from `ddd-text` to the first line that starts `ddd ` with the same code. Bounded: a
 * line longer than the limit, or a reply that never ends, is an error, never a growing buffer.
 */
import type { Socket } from "node:net";
import { ProtocolError } from "../../shared/errors.js";

export interface FtpReply {
  /** The three-digit reply code. */
  readonly code: number;
  /** Every line of the reply, without line ends. */
  readonly lines: readonly string[];
}

/** RFC 959 sets no limit; servers keep lines short. 8 KiB holds any real one. */
const MAX_LINE_BYTES = 8192;
/** A multi-line reply (a long FEAT or HELP) stays well under this. */
const MAX_REPLY_LINES = 512;

export class FtpReplyReader {
  readonly #socket: Socket;
  #pending = "";
  readonly #lines: string[] = [];
  #failure: Error | null = null;
  #ended = false;
  #wake: (() => void) | null = null;

  constructor(socket: Socket) {
    this.#socket = socket;
    socket.setEncoding("latin1");
    socket.on("data", (text: string) => {
      this.#pending += text;
      let nl = this.#pending.indexOf("\n");
      while (nl >= 0) {
        this.#lines.push(this.#pending.slice(0, nl).replace(/\r$/, ""));
        this.#pending = this.#pending.slice(nl + 1);
        nl = this.#pending.indexOf("\n");
      }
      if (this.#pending.length > MAX_LINE_BYTES) {
        this.#fail(new ProtocolError(`FTP reply line longer than ${MAX_LINE_BYTES} bytes`));
      } else if (this.#lines.length > MAX_REPLY_LINES) {
        this.#fail(new ProtocolError(`FTP reply of more than ${MAX_REPLY_LINES} lines`));
      }
      this.#wake?.();
    });
    socket.on("end", () => {
      this.#ended = true;
      this.#wake?.();
    });
    socket.on("error", (err) => this.#fail(err));
    socket.on("close", () => {
      this.#ended = true;
      this.#wake?.();
    });
    // a socket handed over paused (cloud/socks/client.ts) flows from here on
    socket.resume();
  }

  #fail(err: Error): void {
    this.#failure ??= err;
    this.#socket.destroy();
    this.#wake?.();
  }

  /** The next whole reply, or an error when none arrives within `timeoutMs`. */
  async next(timeoutMs: number): Promise<FtpReply> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const reply = this.#take();
      if (reply !== null) return reply;
      if (this.#failure) throw this.#failure;
      if (this.#ended) throw new ProtocolError("the FTP server closed the control connection");
      const left = deadline - Date.now();
      if (left <= 0) throw new ProtocolError(`no FTP reply within ${timeoutMs} ms`);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left);
        this.#wake = () => {
          clearTimeout(timer);
          resolve();
        };
      });
      this.#wake = null;
    }
  }

  /** Removes and answers one complete reply from the lines read, or null when it is not whole yet. */
  #take(): FtpReply | null {
    const first = this.#lines[0];
    if (first === undefined) return null;
    const m = /^(\d{3})([ -]?)/.exec(first);
    if (!m) {
      this.#lines.shift();
      this.#failure ??= new ProtocolError(`not an FTP reply: ${JSON.stringify(first.slice(0, 80))}`);
      return null;
    }
    const code = Number(m[1]);
    if (m[2] !== "-") return { code, lines: this.#lines.splice(0, 1) };
    const end = this.#lines.findIndex((l, i) => i > 0 && l.startsWith(`${m[1]} `));
    if (end < 0) return null;
    return { code, lines: this.#lines.splice(0, end + 1) };
  }
}

/** The last line of a reply, for messages: `530 Login incorrect.` */
export function replyText(r: FtpReply): string {
  return r.lines[r.lines.length - 1] ?? String(r.code);
}
