/**
 * Real clients over real TLS (issue 3 acceptance): openssl s_client -starttls smtp, swaks --tls --auth,
 * nodemailer (implicit TLS and requireTLS), Python smtplib (starttls + login, SMTP_SSL). Each delivered message
 * must carry a Received field saying ESMTPSA with the TLS version (RFC 3848), and no authenticated identity.
 */
import { execFile } from "node:child_process";
import nodemailer from "nodemailer";
import { describe, expect, test } from "vitest";
import {
  SmtpClient,
  USERS,
  findDelivered,
  peerPath,
  peerTest,
  readDelivered,
  sendMail,
  simpleMessage,
  uniqueId,
  useServer,
  waitFor,
  type Delivered,
} from "../helpers/index.ts";

const srv = useServer();

function run(cmd: string, args: string[], input = "", timeoutMs = 30_000): Promise<{ code: number; out: string; err: string }> {
  return new Promise((resolve) => {
    const p = execFile(cmd, args, { timeout: timeoutMs, maxBuffer: 4 << 20 }, (err, stdout, stderr) =>
      resolve({ code: err ? (typeof err.code === "number" ? err.code : -1) : 0, out: String(stdout), err: String(stderr) }),
    );
    p.stdin!.end(input);
  });
}

async function deliveredTo(address: string, mid: string): Promise<Delivered> {
  const files = await waitFor(() => {
    const f = findDelivered(srv().dataDir, address, `<${mid}>`);
    return f.length > 0 ? f : null;
  }, 15_000);
  expect(files).toHaveLength(1);
  return readDelivered(files[0]!);
}

/** RFC 3848: ESMTPSA = ESMTP + TLS + AUTH; the TLS version is named, the login is not written into headers. */
function expectSubmitted(d: Delivered, sender: string): void {
  expect(d.trace.returnPath).toBe(`<${sender}>`);
  expect(d.trace.received).toMatch(/\bwith ESMTPSA\b/);
  expect(d.trace.received).toMatch(/TLSv1\.[23]/);
  // The login (alice) is not written into the trace field; Return-Path is the envelope sender, not the login.
  expect(d.trace.received).not.toMatch(/alice/i);
}

test("unauthenticated mail over STARTTLS on mx is received with ESMTPS and the TLS version and cipher", async () => {
  const c = await SmtpClient.connect(srv().ports.mx);
  await c.hello();
  expect((await c.startTls()).code).toBe(220);
  await c.cmd("EHLO client.test");
  const mid = uniqueId("esmtps");
  const res = await sendMail(c, "sender@remote.test", ["bob@example.test"], simpleMessage({ messageId: mid }));
  c.destroy();
  expect(res.final?.code).toBe(250);
  const d = await deliveredTo("bob@example.test", mid);
  expect(d.trace.received).toMatch(/\bwith ESMTPS\b/);
  expect(d.trace.received).toMatch(/TLSv1\.[23] TLS_[A-Z0-9_]+/);
});

describe("openssl s_client", () => {
  peerTest("openssl", "s_client -starttls smtp on submission: handshake, then EHLO lists AUTH PLAIN LOGIN", async () => {
    const r = await run(
      peerPath("openssl")!,
      ["s_client", "-starttls", "smtp", "-connect", `127.0.0.1:${srv().ports.submission}`, "-crlf", "-ign_eof"],
      "EHLO after.test\nQUIT\n",
    );
    expect(r.code, r.err).toBe(0);
    expect(r.out).toMatch(/Protocol\s*:\s*TLSv1\.[23]/);
    expect(r.out).toMatch(/^250[ -]AUTH PLAIN LOGIN\r?$/m);
    expect(r.out).toMatch(/^250-\S+ Hello after\.test/m);
    expect(r.out).toMatch(/^221 /m);
  });
});

describe("swaks", () => {
  for (const mech of ["PLAIN", "LOGIN"] as const) {
    peerTest("swaks", `swaks --tls --auth ${mech} on submission delivers to a local user`, async () => {
      const mid = uniqueId(`swaks-${mech}`);
      const r = await run(peerPath("swaks")!, [
        "--server", `127.0.0.1:${srv().ports.submission}`,
        "--tls",
        "--auth", mech,
        "--auth-user", "alice@example.test",
        "--auth-password", USERS.alice,
        "--from", "alice@example.test",
        "--to", "bob@example.test",
        "--helo", "swaks.client.test",
        "--header", `Message-Id: <${mid}>`,
        "--body", `hello via ${mech}`,
      ]);
      expect(r.code, r.out + r.err).toBe(0);
      expect(r.out).toMatch(/<~ {2}235 /); // AUTH accepted, over TLS ("~" marks TLS lines in swaks)
      expect(r.out).toMatch(/<~ {2}250 2\.0\.0/);
      const d = await deliveredTo("bob@example.test", mid);
      expectSubmitted(d, "alice@example.test");
      expect(d.body.toString("utf8")).toContain(`hello via ${mech}`);
    });
  }
});

describe("nodemailer", () => {
  const send = async (port: number, mode: { secure: boolean; requireTLS?: boolean }): Promise<void> => {
    const mid = uniqueId("nm-tls");
    const t = nodemailer.createTransport({
      host: "127.0.0.1",
      port,
      ...mode,
      name: "nodemailer.client.test",
      auth: { user: "alice@example.test", pass: USERS.alice },
      tls: { rejectUnauthorized: false },
    });
    try {
      const info = await t.sendMail({
        from: "alice@example.test",
        to: "bob@example.test",
        subject: "tls",
        messageId: `<${mid}>`,
        text: "hello over TLS",
      });
      expect(info.accepted).toEqual(["bob@example.test"]);
      expect(info.response).toMatch(/^250 /);
    } finally {
      t.close();
    }
    expectSubmitted(await deliveredTo("bob@example.test", mid), "alice@example.test");
  };

  test("secure: true on the implicit-TLS listener, with AUTH", () => send(srv().ports.submissions, { secure: true }));
  test("requireTLS: true on the STARTTLS submission listener, with AUTH", () =>
    send(srv().ports.submission, { secure: false, requireTLS: true }));

  test("a wrong password is refused (535) and nothing is delivered", async () => {
    const t = nodemailer.createTransport({
      host: "127.0.0.1",
      port: srv().ports.submissions,
      secure: true,
      auth: { user: "alice@example.test", pass: "not-her-password" },
      tls: { rejectUnauthorized: false },
    });
    const mid = uniqueId("nm-bad");
    try {
      await expect(
        t.sendMail({ from: "alice@example.test", to: "bob@example.test", messageId: `<${mid}>`, text: "x" }),
      ).rejects.toMatchObject({ responseCode: 535 });
    } finally {
      t.close();
    }
    expect(findDelivered(srv().dataDir, "bob@example.test", mid)).toEqual([]);
  });
});

describe("python smtplib", () => {
  const script = (implicit: boolean): string =>
    [
      "import smtplib, ssl, sys",
      "ctx = ssl.create_default_context()",
      "ctx.check_hostname = False",
      "ctx.verify_mode = ssl.CERT_NONE",
      "port, user, pw, mid = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]",
      implicit
        ? "s = smtplib.SMTP_SSL('127.0.0.1', port, local_hostname='py.client.test', timeout=30, context=ctx)"
        : "s = smtplib.SMTP('127.0.0.1', port, local_hostname='py.client.test', timeout=30)",
      "s.ehlo()",
      implicit ? "" : "assert not s.has_extn('auth'), 'AUTH offered before TLS'",
      implicit ? "" : "code, _ = s.starttls(context=ctx); assert code == 220, code; s.ehlo()",
      "assert s.has_extn('auth'), 'no AUTH under TLS'",
      "print('tls', s.sock.version())",
      "code, resp = s.login(user, pw)",
      "assert code == 235, (code, resp)",
      "msg = ('From: <%s>\\r\\nTo: <bob@example.test>\\r\\nSubject: py\\r\\nMessage-ID: <%s>\\r\\n\\r\\nhello from python\\r\\n' % (user, mid))",
      "refused = s.sendmail(user, ['bob@example.test'], msg)",
      "assert refused == {}, refused",
      "s.quit()",
      "print('ok')",
    ].join("\n");

  for (const implicit of [false, true]) {
    const title = implicit
      ? "SMTP_SSL on the implicit-TLS listener: login + sendmail"
      : "starttls() + login() + sendmail on submission";
    peerTest("python3", title, async () => {
      const mid = uniqueId(implicit ? "py-ssl" : "py-starttls");
      const port = implicit ? srv().ports.submissions : srv().ports.submission;
      const r = await run(peerPath("python3")!, ["-c", script(implicit), String(port), "alice@example.test", USERS.alice, mid]);
      expect(r.code, r.out + r.err).toBe(0);
      expect(r.out).toMatch(/^tls TLSv1\.[23]$/m);
      expect(r.out).toMatch(/^ok$/m);
      expectSubmitted(await deliveredTo("bob@example.test", mid), "alice@example.test");
    });
  }
});
