/**
 * One query to one server: UDP (node:dgram), then TCP (node:net) when the answer is truncated (RFC 7766 §5; RFC
 * 1035 §4.2.2 framing: a two-octet length before each message). Only node: modules, so it runs on Bun and Deno.
 * Never rejects: every outcome, a socket error included, is a value.
 */
import { Buffer } from "node:buffer";
import { createSocket, type Socket as UdpSocket } from "node:dgram";
import { connect, isIPv6 } from "node:net";
import type * as packet from "dns-packet";
import { matchReply, type Query } from "./wire.ts";

export interface Server {
  host: string;
  port: number;
}

export type Exchange =
  | { kind: "packet"; packet: packet.DecodedPacket }
  /** No answer in time. */
  | { kind: "timeout" }
  | { kind: "error"; why: string };

/**
 * Sends `q` over UDP from a fresh socket (a random source port per query, RFC 5452 §9.2) and waits up to
 * `timeoutMs` for a datagram from that server that is the answer to it; others are dropped.
 */
export function udpExchange(server: Server, q: Query, timeoutMs: number): Promise<Exchange> {
  return new Promise((resolve) => {
    let sock: UdpSocket;
    try {
      sock = createSocket(isIPv6(server.host) ? "udp6" : "udp4");
    } catch (err) {
      resolve({ kind: "error", why: String(err) });
      return;
    }
    let done = false;
    const finish = (e: Exchange): void => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      try {
        sock.close();
      } catch {
        // already closed by an error
      }
      resolve(e);
    };
    const timer = setTimeout(() => finish({ kind: "timeout" }), timeoutMs);
    sock.on("error", (err) => finish({ kind: "error", why: String(err) }));
    sock.on("message", (msg: Buffer, rinfo) => {
      if (rinfo.port !== server.port || !sameHost(rinfo.address, server.host)) return;
      const m = matchReply(q, msg);
      // Bytes that carry our id but do not decode: a broken server, not a spoofer; give up on it at once.
      if (m === "garbage") finish({ kind: "error", why: "malformed answer" });
      else if (m !== null) finish({ kind: "packet", packet: m });
    });
    sock.send(q.bytes, server.port, server.host, (err) => {
      if (err) finish({ kind: "error", why: String(err) });
    });
  });
}

/** The same query over TCP; one connection per query (we ask TCP only after TC, which is rare). */
export function tcpExchange(server: Server, q: Query, timeoutMs: number): Promise<Exchange> {
  return new Promise((resolve) => {
    let done = false;
    let buf: Buffer = Buffer.alloc(0);
    const sock = connect({ host: server.host, port: server.port });
    const finish = (e: Exchange): void => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      sock.destroy();
      resolve(e);
    };
    const timer = setTimeout(() => finish({ kind: "timeout" }), timeoutMs);
    sock.on("error", (err) => finish({ kind: "error", why: `tcp: ${String(err)}` }));
    sock.on("close", () => finish({ kind: "error", why: "tcp: connection closed before the answer" }));
    sock.on("connect", () => {
      const framed = Buffer.alloc(2 + q.bytes.length);
      framed.writeUInt16BE(q.bytes.length, 0);
      q.bytes.copy(framed, 2);
      sock.write(framed);
    });
    sock.on("data", (chunk: Buffer) => {
      buf = buf.length === 0 ? chunk : Buffer.concat([buf, chunk]);
      // One answer per connection: at most 2 + 65535 octets, so the buffer stays bounded.
      while (buf.length >= 2 && buf.length >= 2 + buf.readUInt16BE(0)) {
        const len = buf.readUInt16BE(0);
        const msg = buf.subarray(2, 2 + len);
        buf = buf.subarray(2 + len);
        const m = matchReply(q, msg);
        if (m === "garbage") return finish({ kind: "error", why: "tcp: malformed answer" });
        if (m !== null) return finish({ kind: "packet", packet: m });
      }
    });
  });
}

/** Address comparison that tolerates IPv4-mapped IPv6 and case in IPv6 text. */
function sameHost(a: string, b: string): boolean {
  const norm = (s: string) => s.toLowerCase().replace(/^::ffff:/, "").replace(/%.*$/, "");
  return norm(a) === norm(b);
}
