import { connect, createServer, type Server } from "node:net";

/**
 * `n` distinct free loopback ports: each is bound to port 0 and held until all are known, so the kernel cannot
 * hand the same port out twice; then all are released for the server under test to bind.
 */
export async function freePorts(n: number): Promise<number[]> {
  const servers: Server[] = [];
  const ports: number[] = [];
  try {
    for (let i = 0; i < n; i++) {
      const srv = createServer();
      servers.push(srv);
      await new Promise<void>((resolve, reject) => {
        srv.once("error", reject);
        srv.listen({ host: "127.0.0.1", port: 0, exclusive: true }, () => resolve());
      });
      const addr = srv.address();
      if (addr === null || typeof addr === "string") throw new Error("freePorts: no port from listen(0)");
      ports.push(addr.port);
    }
  } finally {
    await Promise.all(servers.map((s) => new Promise<void>((r) => s.close(() => r()))));
  }
  return ports;
}

/** Resolves true when something accepts a TCP connection on host:port. */
export function canConnect(port: number, host = "127.0.0.1", timeoutMs = 1000): Promise<boolean> {
  return new Promise((resolve) => {
    const s = connect({ host, port });
    const done = (ok: boolean): void => {
      clearTimeout(t);
      s.destroy();
      resolve(ok);
    };
    const t = setTimeout(() => done(false), timeoutMs);
    s.once("connect", () => done(true));
    s.once("error", () => done(false));
  });
}
