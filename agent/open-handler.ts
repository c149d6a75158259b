/**
 * What the agent does with one OPEN from the relay: ask the local policy, then dial the
 * target (CONNECT) or listen for the FTP server (BIND), answer with OPEN_RESULT, and splice
 * the socket to the stream. Every failure becomes the coded error that the OPEN_RESULT (and
 * so the client's SOCKS reply) carries.
 */
import type { Socket } from "node:net";
import { toUnderpassError, UnsupportedCommandError } from "../shared/errors.js";
import type { Logger } from "../shared/logger.js";
import { unmapIPv4 } from "../shared/net/host.js";
import { pipeSocketStream } from "../shared/net/pipe.js";
import { OPEN_KIND, RESET_CODE } from "../shared/tunnel/constants.js";
import type { OpenFrame } from "../shared/tunnel/frame.js";
import type { MuxSession } from "../shared/tunnel/mux-session.js";
import type { MuxStream } from "../shared/tunnel/mux-stream.js";
import { type BindSettings, listenForPeer, localAddressTowards, peerAddresses } from "./bind-listener.js";
import { dial } from "./dialer.js";
import type { Policy } from "./policy.js";

export interface OpenSettings {
  readonly policy: Policy;
  readonly logger: Logger;
  /** Upper bound for any dial, in ms, whatever the relay asks (default 30 s). */
  readonly maxDialTimeoutMs?: number | undefined;
  /** Where BIND listeners (FTP active mode) listen; BIND is served with defaults when unset. */
  readonly bind?: BindSettings | undefined;
}

/** Dial timeout when the OPEN gives none, in ms. */
const DEFAULT_DIAL_TIMEOUT_MS = 10_000;
/** Cap of the dial timeout when the agent sets none, in ms. */
const DEFAULT_MAX_DIAL_TIMEOUT_MS = 30_000;
/** BIND waits at most 120 s for its peer unless the agent says otherwise. */
const DEFAULT_BIND: BindSettings = { maxWaitMs: 120_000 };

/** Serves one OPEN on `stream`; never rejects (a failure is the OPEN_RESULT's code). */
export async function serveOpen(
  session: MuxSession,
  stream: MuxStream,
  open: OpenFrame,
  settings: OpenSettings,
): Promise<void> {
  const bindings = { streamId: stream.id, target: `${open.host}:${open.port}` };
  // a refusal logs its line with the bindings and is done: a relay that floods refused OPENs
  // (each answered and counted, mux-session.ts) costs no child logger per OPEN
  let log: Logger | null = null;
  try {
    const decision = await settings.policy.authorize(open.host, open.port);
    if (!decision.allowed) {
      settings.logger.warn({ ...bindings, reason: decision.reason }, "local policy refuses the target");
      session.reject(stream, decision.error);
      return;
    }
    // a child logger (its bindings serialized at once) only when its debug lines are written
    log = settings.logger.isLevelEnabled("debug") ? settings.logger.child(bindings) : null;
    switch (open.kind) {
      case OPEN_KIND.CONNECT:
        await serveConnect(session, stream, open, decision.dialHost, settings, log);
        return;
      case OPEN_KIND.BIND:
        log ??= settings.logger.child(bindings);
        await serveBind(session, stream, open, decision.dialHost, settings.bind ?? DEFAULT_BIND, log);
        return;
      default: {
        // the codec refuses unknown kinds; a kind added to OPEN_KIND without a case lands here
        const kind: never = open.kind;
        session.reject(stream, new UnsupportedCommandError(`open kind ${String(kind)} is not served`));
        return;
      }
    }
  } catch (err) {
    const e = toUnderpassError(err);
    (log ?? settings.logger).info({ ...(log ? {} : bindings), code: e.code, err: e.message }, "open failed");
    session.reject(stream, e);
  }
}

/** The stream or its tunnel went away while the agent was busy dialling or listening. */
function gone(session: MuxSession, stream: MuxStream): boolean {
  return stream.phase === "closed" || session.closed;
}

/** CONNECT: dial within the OPEN's timeout (capped by the agent's), then splice. */
async function serveConnect(
  session: MuxSession,
  stream: MuxStream,
  open: OpenFrame,
  dialHost: string,
  settings: OpenSettings,
  log: Logger | null,
): Promise<void> {
  const timeoutMs = Math.min(
    open.timeoutMs || DEFAULT_DIAL_TIMEOUT_MS,
    settings.maxDialTimeoutMs ?? DEFAULT_MAX_DIAL_TIMEOUT_MS,
  );
  const socket = await dial(dialHost, open.port, timeoutMs);
  if (gone(session, stream)) {
    socket.destroy();
    return;
  }
  session.accept(stream, socket.localAddress ?? "", socket.localPort ?? 0);
  pipeSocketStream(socket, stream);
  log?.debug("target connected");
}

/**
 * BIND: listen where `open.host` (the FTP server) can connect, tell the relay where, and
 * splice the one expected connection to the stream. Only that host may connect.
 */
async function serveBind(
  session: MuxSession,
  stream: MuxStream,
  open: OpenFrame,
  dialHost: string,
  settings: BindSettings,
  log: Logger,
): Promise<void> {
  const address = settings.address ?? (await localAddressTowards(dialHost));
  const listener = await listenForPeer({
    peers: await peerAddresses(open.host, dialHost),
    address,
    ports: settings.ports,
    waitMs: Math.min(open.timeoutMs || settings.maxWaitMs, settings.maxWaitMs),
    log,
  });
  if (gone(session, stream)) {
    listener.close();
    return;
  }
  // until the peer comes, the relay has nothing to say on this stream but a reset
  stream.attach({
    onData: () => stream.reset(RESET_CODE.INTERNAL, "data before the BIND peer connected"),
    onEnd: () => listener.close(),
    onReset: () => listener.close(),
    onDrain: () => {},
  });
  session.accept(stream, listener.address, listener.port);
  log.debug({ listen: `${listener.address}:${listener.port}` }, "BIND listening");
  let peer: Socket;
  try {
    peer = await listener.accepted;
  } catch (err) {
    const e = toUnderpassError(err);
    log.info({ err: e.message }, "BIND ended without a peer");
    stream.reset(RESET_CODE.TIMEOUT, e.message);
    return;
  }
  if (gone(session, stream)) {
    peer.destroy();
    return;
  }
  session.bindPeer(stream, unmapIPv4(peer.remoteAddress ?? ""), peer.remotePort ?? 0);
  pipeSocketStream(peer, stream);
  peer.resume();
  log.debug({ peer: `${peer.remoteAddress}:${peer.remotePort}` }, "BIND peer connected");
}
