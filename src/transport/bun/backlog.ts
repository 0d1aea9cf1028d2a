/**
 * CONTRACT: the listen backlog is at least 1024. Bun.listen (uSockets) hard-codes 512 and has no option for it,
 * so after binding we call listen(2) again on the listener's fd: Linux (and the BSDs) accept a second listen()
 * on a listening socket and apply the new backlog (capped by net.core.somaxconn).
 */
import { dlopen, FFIType } from "bun:ffi";

let libcListen: ((fd: number, backlog: number) => number) | null | undefined;

function resolveListen(): ((fd: number, backlog: number) => number) | null {
  if (libcListen !== undefined) return libcListen;
  const names = process.platform === "darwin" ? ["libc.dylib", "libSystem.B.dylib"] : ["libc.so.6", "libc.so"];
  for (const name of names) {
    try {
      const lib = dlopen(name, { listen: { args: [FFIType.i32, FFIType.i32], returns: FFIType.i32 } });
      libcListen = (fd, backlog) => lib.symbols.listen(fd, backlog) as number;
      return libcListen;
    } catch {
      // try the next name
    }
  }
  libcListen = null;
  return null;
}

/** Returns true when the backlog was raised. */
export function raiseBacklog(fd: number | undefined, backlog: number): boolean {
  if (typeof fd !== "number" || fd < 0) return false;
  const listen = resolveListen();
  return listen !== null && listen(fd, backlog) === 0;
}
