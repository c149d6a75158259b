import type { Socket } from "node:net";

/**
 * End a TCP connection as a failure: RST, so the peer cannot take it for a clean end of file.
 * Once our side has sent its FIN (`end()` was called) there is nothing left to protect in that
 * direction, and libuv refuses a reset after a shutdown (UV_EINVAL) while Node then never
 * closes the handle (it lingers and spins the loop at exit): destroy plainly instead.
 */
export function abortSocket(socket: Socket): void {
  if (socket.destroyed) return;
  // the shutdown goes out only once the write buffer is empty: until then a reset still works,
  // and must be used, or the buffered tail would be dropped behind a clean FIN
  const finDone = socket.writableFinished || (socket.writableEnded && socket.writableLength === 0);
  if (finDone || socket.connecting) socket.destroy();
  else socket.resetAndDestroy();
}
