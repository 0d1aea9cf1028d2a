/**
 * CONTRACT "Guarantees": a client address with repeated AUTH failures across connections has its AUTH replies
 * delayed (at least 1 s), then refused with 454 4.7.0 for a cooling-off period; other addresses are not affected.
 * Clients bind to 127.0.0.2 (the attacker) and 127.0.0.3 (a legitimate user); both reach the 127.0.0.1 listener.
 */
import { expect, test } from "vitest";
import { SmtpClient, USERS, useServer, type Reply } from "../helpers/index.ts";

const srv = useServer({
  config:
    "[limits]\nmax_auth_failures = 3\nauth_ip_delay_after = 2\nauth_ip_block_after = 4\nauth_ip_block = \"1m\"\n",
});

const plain = (user: string, pass: string): string => Buffer.from(`\0${user}\0${pass}`, "utf8").toString("base64");

/** One connection from `from` over implicit TLS: one AUTH PLAIN, timed from command to reply. */
async function attempt(from: string, password: string): Promise<{ reply: Reply; ms: number }> {
  const c = await SmtpClient.connect(srv().ports.submissions, { tls: true, localAddress: from });
  try {
    await c.hello();
    const t0 = performance.now();
    const reply = await c.cmd(`AUTH PLAIN ${plain("alice@example.test", password)}`, 30_000);
    return { reply, ms: performance.now() - t0 };
  } finally {
    c.destroy();
  }
}

test("failures from 127.0.0.2: delayed ≥ 1 s after 2, 454 4.7.0 after 4 even with the right password; 127.0.0.3 unaffected", async () => {
  const early: number[] = [];
  for (let i = 0; i < 2; i++) {
    const a = await attempt("127.0.0.2", `wrong-${i}`);
    expect(`${a.reply.code} ${a.reply.enhanced}`).toBe("535 5.7.8");
    early.push(a.ms);
  }
  // auth_ip_delay_after = 2 failures recorded: the next replies to this address take at least 1 s.
  const delayed: number[] = [];
  for (let i = 2; i < 4; i++) {
    // While the attacker's reply is held back, a login from 127.0.0.3 runs and is not held up by it.
    const [a, concurrent] = await Promise.all([attempt("127.0.0.2", `wrong-${i}`), attempt("127.0.0.3", USERS.alice)]);
    expect(`${a.reply.code} ${a.reply.enhanced}`).toBe("535 5.7.8");
    expect(a.ms, `attempt ${i + 1} reply time`).toBeGreaterThanOrEqual(1000);
    expect(`${concurrent.reply.code} ${concurrent.reply.enhanced}`).toBe("235 2.7.0");
    expect(concurrent.ms).toBeLessThan(a.ms);
    delayed.push(a.ms);
  }
  // auth_ip_block_after = 4: refused for auth_ip_block, whatever the credentials.
  const blocked = await attempt("127.0.0.2", USERS.alice);
  expect(`${blocked.reply.code} ${blocked.reply.enhanced}`).toBe("454 4.7.0");

  // Meanwhile another address logs in, and is neither refused nor slowed like the attacker.
  const other = await attempt("127.0.0.3", USERS.alice);
  expect(`${other.reply.code} ${other.reply.enhanced}`).toBe("235 2.7.0");
  expect(other.ms).toBeLessThan(Math.min(...delayed));
  // Failures before the threshold were not slowed either (same hash work, no added delay).
  expect(Math.max(...early)).toBeLessThan(Math.min(...delayed));

  // Connections from the blocked address are still accepted (CONTRACT: never refused for it); only AUTH is.
  const c = await SmtpClient.connect(srv().ports.mx, { localAddress: "127.0.0.2" });
  expect((await c.hello()).code).toBe(250);
  expect((await c.startTls()).code).toBe(220);
  expect((await c.cmd("EHLO client.test")).code).toBe(250);
  expect((await c.cmd(`AUTH PLAIN ${plain("alice@example.test", USERS.alice)}`)).code).toBe(454);
  expect((await c.cmd("NOOP")).code).toBe(250);
  c.destroy();
}, 60_000);
