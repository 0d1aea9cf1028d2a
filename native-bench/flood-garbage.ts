/**
 * The garbage side of `bun run bench -- flood`, run as its own process so that pumping random bytes never delays
 * the measuring client's event loop. Keeps `connections` sockets open, spread over the source addresses
 * (127.0.0.x, bound with localAddress), each writing random bytes (a CRLF now and then) as fast as the socket
 * drains; a socket the server closes is replaced at once, until the duration is over. Prints one JSON line:
 * how many connections were opened, how the server ended them (421 4.7.0 after errors, 421 at connect, other),
 * and the bytes written.
 *
 * usage: bun native-bench/flood-garbage.ts --host H --port P --connections N --sources A,B,… --duration-ms D
 */
import { randomBytes } from "node:crypto";
import { connect, type Socket } from "node:net";
import { parseArgs } from "node:util";

export interface GarbageSummary {
  opened: number;
  /** Ended by the server with 421 4.7.0 after error replies (the error limit). */
  closedByErrorLimit: number;
  /** Refused at connect with 421 (connection rate or count limits). */
  refusedAtConnect: number;
  /** Closed by the server some other way (or reset). */
  closedOther: number;
  /** Still open when the run ended. */
  openAtEnd: number;
  bytesWritten: number;
  /** Error replies (5xx lines) the server sent to garbage connections in all. */
  errorReplies: number;
  connectErrors: number;
}

/** A few pre-made chunks: random bytes are costly to make, and the server cannot tell them apart. */
function makePool(): Buffer[] {
  return Array.from({ length: 16 }, () => {
    const b = randomBytes(64 * 1024);
    for (let i = 100 + (b[0]! % 200); i < b.length - 1; i += 60 + b[i]! * 8) {
      b[i] = 13;
      b[i + 1] = 10;
    }
    return b;
  });
}

export function runGarbage(host: string, port: number, connections: number, sources: string[], durationMs: number): Promise<GarbageSummary> {
  const pool = makePool();
  const s: GarbageSummary = {
    opened: 0,
    closedByErrorLimit: 0,
    refusedAtConnect: 0,
    closedOther: 0,
    openAtEnd: 0,
    bytesWritten: 0,
    errorReplies: 0,
    connectErrors: 0,
  };
  const end = Date.now() + durationMs;
  const live = new Set<Socket>();
  let pick = 0;
  return new Promise((resolve) => {
    const open = (slot: number): void => {
      if (Date.now() >= end) return;
      const source = sources.length ? sources[slot % sources.length] : undefined;
      const sock = connect({ host, port, ...(source ? { localAddress: source } : {}) });
      live.add(sock);
      s.opened++;
      let tail = "";
      let lastLine = "";
      let greeted: boolean | null = null;
      let connected = false;
      let errorCount = 0;
      const pump = (): void => {
        while (Date.now() < end && !sock.destroyed) {
          const b = pool[pick++ & 15]!;
          s.bytesWritten += b.length;
          if (!sock.write(b)) return;
        }
        if (Date.now() >= end) sock.destroy();
      };
      sock.on("connect", () => {
        connected = true;
        pump();
      });
      sock.on("drain", pump);
      sock.on("data", (d: Buffer) => {
        tail += d.toString("latin1");
        let nl: number;
        while ((nl = tail.indexOf("\n")) >= 0) {
          const line = tail.slice(0, nl).replace(/\r$/, "");
          tail = tail.slice(nl + 1);
          greeted ??= line.startsWith("220");
          if (/^5\d\d /.test(line)) errorCount++;
          lastLine = line;
        }
      });
      sock.on("error", () => {
        if (!connected) s.connectErrors++;
      });
      sock.on("close", () => {
        live.delete(sock);
        s.errorReplies += errorCount;
        const last = lastLine;
        if (last.startsWith("421") && greeted === false) s.refusedAtConnect++;
        else if (last.startsWith("421 4.7.0")) s.closedByErrorLimit++;
        else if (Date.now() >= end) s.openAtEnd++;
        else s.closedOther++;
        if (Date.now() < end) setTimeout(() => open(slot), 0);
        else if (live.size === 0) resolve(s);
      });
    };
    for (let i = 0; i < connections; i++) open(i);
    setTimeout(() => {
      for (const sock of live) sock.destroy();
      if (live.size === 0) resolve(s);
    }, durationMs + 50);
  });
}

if (import.meta.main) {
  const { values } = parseArgs({
    args: process.argv.slice(2),
    strict: true,
    options: {
      host: { type: "string" },
      port: { type: "string" },
      connections: { type: "string" },
      sources: { type: "string" },
      "duration-ms": { type: "string" },
    },
  });
  const sources = (values.sources ?? "").split(",").filter((x) => x !== "");
  const r = await runGarbage(values.host ?? "127.0.0.1", Number(values.port), Number(values.connections ?? "200"), sources, Number(values["duration-ms"] ?? "30000"));
  console.log(JSON.stringify(r));
  process.exit(0);
}
