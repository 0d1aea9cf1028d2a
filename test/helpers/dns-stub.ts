/**
 * A tiny DNS server over UDP on a loopback port, for what a real server will not do on demand: count the packets
 * it gets, answer garbage, answer with a wrong id, or craft an exact answer (TTL, SOA for negative caching).
 * `answer` gets each decoded query and returns the datagrams to send back (none: stay silent).
 */
import { Buffer } from "node:buffer";
import { createSocket } from "node:dgram";
import { createServer, type Server as TcpServer, type Socket } from "node:net";
import * as packet from "dns-packet";

export interface DnsStub {
  port: number;
  /** "127.0.0.1:PORT" or "[::1]:PORT", for dns.servers. */
  server: string;
  /** Every query received, in order. */
  queries: packet.DecodedPacket[];
  stop(): Promise<void>;
}

export type StubAnswer = (q: packet.DecodedPacket, raw: Buffer) => Buffer[];

/**
 * `host`: the loopback address to bind, 127.0.0.1 or ::1. `tcpAnswer`: also listen on TCP at the same port
 * (RFC 1035 §4.2.2 framing) and answer each query with what it returns (for answers over 512/1232 octets).
 */
export async function startDnsStub(answer: StubAnswer, host = "127.0.0.1", tcpAnswer?: StubAnswer): Promise<DnsStub> {
  const v6 = host.includes(":");
  const sock = createSocket(v6 ? "udp6" : "udp4");
  const queries: packet.DecodedPacket[] = [];
  /** Decodes and records a query; the answers to send (none for an undecodable one). */
  const handle = (msg: Buffer, by: StubAnswer): Buffer[] => {
    let q: packet.DecodedPacket;
    try {
      q = packet.decode(msg);
    } catch {
      return [];
    }
    queries.push(q);
    return by(q, msg);
  };
  sock.on("message", (msg, rinfo) => {
    for (const out of handle(msg, answer)) sock.send(out, rinfo.port, rinfo.address);
  });
  await new Promise<void>((res) => sock.bind(0, host, () => res()));
  const port = sock.address().port;
  let tcp: TcpServer | null = null;
  const conns = new Set<Socket>();
  if (tcpAnswer) {
    tcp = createServer((c) => {
      conns.add(c);
      c.on("close", () => conns.delete(c));
      c.on("error", () => {});
      let buf = Buffer.alloc(0);
      c.on("data", (d: Buffer) => {
        buf = Buffer.concat([buf, d]);
        while (buf.length >= 2 && buf.length >= 2 + buf.readUInt16BE(0)) {
          const msg = buf.subarray(2, 2 + buf.readUInt16BE(0));
          buf = buf.subarray(2 + msg.length);
          for (const out of handle(msg, tcpAnswer)) {
            const len = Buffer.alloc(2);
            len.writeUInt16BE(out.length);
            c.write(Buffer.concat([len, out]));
          }
        }
      });
    });
    await new Promise<void>((res, rej) => {
      tcp!.once("error", rej);
      tcp!.listen(port, host, () => res());
    });
  }
  return {
    port,
    server: v6 ? `[${host}]:${port}` : `${host}:${port}`,
    queries,
    async stop() {
      for (const c of conns) c.destroy();
      if (tcp) await new Promise<void>((res) => tcp!.close(() => res()));
      await new Promise<void>((res) => sock.close(() => res()));
    },
  };
}

/** A response to `q` with the given sections and RCODE (0 NOERROR, 2 SERVFAIL, 3 NXDOMAIN). */
export function reply(
  q: packet.DecodedPacket,
  over: { rcode?: number; answers?: packet.Answer[]; authorities?: packet.Answer[]; ad?: boolean; id?: number; tc?: boolean } = {},
): Buffer {
  let flags = packet.RECURSION_DESIRED | packet.RECURSION_AVAILABLE | (over.rcode ?? 0);
  if (over.ad) flags |= packet.AUTHENTIC_DATA;
  if (over.tc) flags |= packet.TRUNCATED_RESPONSE;
  return packet.encode({
    type: "response",
    id: over.id ?? q.id,
    flags,
    questions: q.questions,
    answers: over.answers ?? [],
    authorities: over.authorities ?? [],
  });
}

/** An SOA for the authority section of a negative answer (RFC 2308 §3). */
export function soa(zone: string, ttl: number, minimum: number): packet.Answer {
  return {
    type: "SOA",
    name: zone,
    ttl,
    data: { mname: `ns.${zone}`, rname: `hostmaster.${zone}`, serial: 1, refresh: 3600, retry: 600, expire: 86400, minimum },
  };
}
