/** OPEN_RESULT codes ↔ coded errors, so a failed dial on premises reaches the client as the right SOCKS reply. */
import {
  ConnectionRefusedError,
  HostUnreachableError,
  NotAllowedError,
  UnderpassError,
  UnsupportedCommandError,
} from "./errors.js";
import { OPEN_CODE, type OpenCode } from "./tunnel-constants.js";

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

export function errorToOpenCode(err: UnderpassError): OpenCode {
  if (err instanceof NotAllowedError) return OPEN_CODE.NOT_ALLOWED;
  if (err instanceof HostUnreachableError) return OPEN_CODE.HOST_UNREACHABLE;
  if (err instanceof ConnectionRefusedError) return OPEN_CODE.CONNECTION_REFUSED;
  if (err instanceof UnsupportedCommandError) return OPEN_CODE.UNSUPPORTED;
  return OPEN_CODE.GENERAL_FAILURE;
}
