/**
 * DANE certificate matching (RFC 7672 §3, RFC 7671) against real certificates made by openssl: DANE-EE by
 * certificate and by key, each matching type; DANE-TA over a presented chain with the name check of §3.2.2; and
 * the records a client must skip (PKIX usages, unknown selectors, digests of the wrong length, absurd sizes).
 */
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { peerTest } from "../../../test/helpers/peers.ts";
import { der, makeTestCa, tlsaData, type Leaf, type TestCa } from "../../../test/helpers/test-ca.ts";
import type { TlsaRecord } from "../../dns/index.ts";
import { daneVerify, usableTlsa } from "./dane.ts";

const rec = (usage: number, selector: number, matchingType: number, hex: string): TlsaRecord => ({
  usage,
  selector,
  matchingType,
  data: new Uint8Array(Buffer.from(hex, "hex")),
});

describe("DANE matching", () => {
  let ca: TestCa | null = null;
  let other: TestCa | null = null;
  let leaf: Leaf;
  let stranger: Leaf;
  beforeAll(() => {
    try {
      ca = makeTestCa();
      other = makeTestCa("another CA");
    } catch {
      return; // openssl missing: peerTest skips (or fails under RINGMTA_REQUIRE_PEERS=1)
    }
    leaf = ca.leaf(["mx.dane.test"]);
    stranger = other.leaf(["mx.dane.test"]);
  });
  afterAll(() => {
    ca?.remove();
    other?.remove();
  });
  const chain = (l: Leaf) => [der(l.cert), der(ca!.cert)];

  peerTest("openssl", "DANE-EE matches the leaf by certificate or key, with each matching type; no name check", () => {
    for (const sel of [0, 1] as const) {
      for (const m of [0, 1, 2] as const) {
        const r = usableTlsa([rec(3, sel, m, tlsaData(leaf.cert, sel, m))]);
        expect(r).toHaveLength(1);
        expect(daneVerify([der(leaf.cert)], r, ["some.other.name"])).toEqual({ ok: true, detail: `DANE-EE 3 ${sel} ${m}` });
      }
    }
  });

  peerTest("openssl", "DANE-EE of another certificate does not match; nor does the CA's digest as DANE-EE", () => {
    const r = usableTlsa([rec(3, 1, 1, tlsaData(stranger.cert, 1, 1)), rec(3, 1, 1, tlsaData(ca!.cert, 1, 1))]);
    expect(daneVerify(chain(leaf), r, ["mx.dane.test"]).ok).toBe(false);
  });

  peerTest("openssl", "DANE-TA: the CA in the presented chain, the chain verifies and the name matches", () => {
    const r = usableTlsa([rec(2, 0, 1, tlsaData(ca!.cert, 0, 1))]);
    expect(daneVerify(chain(leaf), r, ["mx.dane.test"])).toEqual({ ok: true, detail: "DANE-TA 2 0 1" });
    // §3.2.2: the reference identifier must be in the certificate.
    expect(daneVerify(chain(leaf), r, ["mx.elsewhere.test"]).ok).toBe(false);
    // A leaf of another CA presented with our CA appended does not chain to it.
    expect(daneVerify([der(stranger.cert), der(ca!.cert)], r, ["mx.dane.test"]).ok).toBe(false);
    // The TA is not in the chain (a server that sends only its leaf): no match (RFC 7671 §5.2.2).
    expect(daneVerify([der(leaf.cert)], r, ["mx.dane.test"]).ok).toBe(false);
  });

  peerTest("openssl", "garbage in the chain is a mismatch, never an exception", () => {
    const r = usableTlsa([rec(3, 1, 1, tlsaData(leaf.cert, 1, 1))]);
    expect(daneVerify([new Uint8Array([1, 2, 3])], r, ["mx.dane.test"]).ok).toBe(false);
    expect(daneVerify([], r, ["mx.dane.test"]).ok).toBe(false);
  });

  test("unusable records are skipped: PKIX usages, unknown selector or matching type, wrong digest sizes, absurd sizes", () => {
    const h32 = "ab".repeat(32);
    const t0 = performance.now();
    const records = [
      rec(0, 0, 1, h32),
      rec(1, 1, 1, h32),
      rec(3, 2, 1, h32),
      rec(3, 1, 3, h32),
      rec(3, 1, 1, "ab".repeat(31)),
      rec(3, 1, 2, h32),
      rec(2, 0, 0, ""),
      rec(3, 0, 0, "00".repeat(65_000)),
      ...Array.from({ length: 1000 }, () => rec(255, 255, 255, "ff".repeat(1000))),
    ];
    expect(usableTlsa(records)).toEqual([]);
    expect(usableTlsa([rec(3, 1, 1, h32), rec(2, 1, 2, "cd".repeat(64))])).toHaveLength(2);
    expect(performance.now() - t0).toBeLessThan(1000);
  });
});
