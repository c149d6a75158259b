/** OPEN_RESULT codes ↔ coded errors, so a failed dial on premises reaches the client as the right SOCKS reply. */
import {
  ConnectionRefusedError,
  type ErrorCode,
  HostUnreachableError,
  NotAllowedError,
  UnderpassError,
  UnsupportedCommandError,
} from "../errors.js";
import { OPEN_CODE, type OpenCode } from "./constants.js";

export function openCodeToError(code: OpenCode, message: string): UnderpassError {
  switch (code) {
    case OPEN_CODE.NOT_ALLOWED:
      return new NotAllowedError(message);
    case OPEN_CODE.HOST_UNREACHABLE:
      return new HostUnreachableError(message);
    case OPEN_CODE.CONNECTION_REFUSED:
      return new ConnectionRefusedError(message);
    case OPEN_CODE.UNSUPPORTED:
      return new UnsupportedCommandError(message);
    case OPEN_CODE.OK:
    case OPEN_CODE.GENERAL_FAILURE:
      return new UnderpassError(message);
    default: {
      const never: never = code;
      return new UnderpassError(`unknown open code ${String(never)}`);
    }
  }
}

/** The OPEN_RESULT code an agent answers with for each error code. */
const OPEN_CODE_FOR_ERROR: Readonly<Record<ErrorCode, OpenCode>> = {
  UP_ERR_INTERNAL: OPEN_CODE.GENERAL_FAILURE,
  UP_ERR_PROTOCOL: OPEN_CODE.GENERAL_FAILURE,
  UP_ERR_FRAME_TOO_LARGE: OPEN_CODE.GENERAL_FAILURE,
  UP_ERR_FLOW_CONTROL: OPEN_CODE.GENERAL_FAILURE,
  UP_ERR_LIMIT_EXCEEDED: OPEN_CODE.GENERAL_FAILURE,
  UP_ERR_UNSUPPORTED_VERSION: OPEN_CODE.GENERAL_FAILURE,
  UP_ERR_AUTH: OPEN_CODE.GENERAL_FAILURE,
  UP_ERR_TUNNEL_CLOSED: OPEN_CODE.GENERAL_FAILURE,
  UP_ERR_NOT_ALLOWED: OPEN_CODE.NOT_ALLOWED,
  UP_ERR_NO_AGENT: OPEN_CODE.GENERAL_FAILURE,
  UP_ERR_HOST_UNREACHABLE: OPEN_CODE.HOST_UNREACHABLE,
  UP_ERR_CONNECTION_REFUSED: OPEN_CODE.CONNECTION_REFUSED,
  UP_ERR_UNSUPPORTED_COMMAND: OPEN_CODE.UNSUPPORTED,
  UP_ERR_UNSUPPORTED_ADDRESS_TYPE: OPEN_CODE.GENERAL_FAILURE,
  UP_ERR_SOCKS_HANDSHAKE: OPEN_CODE.GENERAL_FAILURE,
  UP_ERR_VALIDATION: OPEN_CODE.GENERAL_FAILURE,
  UP_ERR_CONFLICT: OPEN_CODE.GENERAL_FAILURE,
  UP_ERR_NOT_FOUND: OPEN_CODE.GENERAL_FAILURE,
  UP_ERR_STORE: OPEN_CODE.GENERAL_FAILURE,
  UP_ERR_FORBIDDEN: OPEN_CODE.GENERAL_FAILURE,
  UP_ERR_RATE_LIMITED: OPEN_CODE.GENERAL_FAILURE,
  UP_ERR_STORE_UNAVAILABLE: OPEN_CODE.GENERAL_FAILURE,
  UP_ERR_SECOND_INSTANCE: OPEN_CODE.GENERAL_FAILURE,
};

export function errorToOpenCode(err: UnderpassError): OpenCode {
  return OPEN_CODE_FOR_ERROR[err.code];
}

/** An OPEN_RESULT code as its name, for messages: `connection_refused`. */
export function describeOpenCode(code: number): string {
  for (const [name, value] of Object.entries(OPEN_CODE)) if (value === code) return name.toLowerCase();
  return `code ${code}`;
}
