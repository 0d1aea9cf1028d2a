/**
 * Both Dialer adapters (transport/types.ts DialOptions.unix) connect to a Unix-domain socket, as the LMTP courier
 * does to Dovecot's lmtp socket: bytes go both ways, and a missing socket is a rejection, not a hang.
 */
import { createServer, type Server } from "node:net";
import { join } from "node:path";
import { afterEach, describe, expect, test } from "vitest";
import { tempDir } from "../../test/helpers/server.ts";
import { createBunDialer } from "./bun/index.ts";
import { createDenoDialer } from "./deno/index.ts";
import type { ClientConn, Dialer } from "./types.ts";

const servers: Server[] = [];
afterEach(async () => {
  for (const s of servers.splice(0)) await new Promise<void>((r) => s.close(() => r()));
});

/** An echo peer that greets first, like an LMTP server. */
async function unixPeer(): Promise<string> {
  const path = join(tempDir("unix-dial-"), "peer.sock");
  const srv = createServer((s) => {
    s.write("220 unix peer\r\n");
    s.on("data", (b) => s.write(`250 ${b.toString()}`));
  });
  servers.push(srv);
  await new Promise<void>((r) => srv.listen(path, () => r()));
  return path;
}

function lines(conn: ClientConn): () => Promise<string> {
  const got: string[] = [];
  let wake: (() => void) | null = null;
  conn.setHandler({
    onData: (c) => {
      got.push(Buffer.from(c).toString());
      wake?.();
    },
    onDrain: () => {},
    onClose: () => {},
  });
  return async () => {
    while (got.length === 0) await new Promise<void>((r) => (wake = r));
    return got.shift()!;
  };
}

const adapters: Array<[string, () => Dialer]> = [
  ["Bun", createBunDialer],
  ["node:net (Deno)", createDenoDialer],
];

describe.each(adapters)("%s dialer over a Unix socket", (_name, make) => {
  test("connects to the path, bytes both ways", async () => {
    const path = await unixPeer();
    const conn = await make().connect({ host: "localhost", port: 0, unix: path, timeoutMs: 5000 });
    const next = lines(conn);
    expect(await next()).toBe("220 unix peer\r\n");
    conn.write(new TextEncoder().encode("LHLO me\r\n"));
    expect(await next()).toBe("250 LHLO me\r\n");
    expect(conn.remoteAddress).toBe(path);
    conn.destroy();
  });

  test("a path where nothing listens is a rejection", async () => {
    const path = join(tempDir("unix-dial-"), "absent.sock");
    await expect(make().connect({ host: "localhost", port: 0, unix: path, timeoutMs: 5000 })).rejects.toThrow();
  });
});
