/**
 * A single tunnel hello over a raw WebSocket, as an agent with a wrong token would send it, but
 * exactly once: a real agent retries, and a test that counts refusals needs one attempt.
 */
import { once } from "node:events";
import { WebSocket } from "ws";
import { PROTOCOL_VERSION } from "../../shared/tunnel/constants.js";
import { encodeFrame } from "../../shared/tunnel/frame-codec.js";

/** Bound on the relay's answer, in ms. */
const ANSWER_TIMEOUT_MS = 10_000;

/** Says hello with `token` to `ws://127.0.0.1:<port>/tunnel`; resolves with the close code. */
export async function helloOnce(tunnelPort: number, token: string): Promise<number> {
  const ws = new WebSocket(`ws://127.0.0.1:${tunnelPort}/tunnel`, { perMessageDeflate: false });
  const timer = setTimeout(() => ws.terminate(), ANSWER_TIMEOUT_MS);
  try {
    await once(ws, "open");
    const closed = once(ws, "close");
    ws.send(
      encodeFrame({
        type: "hello",
        body: { version: PROTOCOL_VERSION, token, agentVersion: "0.0.0-test", capabilities: [] },
      }),
    );
    const [code] = (await closed) as [number];
    return code;
  } finally {
    clearTimeout(timer);
  }
}
