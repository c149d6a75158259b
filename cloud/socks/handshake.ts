/**
 * The SOCKS handshake as a pure stage: the bytes received so far and the state the connection
 * is in give the next complete message (method choice, credentials, request), "need more", or
 * the coded error of a malformed one (RFC 1928 §3-§5, RFC 1929).
 */
import {
  SocksHandshakeError,
  type UnderpassError,
  UnsupportedAddressTypeError,
} from "../../shared/errors.js";
import { type AuthPolicy, chooseMethod, type MethodChoice } from "./authenticate.js";
import {
  type Credentials,
  NEED_MORE,
  type NeedMore,
  parseCredentials,
  parseGreeting,
  parseRequest,
  type SocksRequest,
} from "./codec.js";

/** The states in which the client's bytes are handshake messages. */
export type ReadingState = "greeting" | "credentials" | "request";

export type HandshakeStep =
  | { readonly step: "method"; readonly method: MethodChoice; readonly consumed: number }
  | { readonly step: "credentials"; readonly credentials: Credentials; readonly consumed: number }
  | { readonly step: "request"; readonly request: SocksRequest; readonly consumed: number };

export function readHandshake(
  state: ReadingState,
  buf: Buffer,
  policy: AuthPolicy,
): HandshakeStep | NeedMore | UnderpassError {
  switch (state) {
    case "greeting": {
      const r = parseGreeting(buf);
      if (r === NEED_MORE) return r;
      if (!r.ok) return new SocksHandshakeError(r.message);
      return { step: "method", method: chooseMethod(r.value.methods, policy), consumed: r.consumed };
    }
    case "credentials": {
      const r = parseCredentials(buf);
      if (r === NEED_MORE) return r;
      if (!r.ok) return new SocksHandshakeError(r.message);
      return { step: "credentials", credentials: r.value, consumed: r.consumed };
    }
    case "request": {
      const r = parseRequest(buf);
      if (r === NEED_MORE) return r;
      if (!r.ok) {
        return r.addressTypeUnsupported
          ? new UnsupportedAddressTypeError(r.message)
          : new SocksHandshakeError(r.message);
      }
      return { step: "request", request: r.value, consumed: r.consumed };
    }
    default: {
      const never: never = state;
      throw new Error(`not a reading state: ${String(never)}`);
    }
  }
}
