/**
 * dns/ under Deno (`deno test -A test/deno/`): the resolver uses only node:dgram and node:net, so it must work the
 * same here. A small UDP server answers with AD, truncates one name (TC) that a TCP server then answers, and sends
 * a spoofed answer (wrong id) before the real one.
 */
import { Buffer } from "node:buffer";
import { createServer, type AddressInfo } from "node:net";
import * as packet from "dns-packet";
import { reply, startDnsStub } from "../helpers/dns-stub.ts";
import { nodeDnsAdapter, Resolver } from "../../src/dns/index.ts";

declare const Deno: {
  test(def: { name: string; sanitizeOps?: boolean; sanitizeResources?: boolean; fn(): Promise<void> }): void;
};

function assert(cond: unknown, msg: string): asserts cond {
  if (!cond) throw new Error(msg);
}

const BIG = Array.from({ length: 8 }, (_, i) => `${i}`.repeat(250));

Deno.test({
  name: "dns/ resolver on Deno: UDP with AD, a spoofed id ignored, TC then TCP, node:dns-shaped errors",
  sanitizeOps: false,
  sanitizeResources: false,
  async fn() {
    const answerFor = (q: packet.DecodedPacket, tc: boolean): Buffer => {
      const { name } = q.questions![0];
      if (name === "big.test") return reply(q, { tc, answers: tc ? [] : BIG.map((t) => ({ type: "TXT", name, ttl: 60, data: [t] }) as packet.Answer) });
      if (name === "a.test") return reply(q, { ad: true, answers: [{ type: "A", name, ttl: 60, data: "192.0.2.1" }] });
      return reply(q, { rcode: 3 });
    };
    // The TCP side on the same port (RFC 7766: TCP on the same address and port as UDP). The UDP port's TCP twin
    // may be taken by another test's connection: then both are picked again.
    const tcp = createServer((sock) => {
      let buf = Buffer.alloc(0);
      sock.on("data", (chunk: Buffer) => {
        buf = Buffer.concat([buf, chunk]);
        if (buf.length < 2 || buf.length < 2 + buf.readUInt16BE(0)) return;
        const out = answerFor(packet.decode(buf.subarray(2, 2 + buf.readUInt16BE(0))), false);
        const framed = Buffer.alloc(2 + out.length);
        framed.writeUInt16BE(out.length, 0);
        out.copy(framed, 2);
        sock.end(framed);
      });
    });
    let udp = await startDnsStub((q) => [reply(q, { id: (q.id! + 1) & 0xffff }), answerFor(q, true)]);
    for (let tries = 0; ; tries++) {
      const bound = await new Promise<boolean>((res) => {
        tcp.once("error", () => res(false));
        tcp.listen(udp.port, "127.0.0.1", () => res(true));
      });
      if (bound) break;
      await udp.stop();
      if (tries === 20) throw new Error("no port free for both UDP and TCP");
      udp = await startDnsStub((q) => [reply(q, { id: (q.id! + 1) & 0xffff }), answerFor(q, true)]);
    }
    try {
      assert((tcp.address() as AddressInfo).port === udp.port, "tcp port");
      const r = new Resolver({ servers: [udp.server], timeoutMs: 1000 });
      const a = await r.lookup("a.test", "A");
      assert(a.status === "ok" && a.records[0] === "192.0.2.1" && a.ad, `A: ${JSON.stringify(a)}`);
      const big = await r.lookup("big.test", "TXT");
      assert(big.status === "ok" && big.records.length === 8, `TXT over TCP: ${JSON.stringify(big.status)} ${big.records.length}`);
      let code = "";
      await nodeDnsAdapter(r).resolve4("none.test").catch((e: { code: string }) => (code = e.code));
      assert(code === "ENOTFOUND", `code ${code}`);
    } finally {
      tcp.close();
      await udp.stop();
    }
  },
});
