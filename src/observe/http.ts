/**
 * GET /metrics (Prometheus text 0.0.4) and GET /healthz (200 "ok", or 503 with the reason), on node:http,
 * which Bun and Deno both serve.
 */
import { createServer, type Server } from "node:http";

export interface ObserveEndpoints {
  metrics(): string;
  health(): { ok: true } | { ok: false; reason: string };
}

export function serveObserve(host: string, port: number, ep: ObserveEndpoints): Promise<Server> {
  const server = createServer((req, res) => {
    const path = (req.url ?? "/").split("?")[0];
    if (req.method !== "GET" && req.method !== "HEAD") {
      res.writeHead(405, { Allow: "GET, HEAD" }).end();
    } else if (path === "/metrics") {
      res.writeHead(200, { "Content-Type": "text/plain; version=0.0.4; charset=utf-8" }).end(ep.metrics());
    } else if (path === "/healthz") {
      const h = ep.health();
      if (h.ok) res.writeHead(200, { "Content-Type": "text/plain" }).end("ok\n");
      else res.writeHead(503, { "Content-Type": "text/plain" }).end(`unhealthy: ${h.reason}\n`);
    } else {
      res.writeHead(404, { "Content-Type": "text/plain" }).end("not found\n");
    }
  });
  return new Promise((resolve, reject) => {
    server.once("error", reject);
    server.listen(port, host, () => resolve(server));
  });
}
