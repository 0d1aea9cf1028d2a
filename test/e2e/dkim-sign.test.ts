/**
 * CONTRACT "DKIM" with outside verifiers: keys made by `dkim keygen` (the real CLI), the records it printed handed
 * to dkimpy (python3-dkim) and OpenDKIM (the opendkim filter in test mode, TestPublicKeys instead of DNS) as a
 * resolver would (strings joined), and messages signed by the signing stage in a real Session (the in-process
 * tier), stored as the spool stores them: prepend, our Received field, the message. RSA and Ed25519; 8-bit and
 * SMTPUTF8 content; and a signed message relayed through a real Postfix into its Maildir.
 * `dns-records` and `check-config` use the same keys.
 */
import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { loadKeyring, type DkimKeyring } from "../../src/dkim/index.ts";
import { dkimSignStage } from "../../src/inbound/index.ts";
import fc from "fast-check";
import { DkimSigning } from "../../src/dkim/index.ts";
import { dkimpyVerify, dkimpyVerifyAll, opendkimVerify, parseTxtLine, recordsOf } from "../helpers/dkim.ts";
import { havePeer, peerTest } from "../helpers/peers.ts";
import { startPostfix, type Postfix } from "../helpers/postfix.ts";
import { BUN, MAIN } from "../helpers/server.ts";
import { SmtpClient, sendMail, waitFor } from "../helpers/index.ts";
import { sessionTier, TIER_EPOCH } from "../session/harness.ts";

const dir = mkdtempSync(join(tmpdir(), "ringmta-dkim-"));
const config = join(dir, "ringmta.toml");
writeFileSync(
  config,
  `hostname = "mx.example.test"
data_dir = "data"
[checks]                           # no DNS checks: this test/bench is not about them
spf = "off"
dkim = "off"
arc = "off"
dmarc = "off"
[local]
domains = ["example.test", "other.test"]
[[listeners]]
name = "mx"
port = 2525
[[listeners]]
name = "submission"
port = 2587
auth = "required"
[[listeners]]
name = "submissions"
port = 2465
tls = "implicit"
auth = "required"
[dkim.selectors]
"example.test" = ["rsa2026", "ed2026"]
`,
);
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const cli = (...args: string[]) => spawnSync(BUN, [MAIN, ...args], { cwd: dir, encoding: "utf8" });

let printed: string[] = [];
let keyring: DkimKeyring;

beforeAll(() => {
  const rsa = cli("dkim", "keygen", "--domain", "example.test", "--selector", "rsa2026", "--config", config);
  const ed = cli("dkim", "keygen", "--domain", "Example.Test", "--selector", "ed2026", "--algo", "ed25519", "--config", config);
  expect([rsa.status, ed.status, rsa.stderr + ed.stderr]).toEqual([0, 0, ""]);
  printed = [rsa.stdout, ed.stdout];
  const k = loadKeyring(join(dir, "data"), { "example.test": ["rsa2026", "ed2026"] });
  if (!k.ok) throw new Error(k.errors.join("\n"));
  keyring = k.keyring;
}, 60_000);

describe("dkim keygen, dns-records, check-config", () => {
  test("keygen prints exactly one line, the TXT record in strings of at most 255 octets, and writes PKCS#8 PEM 0600 in 0700 dirs", () => {
    expect(printed[0]).toMatch(/^rsa2026\._domainkey\.example\.test\. IN TXT "v=DKIM1; k=rsa; p=[A-Za-z0-9+/]+" "[A-Za-z0-9+/=]+"\n$/);
    expect(printed[1]).toMatch(/^ed2026\._domainkey\.example\.test\. IN TXT "v=DKIM1; k=ed25519; p=[A-Za-z0-9+/]{43}="\n$/);
    for (const s of ["rsa2026", "ed2026"]) {
      const file = join(dir, "data", "dkim", "example.test", `${s}.key`);
      expect(readFileSync(file, "utf8")).toMatch(/^-----BEGIN PRIVATE KEY-----\n/);
      expect(statSync(file).mode & 0o777).toBe(0o600);
    }
    expect(statSync(join(dir, "data", "dkim", "example.test")).mode & 0o777).toBe(0o700);
    expect(statSync(join(dir, "data", "dkim")).mode & 0o777).toBe(0o700);
    expect(parseTxtLine(printed[0]!).value.length).toBeGreaterThan(255); // RSA-2048 needs two strings
  });

  test("an existing key is never overwritten: exit 2, the file unchanged; bad usage is exit 2", () => {
    const file = join(dir, "data", "dkim", "example.test", "ed2026.key");
    const before = readFileSync(file, "utf8");
    const again = cli("dkim", "keygen", "--domain", "example.test", "--selector", "ed2026", "--algo", "ed25519", "--config", config);
    expect(again.status).toBe(2);
    expect(again.stdout).toBe("");
    expect(again.stderr).toMatch(/ed2026\.key already exists/);
    expect(readFileSync(file, "utf8")).toBe(before);
    expect(cli("dkim", "keygen", "--domain", "example.test", "--selector", "x", "--bits", "512", "--config", config).status).toBe(2);
    expect(cli("dkim", "keygen", "--domain", "example.test", "--selector", "a/b", "--config", config).status).toBe(2);
    expect(cli("dkim", "keygen", "--selector", "s", "--config", config).status).toBe(2);
  });

  test("dns-records: every record of each local domain, one zone-file line each, the DKIM lines as keygen printed them", () => {
    const r = cli("dns-records", "--config", config);
    expect(r.status).toBe(0);
    const lines = r.stdout.trimEnd().split("\n");
    const h = "mx.example.test.";
    for (const d of ["example.test", "other.test"]) {
      expect(lines).toContain(`${d}. IN MX 10 ${h}`);
      expect(lines).toContain(`${d}. IN TXT "v=spf1 mx -all"`);
      expect(lines).toContain(`_dmarc.${d}. IN TXT "v=DMARC1; p=quarantine; rua=mailto:postmaster@${d}"`);
      expect(lines.some((l) => l.startsWith(`_mta-sts.${d}. IN TXT "v=STSv1; id=`))).toBe(true);
      expect(lines).toContain(`_smtp._tls.${d}. IN TXT "v=TLSRPTv1; rua=mailto:postmaster@${d}"`);
      expect(lines).toContain(`_submission._tcp.${d}. IN SRV 0 1 2587 ${h}`);
      expect(lines).toContain(`_submissions._tcp.${d}. IN SRV 0 1 2465 ${h}`);
    }
    expect(lines).toContain(printed[0]!.trimEnd());
    expect(lines).toContain(printed[1]!.trimEnd());
    expect(lines.filter((l) => l.includes("._domainkey."))).toHaveLength(2);
    for (const l of lines) expect(l).toMatch(/^\S+\. IN (MX|TXT|SRV) /);
    const one = cli("dns-records", "--domain", "other.test", "--config", config);
    expect(one.stdout.split("\n").filter((l) => l.includes("example.test.") && !l.endsWith("mx.example.test."))).toEqual([]);
  });

  test("check-config: a selector without its key is a config error naming the file (exit 2)", () => {
    const bad = join(dir, "bad.toml");
    writeFileSync(bad, readFileSync(config, "utf8").replace('["rsa2026", "ed2026"]', '["rsa2026", "nokey"]'));
    const r = cli("check-config", "--config", bad);
    expect(r.status).toBe(2);
    expect(r.stderr).toBe(`config error: dkim.selectors.example.test: ${join(dir, "data", "dkim", "example.test", "nokey.key")}: no such file (create it with \`dkim keygen\`)\n`);
    expect(cli("check-config", "--config", config).status).toBe(0);
  });
});

/** The message as the spool stores it after a trusted session (inside relay.networks) sent it: prepend + Received + message. */
async function signedByRingmta(message: Buffer, mailParams = ""): Promise<Buffer> {
  const stage = dkimSignStage({ keyring: () => keyring, trusted: () => true, now: () => TIER_EPOCH });
  const t = sessionTier({ stages: [stage], remoteAddress: "192.0.2.1", policy: { relayNetworks: ["192.0.2.0/24"] } });
  t.send(Buffer.concat([Buffer.from(`EHLO c\r\nMAIL FROM:<alice@example.test>${mailParams}\r\nRCPT TO:<pat@post.test>\r\nDATA\r\n`), message, Buffer.from(".\r\n")]));
  // The signatures are made off the event loop: the commit follows once they are.
  await waitFor(() => t.messages.length > 0 || t.output.includes("\r\n5"), 5000).catch(() => undefined);
  const m = t.messages[0];
  if (!m) throw new Error(`not accepted: ${t.output}`);
  expect(m.prepend.match(/^DKIM-Signature:/gm)).toHaveLength(2);
  return Buffer.from(m.prepend + m.text, "latin1");
}

const ASCII = Buffer.from(
  "From: Alice <alice@example.test>\r\nTo: Pat <pat@post.test>\r\nCc: bob@example.test\r\nSubject: quarterly\r\n" +
    "Date: Thu, 01 Jan 2026 00:00:00 +0000\r\nMessage-ID: <q1@example.test>\r\nMIME-Version: 1.0\r\n" +
    "Content-Type: text/plain; charset=us-ascii\r\n\r\nNumbers  are\tin.  \r\n\r\n.\r\n..two dots\r\n\r\n\r\n",
);
const UTF8 = Buffer.concat([
  Buffer.from(
    "From: Jörg Müller <jörg@example.test>\r\nTo: Zoë <zoë@post.test>\r\nSubject: Grüße aus Köln 😀\r\n" +
      "Date: Thu, 01 Jan 2026 00:00:00 +0000\r\nMessage-ID: <u1@example.test>\r\nMIME-Version: 1.0\r\n" +
      "Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\nÄrger über   Öl\r\n",
    "utf8",
  ),
  Buffer.from([0xff, 0xfe, 0x20, 0x20, 0x0d, 0x0a]), // 8-bit octets that are not UTF-8
]);

const verifiers = [
  ["dkimverify", "dkimpy", dkimpyVerify],
  ["opendkim", "OpenDKIM", opendkimVerify],
] as const;

describe("signatures verify with outside verifiers, through the records dkim keygen printed", () => {
  for (const [peer, name, verify] of verifiers) {
    peerTest(peer, `${name}: RSA and Ed25519 pass on an ASCII message`, async () => {
      expect(verify(await signedByRingmta(ASCII), recordsOf(printed))).toEqual(["rsa2026:pass", "ed2026:pass"]);
    });
    peerTest(peer, `${name}: RSA and Ed25519 pass on an 8-bit, SMTPUTF8 message`, async () => {
      expect(verify(await signedByRingmta(UTF8, " SMTPUTF8 BODY=8BITMIME"), recordsOf(printed))).toEqual(["rsa2026:pass", "ed2026:pass"]);
    });
    peerTest(peer, `${name}: a changed body byte fails both`, async () => {
      const bytes = await signedByRingmta(ASCII);
      const tampered = Buffer.from(bytes.toString("latin1").replace("Numbers", "Numb3rs"), "latin1");
      expect(verify(tampered, recordsOf(printed))).toEqual(["rsa2026:fail", "ed2026:fail"]);
    });
  }
});

/**
 * Well-formed messages of every shape the session lets through: header fields folded or not, with WSP runs and
 * trailing WSP, UTF-8 and 8-bit octets, repeated fields, bodies with WSP runs, trailing WSP, empty lines
 * (at the end too), no body at all.
 */
function randomMessages(n: number, seed: number): Buffer[] {
  const text = fc.array(fc.constantFrom("a", "Z", "0", " ", "  ", "\t", " \t ", "é", "😀", "x", ";", ":", "=", "\xff"), {
    minLength: 1,
    maxLength: 30,
  }).map((a) => a.join(""));
  const value = fc.array(text, { minLength: 1, maxLength: 3 }).map((parts) => parts.join("\r\n\t"));
  const name = fc.constantFrom("Subject", "To", "Cc", "Reply-To", "Message-ID", "Date", "X-Extra", "Content-Type", "References", "SUBJECT");
  const fields = fc.array(fc.tuple(name, value), { maxLength: 8 });
  const body = fc.array(fc.oneof(text, fc.constant(""), fc.constant(" "), fc.constant("\t\t")), { maxLength: 12 });
  const msg = fc.tuple(fields, fc.nat(8), text, body, fc.boolean()).map(([fs, at, display, lines, hasBody]) => {
    const head = fs.map(([k, v]) => `${k}: ${v}`);
    head.splice(Math.min(at, head.length), 0, `From: ${display.replace(/[:;]/g, "")} <alice@example.test>`);
    // UTF-8, with "\xff" standing for a raw 0xFF octet (8-bit, not UTF-8).
    const text = head.map((h) => h + "\r\n").join("") + "\r\n" + (hasBody ? lines.map((l) => l + "\r\n").join("") : "");
    return Buffer.concat(text.split("\xff").flatMap((part, i) => (i === 0 ? [Buffer.from(part, "utf8")] : [Buffer.from([0xff]), Buffer.from(part, "utf8")])));
  });
  return fc.sample(msg, { numRuns: n, seed });
}

describe("random well-formed messages", () => {
  const signedMessages = (): Buffer[] =>
    randomMessages(150, 20261202).map((m) => {
      const s = new DkimSigning();
      s.write(m);
      const r = s.end(keyring, TIER_EPOCH);
      if (r.kind !== "signed") throw new Error(`not signed (${r.reason}): ${JSON.stringify(m.toString("latin1"))}`);
      return Buffer.concat([Buffer.from(r.fields, "latin1"), m]);
    });

  peerTest("dkimverify", "dkimpy: 150 random messages, both signatures pass on each", () => {
    const msgs = signedMessages();
    const results = dkimpyVerifyAll(msgs, recordsOf(printed));
    const bad = results.map((r, i) => ({ r, m: msgs[i]!.toString("latin1") })).filter((x) => x.r.join() !== "rsa2026:pass,ed2026:pass");
    expect(bad).toEqual([]);
  }, 60_000);

  peerTest("opendkim", "OpenDKIM: 40 random messages, both signatures pass on each", () => {
    const msgs = signedMessages().slice(0, 40);
    const bad = msgs.map((m) => ({ r: opendkimVerify(m, recordsOf(printed)), m: m.toString("latin1") })).filter((x) => x.r.join() !== "rsa2026:pass,ed2026:pass");
    expect(bad).toEqual([]);
  }, 60_000);
});

describe("a signed message relayed through a real Postfix still verifies", () => {
  let pf: Postfix | null = null;
  beforeAll(async () => {
    if (!havePeer("postfix")) return;
    pf = await startPostfix("dkim", { virtualDomains: ["post.test"], mailboxes: ["pat@post.test"] });
  }, 60_000);
  afterAll(async () => {
    await pf?.stop();
  });

  peerTest("postfix", "Postfix's Maildir copy (its Received added, LF line ends) passes dkimpy and OpenDKIM", async () => {
    const signed = await signedByRingmta(UTF8, " SMTPUTF8 BODY=8BITMIME");
    const c = await SmtpClient.connect(pf!.port);
    try {
      await c.hello();
      const r = await sendMail(c, "alice@example.test", ["pat@post.test"], signed, "SMTPUTF8 BODY=8BITMIME");
      expect(r.final?.code).toBe(250);
      await c.cmd("QUIT");
    } finally {
      c.destroy();
    }
    const [file] = await waitFor(() => {
      const f = pf!.delivered("post.test", "pat");
      return f.length > 0 ? f : null;
    }, 30_000);
    const got = readFileSync(file!);
    expect(got.toString("latin1")).toMatch(/by postfix-dkim\.test \(Postfix\)/);
    // virtual(8) stores LF line ends; a verifier reads the message in its canonical CRLF form (RFC 5322 §2.1).
    const crlf = Buffer.from(got.toString("latin1").replace(/\r?\n/g, "\r\n"), "latin1");
    if (havePeer("dkimverify")) expect(dkimpyVerify(crlf, recordsOf(printed))).toEqual(["rsa2026:pass", "ed2026:pass"]);
    if (havePeer("opendkim")) expect(opendkimVerify(crlf, recordsOf(printed))).toEqual(["rsa2026:pass", "ed2026:pass"]);
  }, 60_000);
});
