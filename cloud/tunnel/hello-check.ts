/**
 * The relay's check of an agent's first frame, pure: a HELLO of a version this relay speaks,
 * valid by its schema, with a token of the shape the relay issues. What it cannot tell alone
 * (whose token it is) is `authenticateAgent`'s. A refusal carries the coded error and the
 * GOAWAY the agent gets, whose reason is the error's message.
 */
import { z } from "zod";
import {
  AuthError,
  ProtocolError,
  type UnderpassError,
  UnsupportedVersionError,
} from "../../shared/errors.js";
import { GOAWAY_CODE, type GoAwayCode, SUPPORTED_VERSIONS } from "../../shared/tunnel/constants.js";
import type { Frame } from "../../shared/tunnel/frame.js";
import { type Hello, helloSchema } from "../../shared/tunnel/handshake.js";

export interface TunnelRefusal {
  readonly error: UnderpassError;
  readonly goaway: GoAwayCode;
}

/** What a check of an incoming tunnel answers: the value it vouches for, or the refusal. */
export type TunnelCheck<T> =
  | { readonly ok: true; readonly value: T }
  | { readonly ok: false; readonly refusal: TunnelRefusal };

/** Agent tokens as the admin API issues them: `upa_` and base64url (192 bits: 32 characters). */
const AGENT_TOKEN = /^upa_[A-Za-z0-9_-]{16,}$/;

/** Only the version is read first: a hello of another version may differ in every other field. */
const versionOnly = z.object({ version: z.number().int() });

export function checkHello(
  frame: Frame,
  supported: readonly number[] = SUPPORTED_VERSIONS,
): TunnelCheck<Hello> {
  if (frame.type !== "hello") {
    return refuse(new ProtocolError(`expected hello, got ${frame.type}`), GOAWAY_CODE.PROTOCOL_ERROR);
  }
  const v = versionOnly.safeParse(frame.body);
  if (v.success && !supported.includes(v.data.version)) {
    return refuse(
      new UnsupportedVersionError(
        `tunnel protocol version ${v.data.version} is not supported; this relay speaks ${supported.join(", ")}`,
      ),
      GOAWAY_CODE.UNSUPPORTED_VERSION,
    );
  }
  const parsed = helloSchema.safeParse(frame.body);
  if (!parsed.success) {
    const why = parsed.error.issues.map((i) => `${i.path.join(".") || "hello"}: ${i.message}`).join("; ");
    return refuse(new ProtocolError(`bad hello: ${why}`), GOAWAY_CODE.PROTOCOL_ERROR);
  }
  // a malformed token is refused in the same words as an unknown one, before any lookup
  if (!AGENT_TOKEN.test(parsed.data.token)) return { ok: false, refusal: unknownToken() };
  return { ok: true, value: parsed.data };
}

/** No HELLO within the deadline (`helloTimeoutMs`). */
export function helloTimedOut(): TunnelRefusal {
  return { error: new ProtocolError("no hello received in time"), goaway: GOAWAY_CODE.HELLO_TIMEOUT };
}

/** The token has the right shape but no agent holds it (never issued, rotated or deleted). */
export function unknownToken(): TunnelRefusal {
  return { error: new AuthError("unknown or revoked agent token"), goaway: GOAWAY_CODE.AUTH_FAILED };
}

function refuse(error: UnderpassError, goaway: GoAwayCode): TunnelCheck<Hello> {
  return { ok: false, refusal: { error, goaway } };
}
