/** A test speaking FTP's control channel itself, over a socket it got through the relay. */
import type { Socket } from "node:net";

/** Read FTP reply lines until one matches `final` (a complete reply line), bounded. */
export function readReply(s: Socket, final: RegExp, timeoutMs = 20_000): Promise<string> {
  return new Promise((resolve, reject) => {
    let text = "";
    const timer = setTimeout(() => done(new Error(`no reply matching ${final} in: ${text}`)), timeoutMs);
    const onData = (b: Buffer): void => {
      text += b.toString("latin1");
      const line = text.split("\r\n").find((l) => final.test(l));
      if (line !== undefined) done(null, line);
    };
    const done = (err: Error | null, line = ""): void => {
      clearTimeout(timer);
      s.off("data", onData);
      if (err) reject(err);
      else resolve(line);
    };
    s.on("data", onData);
  });
}

/** Wait for the greeting and log in anonymously (servers differ on whether they ask for a password). */
export async function loginAnonymously(control: Socket): Promise<void> {
  await readReply(control, /^220 /);
  control.write("USER anonymous\r\n");
  if ((await readReply(control, /^(230|331) /)).startsWith("331")) {
    control.write("PASS x@\r\n");
    await readReply(control, /^230 /);
  }
}
