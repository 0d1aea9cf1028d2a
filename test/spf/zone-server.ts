/**
 * A DNS server on loopback that answers from a table, over UDP (test/helpers/dns-stub.ts) and TCP on the same port,
 * for the SPF tests that need answers dnsmasq will not give: names that time out (no answer at all), TXT records of
 * 64 KB (too big for UDP: TC=1, then the full answer over TCP, RFC 7766), names of any characters.
 *
 * The table follows the RFC 7208 test suite's zonedata: an absent name is NXDOMAIN (except names under "error.",
 * which time out, as the suite's own driver does), a present name without records of the type is NODATA, a
 * "TIMEOUT" entry silences the name for every type not answered before it, a record whose value is "TIMEOUT"
 * silences its type, and a CNAME is answered with the target's records of the asked type (one level).
 */
import { Buffer } from "node:buffer";
import { createServer, type Server as TcpServer, type Socket } from "node:net";
import * as packet from "dns-packet";
import { reply, startDnsStub, type DnsStub } from "../helpers/dns-stub.ts";

export type ZoneRecord =
  | "TIMEOUT"
  | { type: "A" | "AAAA" | "PTR" | "CNAME"; data: string }
  | { type: "TXT"; data: string[] }
  | { type: "MX"; data: { preference: number; exchange: string } }
  | { type: "A" | "AAAA" | "PTR" | "CNAME" | "TXT" | "MX"; data: "TIMEOUT" };

/** Owner name (any case, no trailing dot) → its records in order. */
export type Zone = Map<string, ZoneRecord[]>;

export interface ZoneServer {
  port: number;
  /** "127.0.0.1:PORT", for Resolver servers. */
  server: string;
  /** The table answered from; replace it between scenarios. */
  zone: Zone;
  /** Queries received over UDP and over TCP so far. */
  readonly counts: { udp: number; tcp: number };
  stop(): Promise<void>;
}

/** The largest UDP answer we send: the EDNS0 payload the query offers, or 512 without EDNS0 (RFC 6891 §6.2.5). */
function udpLimit(q: packet.DecodedPacket): number {
  const opt = (q.additionals ?? []).find((a) => a.type === "OPT") as { udpPayloadSize?: number } | undefined;
  return Math.max(512, opt?.udpPayloadSize ?? 512);
}

/** TXT strings longer than a character-string holds are split at 255 octets (RFC 1035 §3.3). */
function characterStrings(strings: string[]): Buffer[] {
  const out: Buffer[] = [];
  for (const s of strings.length === 0 ? [""] : strings) {
    const b = Buffer.from(s, "utf8");
    if (b.length === 0) out.push(b);
    for (let i = 0; i < b.length; i += 255) out.push(b.subarray(i, i + 255));
  }
  return out;
}

function toAnswer(name: string, r: Exclude<ZoneRecord, "TIMEOUT">): packet.Answer {
  const base = { name, ttl: 60 };
  if (r.type === "TXT") return { ...base, type: "TXT", data: characterStrings(r.data as string[]) };
  if (r.type === "MX") return { ...base, type: "MX", data: r.data as { preference: number; exchange: string } };
  return { ...base, type: r.type, data: r.data as string } as packet.Answer;
}

/** The answer to `q` from `zone`, or null for silence. */
export function answerFrom(zone: Zone, q: packet.DecodedPacket): Buffer | null {
  const question = q.questions?.[0];
  if (question === undefined) return null;
  const name = question.name.replace(/\.$/, "");
  const records = zone.get(name.toLowerCase());
  if (records === undefined) return name.toLowerCase().startsWith("error.") ? null : reply(q, { rcode: 3 });
  const answers: packet.Answer[] = [];
  for (const r of records) {
    if (r === "TIMEOUT") {
      if (answers.length === 0) return null;
      continue;
    }
    if (r.type !== question.type && r.type !== "CNAME") continue;
    if (r.data === "TIMEOUT") return null;
    answers.push(toAnswer(name, r));
    if (r.type === "CNAME" && question.type !== "CNAME") {
      for (const t of zone.get((r.data as string).toLowerCase()) ?? []) {
        if (t !== "TIMEOUT" && t.type === question.type && t.data !== "TIMEOUT") answers.push(toAnswer(r.data as string, t));
      }
    }
  }
  return reply(q, { answers });
}

export async function startZoneServer(zone: Zone = new Map()): Promise<ZoneServer> {
  const state = { zone };
  const counts = { udp: 0, tcp: 0 };
  const udp: DnsStub = await startDnsStub((q) => {
    counts.udp++;
    const a = answerFrom(state.zone, q);
    if (a === null) return [];
    // Too big for this UDP exchange: an empty truncated answer sends the client to TCP (RFC 7766 §5).
    return [a.length > udpLimit(q) ? reply(q, { tc: true }) : a];
  });
  const tcp: TcpServer = createServer((sock: Socket) =>
    serveTcp(sock, () => {
      counts.tcp++;
      return state.zone;
    }),
  );
  await new Promise<void>((res, rej) => {
    tcp.once("error", rej);
    tcp.listen({ host: "127.0.0.1", port: udp.port, exclusive: true }, () => res());
  });
  return {
    port: udp.port,
    server: udp.server,
    counts,
    get zone() {
      return state.zone;
    },
    set zone(z: Zone) {
      state.zone = z;
    },
    async stop() {
      await udp.stop();
      await new Promise<void>((res) => tcp.close(() => res()));
    },
  };
}

/** RFC 1035 §4.2.2 framing: a two-octet length before each message; queries bigger than 64 KB cannot exist. */
function serveTcp(sock: Socket, zone: () => Zone): void {
  let buf = Buffer.alloc(0);
  sock.on("error", () => sock.destroy());
  sock.on("data", (chunk: Buffer) => {
    buf = Buffer.concat([buf, chunk]);
    while (buf.length >= 2 && buf.length >= 2 + buf.readUInt16BE(0)) {
      const len = buf.readUInt16BE(0);
      const msg = buf.subarray(2, 2 + len);
      buf = buf.subarray(2 + len);
      let q: packet.DecodedPacket;
      try {
        q = packet.decode(msg);
      } catch {
        sock.destroy();
        return;
      }
      const a = answerFrom(zone(), q);
      if (a === null) continue;
      const head = Buffer.alloc(2);
      head.writeUInt16BE(a.length);
      sock.write(Buffer.concat([head, a]));
    }
  });
}
