/**
 * DKIM signing under Deno (ARCHITECTURE: the same core runs on Deno): keys written and read by dkim/, a message
 * signed in one piece and streamed in small chunks, each signature checked by mailauth's
 * verifier through the records dkim/ makes.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { createRequire } from "node:module";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { DkimSigning, generateKeyFile, keyFile, loadKeyring, publicRecord, signMessage } from "../../src/dkim/index.ts";

declare const Deno: { test(name: string, fn: () => Promise<void>): void };

function assert(cond: unknown, msg: string): asserts cond {
  if (!cond) throw new Error(msg);
}

const require = createRequire(import.meta.url);
const { dkimVerify } = require("mailauth/lib/dkim/verify.js") as {
  dkimVerify: (m: Uint8Array, o: object) => Promise<{ results: Array<{ status: { result: string }; selector: string }> }>;
};

Deno.test("DKIM: RSA and Ed25519 signatures made under Deno pass mailauth's verifier", async () => {
  const data = mkdtempSync(join(tmpdir(), "ringmta-deno-dkim-"));
  try {
    const records = new Map<string, string>();
    for (const [s, algo] of [["rsa1", "rsa"], ["ed1", "ed25519"]] as const) {
      records.set(`${s}._domainkey.example.test`, publicRecord(generateKeyFile(keyFile(data, "example.test", s), algo, 2048)));
    }
    const k = loadKeyring(data, { "example.test": ["rsa1", "ed1"] });
    assert(k.ok, "keys load");
    const resolver = async (name: string): Promise<string[][]> => {
      const v = records.get(name);
      if (v === undefined) throw Object.assign(new Error("none"), { code: "ENOTFOUND" });
      return [[v]];
    };
    const msg = new TextEncoder().encode("From: Jörg <j@example.test>\r\nSubject: Grüße\r\nTo: b@remote.test\r\n\r\nÄ  b\r\n");
    const whole = signMessage(msg, k.keyring, Date.now());
    assert(whole.kind === "signed", "signed in one piece");
    const streamed = new DkimSigning();
    for (let i = 0; i < msg.length; i += 7) streamed.write(msg.subarray(i, i + 7));
    const later = streamed.end(k.keyring, Date.now());
    assert(later.kind === "signed", "signed while streaming");
    for (const fields of [whole.fields, later.fields]) {
      const signedMsg = new Uint8Array([...new TextEncoder().encode(fields), ...msg]);
      const r = await dkimVerify(signedMsg, { resolver });
      const got = r.results.map((x) => `${x.selector}:${x.status.result}`).join(",");
      assert(got === "rsa1:pass,ed1:pass", `mailauth says ${got}`);
    }
  } finally {
    rmSync(data, { recursive: true, force: true });
  }
});
