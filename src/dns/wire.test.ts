/**
 * The codec boundary: whatever bytes arrive, matching and interpreting them never throws (a malformed answer is a
 * server failure, RFC 5452 §9.1 strays are ignored), and the query we send is what RFC 6891 asks for.
 */
import { Buffer } from "node:buffer";
import fc from "fast-check";
import { describe, expect, test } from "vitest";
import * as packet from "dns-packet";
import { buildQuery, interpret, matchReply } from "./wire.ts";

describe("wire", () => {
  test("random bytes carrying our id: matched as garbage, null, or a packet that interprets without throwing", () => {
    const q = buildQuery("fuzz.test", "MX", true);
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 0, maxLength: 600 }), (tail) => {
        const buf = Buffer.concat([Buffer.from([q.id >> 8, q.id & 0xff]), Buffer.from(tail)]);
        const m = matchReply(q, buf);
        if (m !== null && m !== "garbage") expect(["answer", "truncated", "failed"]).toContain(interpret(q, m).kind);
      }),
      { numRuns: 2000 },
    );
  });

  test("a valid answer with random bytes overwritten: never an exception", () => {
    const q = buildQuery("fuzz.test", "MX", true);
    const good = packet.encode({
      type: "response",
      id: q.id,
      flags: packet.RECURSION_DESIRED,
      questions: [{ type: "MX", name: "fuzz.test" }],
      answers: [
        { type: "CNAME", name: "fuzz.test", ttl: 60, data: "mail.fuzz.test" },
        { type: "MX", name: "mail.fuzz.test", ttl: 60, data: { preference: 10, exchange: "mx.fuzz.test" } },
      ],
      authorities: [{ type: "SOA", name: "fuzz.test", ttl: 60, data: { mname: "ns.fuzz.test", rname: "h.fuzz.test", minimum: 30 } }],
    });
    let interpreted = 0;
    fc.assert(
      fc.property(fc.array(fc.tuple(fc.nat(good.length - 1), fc.integer({ min: 0, max: 255 })), { minLength: 1, maxLength: 6 }), (edits) => {
        const buf = Buffer.from(good);
        for (const [at, v] of edits) if (at >= 2) buf[at] = v;
        const m = matchReply(q, buf);
        if (m !== null && m !== "garbage") {
          interpreted++;
          expect(["answer", "truncated", "failed"]).toContain(interpret(q, m).kind);
        }
      }),
      { numRuns: 3000 },
    );
    expect(interpreted).toBeGreaterThan(100);
  });

  test("a well-formed answer with the records of another type, or of another name, is no answer for ours", () => {
    const q = buildQuery("x.test", "A", true);
    const base = { type: "response" as const, id: q.id, flags: packet.RECURSION_DESIRED, questions: [{ type: "A" as const, name: "x.test" }] };
    const other = packet.encode({ ...base, answers: [{ type: "A", name: "y.test", ttl: 60, data: "192.0.2.1" }] });
    const m = matchReply(q, other);
    expect(m).not.toBeNull();
    expect(interpret(q, m as packet.DecodedPacket)).toMatchObject({ kind: "answer", status: "nodata", records: [] });
    const wrongQuestion = packet.encode({ ...base, questions: [{ type: "AAAA", name: "x.test" }] });
    expect(matchReply(q, wrongQuestion)).toBeNull();
    // A query (QR clear) echoed back is not an answer.
    expect(matchReply(q, q.bytes)).toBeNull();
  });

  test("records of broken shape inside a decodable packet are a failure, not an exception", () => {
    const q = buildQuery("x.test", "MX", true);
    const p = packet.decode(packet.encode({ type: "response", id: q.id, questions: [{ type: "MX", name: "x.test" }], answers: [] }));
    p.answers = [{ type: "MX", name: "x.test", ttl: 5, data: null } as unknown as packet.Answer];
    expect(interpret(q, p)).toMatchObject({ kind: "failed" });
  });
});
