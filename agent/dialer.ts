/**
 * Dial an internal target with a deadline, and turn each way it can fail into the coded
 * error that the relay turns into the right SOCKS reply.
 */
import { connect, type Socket } from "node:net";
import { ConnectionRefusedError, HostUnreachableError, UnderpassError } from "../shared/errors.js";

const UNREACHABLE = new Set([
  "ENOTFOUND",
  "EAI_AGAIN",
  "EAI_FAIL",
  "EAI_NONAME",
  "EHOSTUNREACH",
  "ENETUNREACH",
  "ETIMEDOUT",
  "EADDRNOTAVAIL",
  "EHOSTDOWN",
  "ENETDOWN",
]);

function dialError(err: NodeJS.ErrnoException, host: string, port: number): UnderpassError {
  const what = `${host}:${port}`;
  if (err.code === "ECONNREFUSED") return new ConnectionRefusedError(`${what} refused the connection`);
  if (err.code && UNREACHABLE.has(err.code)) {
    return new HostUnreachableError(`${what} is unreachable (${err.code})`, { cause: err });
  }
  return new UnderpassError(`dialling ${what} failed: ${err.message}`, { cause: err });
}

/** Connect with `allowHalfOpen` and `noDelay`; rejects with a coded error after `timeoutMs`. */
export function dial(host: string, port: number, timeoutMs: number): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const socket = connect({ host, port, allowHalfOpen: true, noDelay: true });
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new HostUnreachableError(`${host}:${port} did not answer within ${timeoutMs} ms`));
    }, timeoutMs);
    const onError = (err: NodeJS.ErrnoException): void => {
      clearTimeout(timer);
      reject(dialError(err, host, port));
    };
    socket.once("connect", () => {
      clearTimeout(timer);
      // off(), not removeAllListeners(): the latter deletes the key and turns _events into a dictionary
      socket.off("error", onError);
      resolve(socket);
    });
    socket.once("error", onError);
  });
}
