/**
 * A tiny DNS server over UDP on a loopback port, for what a real server will not do on demand: count the packets
 * it gets, answer garbage, answer with a wrong id, or craft an exact answer (TTL, SOA for negative caching).
 * `answer` gets each decoded query and returns the datagrams to send back (none: stay silent).
 */
import { Buffer } from "node:buffer";
import { createSocket } from "node:dgram";
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

/** `host`: the loopback address to bind, 127.0.0.1 or ::1. */
export async function startDnsStub(answer: StubAnswer, host = "127.0.0.1"): Promise<DnsStub> {
  const v6 = host.includes(":");
  const sock = createSocket(v6 ? "udp6" : "udp4");
  const queries: packet.DecodedPacket[] = [];
  sock.on("message", (msg, rinfo) => {
    let q: packet.DecodedPacket;
    try {
      q = packet.decode(msg);
    } catch {
      return;
    }
    queries.push(q);
    for (const out of answer(q, msg)) sock.send(out, rinfo.port, rinfo.address);
  });
  await new Promise<void>((res) => sock.bind(0, host, () => res()));
  const port = sock.address().port;
  return {
    port,
    server: v6 ? `[${host}]:${port}` : `${host}:${port}`,
    queries,
    stop: () => new Promise<void>((res) => sock.close(() => res())),
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
