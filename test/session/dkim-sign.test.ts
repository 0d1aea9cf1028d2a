/**
 * The DKIM signing stage in the in-process session tier: what a session from an authenticated user or from
 * relay.networks commits carries one DKIM-Signature per selector of the From domain (or its nearest parent), and
 * the stored bytes — prepend, our Received field, the message — verify (mailauth here; dkimpy and OpenDKIM in
 * test/e2e/dkim-sign.test.ts). Other sessions are not signed; absurd header sections leave the message unsigned
 * and the session answering.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, test } from "vitest";
import { dkimRecordLine, generateKeyFile, keyFile, loadKeyring, MAX_HEADER_FIELDS, type DkimKeyring, type SignOutcome } from "../../src/dkim/index.ts";
import { dkimSignStage } from "../../src/inbound/index.ts";
import { fileDirectory } from "../../src/directory/index.ts";
import { Policy } from "../../src/policy/index.ts";
import { mailauthVerify, recordsOf } from "../helpers/dkim.ts";
import { waitFor } from "../helpers/wait.ts";
import { sessionTier, TIER_EPOCH, type TierReply } from "./harness.ts";

const codes = (rs: TierReply[]): string[] => rs.map((r) => (r.enhanced ? `${r.code} ${r.enhanced}` : `${r.code}`));
const plain = (u: string, p: string): string => Buffer.from(`\0${u}\0${p}`).toString("base64");

const data = mkdtempSync(join(tmpdir(), "dkim-tier-"));
afterAll(() => rmSync(data, { recursive: true, force: true }));
const lines = [
  dkimRecordLine("example.test", "rsa1", generateKeyFile(keyFile(data, "example.test", "rsa1"), "rsa", 2048)),
  dkimRecordLine("example.test", "ed1", generateKeyFile(keyFile(data, "example.test", "ed1"), "ed25519", 0)),
];
const records = recordsOf(lines);
const loaded = loadKeyring(data, { "example.test": ["rsa1", "ed1"] });
if (!loaded.ok) throw new Error(loaded.errors.join("\n"));
const keyring: DkimKeyring = loaded.keyring;

const RELAY_NETWORKS = ["192.0.2.0/24"];

/** The stage as app/ builds it: trusted = authenticated or inside relay.networks (Policy.mayRelay). */
function tier(o: { listener?: string; remoteAddress?: string; maxMessageSize?: number } = {}) {
  const outcomes: SignOutcome[] = [];
  const policy = new Policy({ directory: fileDirectory({ domains: ["example.test"], users: [], aliases: {} }), catchAll: true, relayNetworks: RELAY_NETWORKS });
  const stage = dkimSignStage({
    keyring: () => keyring,
    trusted: (view) => policy.mayRelay({ clientAddress: view.clientAddress, authUser: view.authUser }),
    now: () => TIER_EPOCH,
    report: (r) => outcomes.push(r),
  });
  const t = sessionTier({
    stages: [stage],
    listener: o.listener ?? "mx",
    remoteAddress: o.remoteAddress ?? "198.51.100.7",
    policy: { relayNetworks: RELAY_NETWORKS },
    ...(o.maxMessageSize !== undefined ? { maxMessageSize: o.maxMessageSize } : {}),
  });
  return { t, outcomes };
}

async function authenticated(t: ReturnType<typeof sessionTier>): Promise<void> {
  t.send("EHLO c\r\nSTARTTLS\r\n");
  await t.settle();
  t.send(`EHLO c\r\nAUTH PLAIN ${plain("alice@example.test", "secret-alice")}\r\n`);
  await t.settle();
}

const MESSAGE =
  "From: Alice <alice@example.test>\r\nTo: <bob@remote.test>\r\nSubject: signed\r\nDate: Thu, 1 Jan 2026 00:00:00 +0000\r\n" +
  "Message-ID: <1@example.test>\r\n\r\nHello  there \r\n..a dot-stuffed line\r\n\r\n";

const stored = (m: { prepend: string; text: string }): Uint8Array => Buffer.from(m.prepend + m.text, "latin1");

/** The signatures are made off the event loop: wait until `n` messages are committed, then let replies flush. */
async function committed(t: ReturnType<typeof sessionTier>, n: number): Promise<void> {
  await waitFor(() => t.messages.length >= n, 5000);
  await t.settle();
}

describe("DKIM signing stage", () => {
  test("an authenticated submission is signed once per selector; the stored bytes verify", async () => {
    const { t, outcomes } = tier({ listener: "submission" });
    await authenticated(t);
    t.send(`MAIL FROM:<alice@example.test>\r\nRCPT TO:<bob@remote.test>\r\nDATA\r\n${MESSAGE}.\r\n`);
    await committed(t, 1);
    expect(codes(t.replies()).slice(-4)).toEqual(["250 2.1.0", "250 2.1.5", "354", "250 2.0.0"]);
    const m = t.messages[0]!;
    expect(m.prepend.match(/^DKIM-Signature:/gm)).toHaveLength(2);
    expect(m.text).toMatch(/^Received: /); // our Received sits between the signatures and the message
    expect(await mailauthVerify(stored(m), records, new Date(TIER_EPOCH))).toEqual(["rsa1:pass", "ed1:pass"]);
    expect(outcomes.map((o) => o.kind)).toEqual(["signed"]);
  });

  test("a subdomain's From is signed for the nearest parent with selectors (d=example.test)", async () => {
    const { t } = tier({ listener: "submission" });
    await authenticated(t);
    t.send(`MAIL FROM:<alice@example.test>\r\nRCPT TO:<bob@remote.test>\r\nDATA\r\n${MESSAGE.replace("alice@example.test", "alice@news.example.test")}.\r\n`);
    await committed(t, 1);
    const m = t.messages[0]!;
    expect(m.prepend).toMatch(/d=example\.test;/);
    expect(await mailauthVerify(stored(m), records, new Date(TIER_EPOCH))).toEqual(["rsa1:pass", "ed1:pass"]);
  });

  test("a client inside relay.networks is signed without AUTH; one outside is not", async () => {
    for (const [addr, signed] of [["192.0.2.10", true], ["198.51.100.7", false]] as const) {
      const { t } = tier({ remoteAddress: addr });
      t.send(`EHLO c\r\nMAIL FROM:<alice@example.test>\r\nRCPT TO:<alice@example.test>\r\nDATA\r\n${MESSAGE}.\r\n`);
      await committed(t, 1);
      expect(codes(t.replies()).at(-1)).toBe("250 2.0.0");
      expect(t.messages[0]!.prepend.includes("DKIM-Signature:")).toBe(signed);
    }
  });

  test("sent one byte at a time, the signature is the same as sent at once", async () => {
    const run = async (bytewise: boolean): Promise<string> => {
      const { t } = tier({ remoteAddress: "192.0.2.10" });
      const s = `EHLO c\r\nMAIL FROM:<alice@example.test>\r\nRCPT TO:<alice@example.test>\r\nDATA\r\n${MESSAGE}.\r\n`;
      if (bytewise) t.sendBytewise(s);
      else t.send(s);
      await committed(t, 1);
      return t.messages[0]!.prepend;
    };
    const once = await run(false);
    expect(once).toContain("DKIM-Signature:");
    expect(await run(true)).toBe(once);
  });

  test(`${MAX_HEADER_FIELDS} header fields, or a 2 MiB header section: answered in bounded time, unsigned, the session goes on`, async () => {
    const { t, outcomes } = tier({ remoteAddress: "192.0.2.10", maxMessageSize: 8 * 1024 * 1024 });
    const many = "From: a@example.test\r\n" + "X-Field: value\r\n".repeat(MAX_HEADER_FIELDS) + "\r\nbody\r\n";
    const huge = "From: a@example.test\r\nX-Long: " + "x".repeat(2 * 1024 * 1024) + "\r\n\r\nbody\r\n";
    const t0 = performance.now();
    t.send("EHLO c\r\n");
    for (const msg of [many, huge]) {
      t.send(`MAIL FROM:<a@example.test>\r\nRCPT TO:<alice@example.test>\r\nDATA\r\n`);
      const bytes = Buffer.from(msg + ".\r\n");
      for (let i = 0; i < bytes.length; i += 65536) t.send(bytes.subarray(i, i + 65536));
      await t.settle();
    }
    t.send("NOOP\r\n");
    await t.settle();
    expect(performance.now() - t0).toBeLessThan(5000);
    expect(codes(t.replies()).filter((c) => c.startsWith("250 2.0.0"))).toHaveLength(3); // two messages + NOOP
    expect(t.messages.map((m) => m.prepend)).toEqual(["", ""]);
    expect(outcomes).toEqual([
      { kind: "unsigned", reason: "header-too-large" },
      { kind: "unsigned", reason: "header-too-large" },
    ]);
  });
});
