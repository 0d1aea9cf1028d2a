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

/**
 * Keeps `ports` bound until release(), closing every connection at once (a peer that is down: a client sees its
 * connection end before any greeting, a temporary failure). For a port a test names in a config now and serves
 * much later: left unbound meanwhile, the kernel may give it to any outgoing connection as its local port, and the
 * later bind fails with EADDRINUSE.
 */
export async function holdPorts(ports: ReadonlyArray<number>): Promise<{ release(): Promise<void> }> {
  const servers: Server[] = [];
  for (const port of ports) {
    const srv = createServer((s) => s.destroy());
    servers.push(srv);
    await new Promise<void>((resolve, reject) => {
      srv.once("error", reject);
      srv.listen({ host: "127.0.0.1", port, exclusive: true }, () => resolve());
    });
  }
  return {
    release: () => Promise.all(servers.map((s) => new Promise<void>((r) => s.close(() => r())))).then(() => {}),
  };
}
