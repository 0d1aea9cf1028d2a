/**
 * SMTP AUTH (RFC 4954) with PLAIN (RFC 4616) and LOGIN, under TLS: every reply of the CONTRACT's AUTH rows, the
 * per-connection failure limit, auth = "required" and auth = "off".
 * The cross-connection brute-force counter is raised out of the way here (auth-bruteforce.test.ts covers it).
 */
import { describe, expect, test } from "vitest";
import { DEFAULT_LISTENERS, SmtpClient, USERS, useServer, type Reply } from "../helpers/index.ts";

const srv = useServer({
  listeners: [...DEFAULT_LISTENERS, { name: "noauth", tls: "starttls", auth: "off" }],
  config: "[limits]\nmax_auth_failures = 3\nauth_ip_delay_after = 1000\nauth_ip_block_after = 2000\n",
});

const b64 = (s: string): string => Buffer.from(s, "utf8").toString("base64");
const plain = (user: string, pass: string, authz = ""): string => b64(`${authz}\0${user}\0${pass}`);
const ALICE = "alice@example.test";
const codeOf = (r: Reply): string => `${r.code} ${r.enhanced}`;

/** A session on `listener` after STARTTLS (or implicit TLS) and a fresh EHLO: ready for AUTH. */
async function secured(listener = "submission"): Promise<SmtpClient> {
  const implicit = listener === "submissions";
  const c = await SmtpClient.connect(srv().ports[listener]!, { tls: implicit });
  await c.hello();
  if (!implicit) {
    expect((await c.startTls()).code).toBe(220);
    expect((await c.cmd("EHLO client.test")).code).toBe(250);
  }
  return c;
}

describe("AUTH PLAIN", () => {
  test("with an initial response: 235 2.7.0, then MAIL is accepted on submission", async () => {
    const c = await secured();
    const r = await c.cmd(`AUTH PLAIN ${plain(ALICE, USERS.alice)}`);
    expect(codeOf(r)).toBe("235 2.7.0");
    expect((await c.cmd(`MAIL FROM:<${ALICE}>`)).code).toBe(250);
    c.destroy();
  });

  test("without an initial response: 334 with an empty challenge, then the credentials → 235", async () => {
    const c = await secured("submissions");
    const ch = await c.cmd("AUTH PLAIN");
    expect(ch.code).toBe(334);
    expect(ch.lines[0]!.trim()).toBe("");
    expect(codeOf(await c.cmd(plain("bob@example.test", USERS.bob)))).toBe("235 2.7.0");
    c.destroy();
  });

  test("an authorization identity other than the user is refused (535 5.7.8)", async () => {
    const c = await secured();
    expect(codeOf(await c.cmd(`AUTH PLAIN ${plain(ALICE, USERS.alice, "bob@example.test")}`))).toBe("535 5.7.8");
    c.destroy();
  });

  test("'*' cancels the exchange with 501, and AUTH can be tried again", async () => {
    const c = await secured();
    expect((await c.cmd("AUTH PLAIN")).code).toBe(334);
    expect((await c.cmd("*")).code).toBe(501);
    expect(codeOf(await c.cmd(`AUTH PLAIN ${plain(ALICE, USERS.alice)}`))).toBe("235 2.7.0");
    c.destroy();
  });

  test("undecodable base64 → 501 5.5.2, as initial response and as continuation", async () => {
    const c = await secured();
    expect(codeOf(await c.cmd("AUTH PLAIN not*base64!"))).toBe("501 5.5.2");
    expect((await c.cmd("AUTH PLAIN")).code).toBe(334);
    expect(codeOf(await c.cmd("%%%%"))).toBe("501 5.5.2");
    // The session is intact and not authenticated.
    expect(codeOf(await c.cmd(`MAIL FROM:<${ALICE}>`))).toBe("530 5.7.0");
    c.destroy();
  });

  test("a wrong password and an unknown user both get 535 5.7.8", async () => {
    const c = await secured();
    expect(codeOf(await c.cmd(`AUTH PLAIN ${plain(ALICE, "wrong")}`))).toBe("535 5.7.8");
    expect(codeOf(await c.cmd(`AUTH PLAIN ${plain("nobody@example.test", "wrong")}`))).toBe("535 5.7.8");
    expect(codeOf(await c.cmd(`MAIL FROM:<${ALICE}>`))).toBe("530 5.7.0");
    c.destroy();
  });
});

describe("AUTH LOGIN", () => {
  test("Username:/Password: challenges, then 235", async () => {
    const c = await secured();
    const u = await c.cmd("AUTH LOGIN");
    expect(u.code).toBe(334);
    expect(Buffer.from(u.lines[0]!.trim(), "base64").toString()).toBe("Username:");
    const p = await c.cmd(b64(ALICE));
    expect(p.code).toBe(334);
    expect(Buffer.from(p.lines[0]!.trim(), "base64").toString()).toBe("Password:");
    expect(codeOf(await c.cmd(b64(USERS.alice)))).toBe("235 2.7.0");
    c.destroy();
  });

  test("the user name as initial response skips to the Password: challenge", async () => {
    const c = await secured("submissions");
    const p = await c.cmd(`AUTH LOGIN ${b64(ALICE)}`);
    expect(p.code).toBe(334);
    expect(Buffer.from(p.lines[0]!.trim(), "base64").toString()).toBe("Password:");
    expect(codeOf(await c.cmd(b64(USERS.alice)))).toBe("235 2.7.0");
    c.destroy();
  });

  test("'*' at the Password: challenge cancels with 501", async () => {
    const c = await secured();
    expect((await c.cmd("AUTH LOGIN")).code).toBe(334);
    expect((await c.cmd(b64(ALICE))).code).toBe(334);
    expect((await c.cmd("*")).code).toBe(501);
    expect(codeOf(await c.cmd(`MAIL FROM:<${ALICE}>`))).toBe("530 5.7.0");
    c.destroy();
  });

  test("a wrong password → 535 5.7.8", async () => {
    const c = await secured();
    expect((await c.cmd("AUTH LOGIN")).code).toBe(334);
    expect((await c.cmd(b64(ALICE))).code).toBe(334);
    expect(codeOf(await c.cmd(b64("wrong")))).toBe("535 5.7.8");
    c.destroy();
  });
});

describe("AUTH sequencing and limits", () => {
  test("AUTH pipelined with MAIL, RCPT and DATA (RFC 2920): the replies come in order, MAIL after the 235", async () => {
    const c = await secured();
    await c.send(`AUTH PLAIN ${plain(ALICE, USERS.alice)}\r\nMAIL FROM:<${ALICE}>\r\nRCPT TO:<bob@example.test>\r\nDATA\r\n`);
    const replies: number[] = [];
    for (let i = 0; i < 4; i++) replies.push((await c.readReply()).code);
    expect(replies).toEqual([235, 250, 250, 354]);
    c.destroy();
  });

  test("an AUTH line longer than 1000 octets is still an AUTH line (CONTRACT: up to 12288): 535, not 500", async () => {
    const c = await secured();
    const r = await c.cmd(`AUTH PLAIN ${plain(ALICE, "x".repeat(6000))}`);
    expect(codeOf(r)).toBe("535 5.7.8");
    c.destroy();
  });


  test("an unknown mechanism → 504 5.5.4", async () => {
    const c = await secured();
    expect(codeOf(await c.cmd("AUTH CRAM-MD5"))).toBe("504 5.5.4");
    expect(codeOf(await c.cmd(`AUTH XOAUTH2 ${b64("x")}`))).toBe("504 5.5.4");
    c.destroy();
  });

  test("AUTH when already authenticated → 503 5.5.1", async () => {
    const c = await secured();
    expect((await c.cmd(`AUTH PLAIN ${plain(ALICE, USERS.alice)}`)).code).toBe(235);
    expect(codeOf(await c.cmd(`AUTH PLAIN ${plain("bob@example.test", USERS.bob)}`))).toBe("503 5.5.1");
    // Still alice: bob's address is not hers.
    expect(codeOf(await c.cmd("MAIL FROM:<bob@example.test>"))).toBe("553 5.7.1");
    c.destroy();
  });

  test("the max_auth_failures-th failure (3) → 421 4.7.0 instead of 535, and the connection is closed", async () => {
    const c = await secured();
    expect(codeOf(await c.cmd(`AUTH PLAIN ${plain(ALICE, "wrong1")}`))).toBe("535 5.7.8");
    expect((await c.cmd("AUTH LOGIN")).code).toBe(334);
    expect((await c.cmd(b64(ALICE))).code).toBe(334);
    expect(codeOf(await c.cmd(b64("wrong2")))).toBe("535 5.7.8");
    expect(codeOf(await c.cmd(`AUTH PLAIN ${plain(ALICE, "wrong3")}`))).toBe("421 4.7.0");
    await c.closed(5000);
    expect(c.closedYet).toBe(true);
  });

  test('auth = "required": MAIL before AUTH → 530 5.7.0 (submission and submissions)', async () => {
    for (const l of ["submission", "submissions"]) {
      const c = await secured(l);
      expect(codeOf(await c.cmd(`MAIL FROM:<${ALICE}>`))).toBe("530 5.7.0");
      expect((await c.cmd(`AUTH PLAIN ${plain(ALICE, USERS.alice)}`)).code).toBe(235);
      expect((await c.cmd(`MAIL FROM:<${ALICE}>`)).code).toBe(250);
      c.destroy();
    }
  });

  test('auth = "optional" (mx): MAIL without AUTH is fine for local delivery', async () => {
    const c = await secured("mx");
    expect((await c.cmd("MAIL FROM:<sender@remote.test>")).code).toBe(250);
    expect((await c.cmd(`RCPT TO:<${ALICE}>`)).code).toBe(250);
    c.destroy();
  });

  test('auth = "off": no AUTH in EHLO even after STARTTLS, and AUTH is refused', async () => {
    const c = await SmtpClient.connect(srv().ports.noauth!);
    const before = await c.hello();
    expect(before.lines.some((l) => /^AUTH\b/i.test(l))).toBe(false);
    expect((await c.startTls()).code).toBe(220);
    const after = await c.cmd("EHLO client.test");
    expect(after.code).toBe(250);
    expect(after.lines.some((l) => /^AUTH\b/i.test(l)), after.raw).toBe(false);
    const r = await c.cmd(`AUTH PLAIN ${plain(ALICE, USERS.alice)}`);
    expect(r.code).toBeGreaterThanOrEqual(500);
    // Not authenticated: a remote recipient is still a relay attempt.
    expect((await c.cmd(`MAIL FROM:<${ALICE}>`)).code).toBe(250);
    expect(codeOf(await c.cmd("RCPT TO:<someone@remote.test>"))).toBe("554 5.7.1");
    c.destroy();
  });
});
