/**
 * SRS at RCPT (CONTRACT "Forwarding"): which recipients of a transaction get an SRS0 sender (alias targets outside
 * local.domains, for a sender outside them), and what a bounce to an SRS0 address of the SRS domain gets: accepted
 * and routed to the original sender when ours and at most 21 days old, `550 5.1.1` when forged or expired.
 */
import { describe, expect, test } from "vitest";
import { srsForward, srsReverse } from "../../src/policy/srs.ts";
import { sessionTier, TIER_ALIASES, TIER_EPOCH, type TierOptions, type TierReply } from "./harness.ts";

const DAY = 86_400_000;
const SECRET = "tier-srs-secret";
const ALIASES = { ...TIER_ALIASES, "fwd@example.test": ["user@remote.test", "alice@example.test"] };
const lines = (rs: TierReply[]): string[] => rs.map((r) => r.raw.trimEnd());

function tier(srs: { secret: string; domain: string } | undefined, over: TierOptions["policy"] = {}) {
  const t = sessionTier({ policy: { domains: ["example.test", "other.test"], aliases: ALIASES, ...(srs ? { srs } : {}), ...over } });
  t.replies();
  t.send("EHLO client.test\r\n");
  t.replies();
  return t;
}

async function transaction(t: ReturnType<typeof tier>, from: string, to: string[]): Promise<string[]> {
  t.send(`MAIL FROM:<${from}>\r\n${to.map((r) => `RCPT TO:<${r}>\r\n`).join("")}DATA\r\n`);
  const got = lines(t.replies());
  if (got.at(-1)!.startsWith("354")) {
    t.send("Subject: srs\r\n\r\nbody\r\n.\r\n");
    await t.settle();
    got.push(...lines(t.replies()));
  }
  return got;
}

describe("forwarding rewrites the sender of remote alias targets", () => {
  test("an alias to a remote and a local target: the remote copy gets SRS0 in the SRS domain, the local one keeps the sender", async () => {
    const t = tier({ secret: SECRET, domain: "" });
    expect(await transaction(t, "sender@elsewhere.test", ["fwd@example.test"])).toEqual([
      "250 2.1.0 Sender OK",
      "250 2.1.5 Recipient OK",
      "354 End data with <CR><LF>.<CR><LF>",
      expect.stringMatching(/^250 2\.0\.0 Ok: queued as /),
    ]);
    const env = t.messages[0]!.envelope;
    expect(env.sender).toBe("sender@elsewhere.test");
    const remote = env.recipients.find((r) => r.address === "user@remote.test")!;
    const local = env.recipients.find((r) => r.address === "alice@example.test")!;
    // domain "" = the first local domain.
    expect(remote.sender).toMatch(/^SRS0=[A-Za-z0-9_-]{4}=[A-Z2-7]{2}=elsewhere\.test=sender@example\.test$/);
    expect(srsReverse(SECRET, remote.sender!, TIER_EPOCH)).toEqual({ ok: true, address: "sender@elsewhere.test" });
    expect(local.sender).toBeUndefined();
  });

  test("srs.domain names the SRS domain", async () => {
    const t = tier({ secret: SECRET, domain: "other.test" });
    await transaction(t, "sender@elsewhere.test", ["fwd@example.test"]);
    expect(t.messages[0]!.envelope.recipients.find((r) => r.route.kind === "remote")!.sender).toMatch(/@other\.test$/);
  });

  test("not rewritten: a sender in local.domains, <>, [srs] off, and mail relayed to a remote RCPT directly", async () => {
    const on = { secret: SECRET, domain: "" };
    const cases: Array<[ReturnType<typeof tier>, string, string]> = [
      [tier(on), "bob@Other.test", "fwd@example.test"],
      [tier(on), "", "fwd@example.test"],
      [tier(undefined), "sender@elsewhere.test", "fwd@example.test"],
      [tier({ secret: "", domain: "" }), "sender@elsewhere.test", "fwd@example.test"],
      [tier(on, { relayNetworks: ["127.0.0.0/8"] }), "sender@elsewhere.test", "user@remote.test"],
    ];
    for (const [t, from, to] of cases) {
      expect((await transaction(t, from, [to])).at(-1), `${from} → ${to}`).toMatch(/^250 2\.0\.0/);
      for (const r of t.messages[0]!.envelope.recipients) expect(r.sender, `${from} → ${r.address}`).toBeUndefined();
    }
  });
});

describe("RCPT TO an SRS0 address of the SRS domain", () => {
  const srs = { secret: SECRET, domain: "" };
  const made = (original: string, at = TIER_EPOCH): string => srsForward(SECRET, "example.test", original, at)!;

  test("ours and fresh, in any case: accepted from anyone and routed to the original sender (relayed)", async () => {
    const t = tier(srs);
    const address = made("sender@elsewhere.test").toLowerCase();
    expect(await transaction(t, "", [address])).toEqual([
      "250 2.1.0 Sender OK",
      "250 2.1.5 Recipient OK",
      "354 End data with <CR><LF>.<CR><LF>",
      expect.stringMatching(/^250 2\.0\.0 /),
    ]);
    const [r] = t.messages[0]!.envelope.recipients;
    expect(r).toMatchObject({ rcpt: address, address: "sender@elsewhere.test", route: { kind: "remote", domain: "elsewhere.test" } });
    // A bounce is sent with <>: nothing to rewrite.
    expect(r!.sender).toBeUndefined();
  });

  test("an original in a local domain is delivered locally; an unknown one there is 550 5.1.1", async () => {
    const t = tier(srs);
    expect((await transaction(t, "", [made("alice@example.test")])).at(-1)).toMatch(/^250 2\.0\.0/);
    expect(t.messages[0]!.envelope.recipients[0]).toMatchObject({ address: "alice@example.test", route: { kind: "local" } });
    t.send(`MAIL FROM:<>\r\nRCPT TO:<${made("nobody@example.test")}>\r\n`);
    expect(lines(t.replies())).toEqual(["250 2.1.0 Sender OK", "550 5.1.1 Mailbox unavailable"]);
  });

  test("forged (bad hash, changed address, malformed) and expired (21 days + 1): 550 5.1.1, the transaction goes on", () => {
    const t = tier(srs);
    const good = made("sender@elsewhere.test");
    t.send("MAIL FROM:<>\r\n");
    t.send(`RCPT TO:<SRS0=XXXX${good.slice(9)}>\r\n`);
    t.send(`RCPT TO:<${good.replace("=sender@", "=victim@")}>\r\n`);
    t.send("RCPT TO:<SRS0=abcd@example.test>\r\n");
    t.send(`RCPT TO:<${made("sender@elsewhere.test", TIER_EPOCH - 22 * DAY)}>\r\n`);
    t.send(`RCPT TO:<${made("sender@elsewhere.test", TIER_EPOCH - 21 * DAY)}>\r\n`);
    expect(lines(t.replies())).toEqual([
      "250 2.1.0 Sender OK",
      "550 5.1.1 Invalid SRS address",
      "550 5.1.1 Invalid SRS address",
      "550 5.1.1 Invalid SRS address",
      "550 5.1.1 Expired SRS address",
      "250 2.1.5 Recipient OK",
    ]);
  });

  test("at another local domain, or with [srs] off, an SRS0 address is an ordinary (unknown) user", () => {
    for (const [t, domain] of [[tier(srs), "other.test"], [tier(undefined), "example.test"]] as const) {
      const address = made("sender@elsewhere.test").replace("@example.test", `@${domain}`);
      t.send(`MAIL FROM:<>\r\nRCPT TO:<${address}>\r\n`);
      expect(lines(t.replies())).toEqual(["250 2.1.0 Sender OK", "550 5.1.1 Mailbox unavailable"]);
    }
  });

  test("a reply with a sender (not a bounce) to an SRS0 address is forwarded: the remote copy gets SRS0 too", async () => {
    const t = tier(srs);
    await transaction(t, "auto@responder.test", [made("sender@elsewhere.test")]);
    const [r] = t.messages[0]!.envelope.recipients;
    expect(r!.address).toBe("sender@elsewhere.test");
    expect(srsReverse(SECRET, r!.sender!, TIER_EPOCH)).toEqual({ ok: true, address: "auto@responder.test" });
  });
});
