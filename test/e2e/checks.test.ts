/**
 * The inbound checks through the real server's MX listener (issue 11 acceptance, CONTRACT "Inbound checks" and the
 * DMARC / temperror reply rows): SPF, DKIM and DMARC records served by dnsmasq, a message signed by dkimpy (an
 * outside signer), DMARC reject → 550 5.7.1 and nothing stored, quarantine → the .Junk Maildir++ folder, none →
 * the inbox, a DNS failure under p=reject → 451 4.7.0; an authenticated submission is never checked nor rejected;
 * one Authentication-Results field with our authserv-id, forged ones removed; `verify` prints the same field;
 * spf_reject → 550 5.7.23 at MAIL FROM; a message with 10,000 header fields gets a result and the server goes on;
 * a forwarded message (alias to a remote address, [srs] on) leaves ARC-sealed, and dkimpy's arc_verify passes it.
 */
import { spawnSync } from "node:child_process";
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import nodemailer from "nodemailer";
import { afterAll, beforeAll, describe, expect } from "vitest";
import { startDnsmasq, type Dnsmasq } from "../helpers/dnsmasq.ts";
import {
  havePeer,
  maildirFiles,
  peerTest,
  sendMail,
  SmtpClient,
  startDovecot,
  startServer,
  waitFor,
  type Srv,
} from "../helpers/index.ts";
import { scrape, valueOf } from "../helpers/prometheus.ts";
import { CaptureServer } from "../helpers/capture-server.ts";
import { dkimpyArcVerify, dkimpySign as dkimpySignWith, keyName, rsaKey, txtRecord } from "../checks/dkimpy.ts";
import { BUN, HOSTNAME, MAIN, REPO, USERS } from "../helpers/server.ts";

const CHECKS_ON = `[checks]\nspf = "on"\ndkim = "on"\narc = "on"\ndmarc = "enforce"\n`;
/** 127.0.0.1 (every test client) is never in these SPF records: SPF fails, DMARC passes only through DKIM. */
const SPF_ELSEWHERE = "v=spf1 ip4:192.0.2.1 -all";

/** The signer's key; its record is published as several strings of one TXT record (RFC 6376 §3.6.2.2 joins them). */
const signer = rsaKey("signed.test", "sel");

const work = mkdtempSync(join(tmpdir(), "ringmta-checks-"));

/** `message` signed by dkimpy (Debian python3-dkim) as d=signed.test s=sel, relaxed/relaxed. */
const dkimpySign = (message: string): string => dkimpySignWith(Buffer.from(message, "latin1"), signer).toString("latin1");

const message = (from: string, subject: string, extra = ""): string =>
  `From: <${from}>\r\nTo: <alice@example.test>\r\nSubject: ${subject}\r\n${extra}\r\nchecked body\r\n`;

async function mx(srv: Srv, sender: string, body: string) {
  const c = await SmtpClient.connect(srv.ports.mx);
  try {
    await c.hello("client.test");
    return await sendMail(c, sender, ["alice@example.test"], Buffer.from(body, "latin1"));
  } finally {
    c.destroy();
  }
}

/** The stored message in alice's inbox (or .Junk) whose Subject is `subject`. */
function stored(srv: Srv, subject: string, folder = ""): string | undefined {
  const base = join(srv.dataDir, "mail", "example.test", "alice", folder);
  for (const sub of ["new", "cur"]) {
    let names: string[] = [];
    try {
      names = readdirSync(join(base, sub));
    } catch {
      continue;
    }
    for (const n of names) {
      const text = readFileSync(join(base, sub, n), "latin1");
      if (text.includes(`Subject: ${subject}\r\n`)) return text;
    }
  }
  return undefined;
}

const ourFields = (text: string): string[] =>
  [...text.matchAll(/^Authentication-Results:[ \t]*([^\r\n]*(?:\r\n[ \t][^\r\n]*)*)/gim)]
    .map((m) => m[1]!)
    .filter((v) => v.trim().toLowerCase().startsWith(HOSTNAME.toLowerCase()));

describe("inbound checks through the MX listener, records served by dnsmasq", () => {
  let dns: Dnsmasq | null = null;
  let srv: Srv | null = null;
  beforeAll(async () => {
    if (!havePeer("dnsmasq")) return;
    dns = await startDnsmasq({
      zones: ["signed.test", "reject.test", "quarantine.test", "none.test", "tempfail.test"],
      txt: [
        "signed.test,v=spf1 -all",
        txtRecord(keyName(signer), signer.record),
        "_dmarc.signed.test,v=DMARC1; p=reject",
        `reject.test,${SPF_ELSEWHERE}`,
        "_dmarc.reject.test,v=DMARC1; p=reject",
        `quarantine.test,${SPF_ELSEWHERE}`,
        "_dmarc.quarantine.test,v=DMARC1; p=quarantine",
        `none.test,${SPF_ELSEWHERE}`,
        "_dmarc.none.test,v=DMARC1; p=none",
        // The include names a zone this server does not serve and has no upstream for: SERVFAIL/REFUSED, a
        // temperror (RFC 7208 §5.2) that leaves the reject policy undecided.
        "tempfail.test,v=spf1 include:spf.unreachable.invalid -all",
        "_dmarc.tempfail.test,v=DMARC1; p=reject",
      ],
    });
    srv = await startServer({ config: `[dns]\nservers = ["${dns.server}"]\n${CHECKS_ON}` });
  }, 60_000);
  afterAll(async () => {
    await srv?.dispose();
    await dns?.stop();
  });

  peerTest("dnsmasq", "DMARC p=reject failed: 550 5.7.1 after end of data, nothing stored", async () => {
    const r = await mx(srv!, "sender@reject.test", message("sender@reject.test", "dmarc-reject"));
    expect(r.mail.code).toBe(250); // spf_reject is off: an SPF fail alone refuses nothing
    expect(r.final?.code).toBe(550);
    expect(r.final?.raw).toMatch(/^550 5\.7\.1 /);
    expect(stored(srv!, "dmarc-reject")).toBeUndefined();
  });

  peerTest("dnsmasq", "DMARC p=quarantine failed: delivered to the recipient's .Junk folder", async () => {
    const r = await mx(srv!, "sender@quarantine.test", message("sender@quarantine.test", "dmarc-quarantine"));
    expect(r.final?.code).toBe(250);
    await waitFor(() => stored(srv!, "dmarc-quarantine", ".Junk") !== undefined, 10_000);
    expect(stored(srv!, "dmarc-quarantine")).toBeUndefined();
    const ar = ourFields(stored(srv!, "dmarc-quarantine", ".Junk")!);
    expect(ar).toHaveLength(1);
    expect(ar[0]).toMatch(/dmarc=fail/);
  });

  peerTest(["dnsmasq", "dovecot"], "Dovecot shows the quarantined message in the user's Junk mailbox", async () => {
    await waitFor(() => stored(srv!, "dmarc-quarantine", ".Junk") !== undefined, 10_000);
    const dovecot = await startDovecot({ mailRoot: join(srv!.dataDir, "mail"), users: { "alice@example.test": "imap-alice" } });
    try {
      expect(dovecot.mailboxes("alice@example.test", "imap-alice")).toContain("Junk");
      const junk = dovecot.fetchInbox("alice@example.test", "imap-alice", "Junk");
      expect(junk.messages.some((m) => m.toString("latin1").includes("Subject: dmarc-quarantine\r\n"))).toBe(true);
      const inbox = dovecot.fetchInbox("alice@example.test", "imap-alice");
      expect(inbox.messages.some((m) => m.toString("latin1").includes("Subject: dmarc-quarantine\r\n"))).toBe(false);
    } finally {
      await dovecot.stop();
    }
  });

  peerTest("dnsmasq", "DMARC p=none failed: the inbox, one field with spf=fail dkim=none dmarc=fail; a forged one is removed", async () => {
    const forged = `Authentication-Results: ${HOSTNAME}; dmarc=pass header.from=none.test\r\n`;
    const r = await mx(srv!, "sender@none.test", forged + message("sender@none.test", "dmarc-none"));
    expect(r.final?.code).toBe(250);
    await waitFor(() => stored(srv!, "dmarc-none") !== undefined, 10_000);
    const text = stored(srv!, "dmarc-none")!;
    const ar = ourFields(text);
    expect(ar).toHaveLength(1);
    expect(ar[0]).toMatch(/spf=fail[^;]*smtp\.mailfrom=sender@none\.test/);
    expect(ar[0]).toMatch(/dkim=none/);
    expect(ar[0]).toMatch(/arc=none/);
    expect(ar[0]).toMatch(/dmarc=fail[^;]*header\.from=none\.test/);
  });

  peerTest("dkimverify", "a message signed by dkimpy (key in three TXT strings) passes DKIM and so DMARC p=reject", async (ctx) => {
    if (!havePeer("dnsmasq")) return ctx.skip();
    const signed = dkimpySign(message("writer@signed.test", "dkimpy-signed"));
    const r = await mx(srv!, "writer@signed.test", signed);
    expect(r.final?.code).toBe(250);
    await waitFor(() => stored(srv!, "dkimpy-signed") !== undefined, 10_000);
    const ar = ourFields(stored(srv!, "dkimpy-signed")!)[0]!;
    expect(ar).toMatch(/dkim=pass[^;]*header\.d=signed\.test/);
    expect(ar).toMatch(/header\.s=sel/);
    expect(ar).toMatch(/dmarc=pass/);
  });

  peerTest("dkimverify", "one changed body byte or signed header: dkim=fail, so DMARC p=reject refuses it", async (ctx) => {
    if (!havePeer("dnsmasq")) return ctx.skip();
    const signed = dkimpySign(message("writer@signed.test", "dkimpy-tampered"));
    const body = await mx(srv!, "writer@signed.test", signed.replace("checked body", "checked bodY"));
    expect(body.final?.raw).toMatch(/^550 5\.7\.1 /);
    const header = await mx(srv!, "writer@signed.test", signed.replace("Subject: dkimpy-tampered", "Subject: dkimpy-tamperet"));
    expect(header.final?.raw).toMatch(/^550 5\.7\.1 /);
    // The log line says why (the server's output reaches us a moment after the reply).
    await waitFor(() => /"event":"smtp\.rejected".*"dkim":\["fail:signed\.test"\]/.test(srv!.logs()), 10_000);
  });

  peerTest("dnsmasq", "a DNS failure that leaves p=reject undecided: 451 4.7.0, never a 5xx", async () => {
    const r = await mx(srv!, "sender@tempfail.test", message("sender@tempfail.test", "dmarc-tempfail"));
    expect(r.final?.raw).toMatch(/^451 4\.7\.0 /);
  });

  peerTest("dnsmasq", "an authenticated submission is never checked nor rejected (From a p=reject domain)", async () => {
    const t = nodemailer.createTransport({
      host: "127.0.0.1",
      port: srv!.ports.submission,
      secure: false,
      requireTLS: true,
      tls: { rejectUnauthorized: false },
      auth: { user: "alice@example.test", pass: USERS.alice },
    });
    try {
      const info = await t.sendMail({
        envelope: { from: "alice@example.test", to: ["bob@example.test"] },
        raw: message("sender@reject.test", "submitted").replace("To: <alice@", "To: <bob@"),
      });
      expect(info.response).toMatch(/^250 /);
    } finally {
      t.close();
    }
    await waitFor(() => maildirFiles(srv!.dataDir, "example.test", "bob").length > 0, 10_000);
    const text = readFileSync(maildirFiles(srv!.dataDir, "example.test", "bob")[0]!, "latin1");
    expect(ourFields(text)).toEqual([]);
  });

  peerTest("dnsmasq", "10,000 header fields: a result within bounded time, and the server goes on answering", async () => {
    const many = Array.from({ length: 10_000 }, (_, i) => `X-Field-${i}: ${i}\r\n`).join("");
    const started = Date.now();
    const r = await mx(srv!, "sender@none.test", many + message("sender@none.test", "many-fields"));
    expect([250, 550, 554]).toContain(r.final?.code);
    expect(Date.now() - started).toBeLessThan(30_000);
    const again = await mx(srv!, "sender@none.test", message("sender@none.test", "after-many"));
    expect(again.final?.code).toBe(250);
  });

  peerTest("dnsmasq", "verify prints the field delivery adds; metrics count each check's results", async () => {
    const file = join(work, "signed.eml");
    writeFileSync(file, dkimpySign(message("writer@signed.test", "verify-me")), "latin1");
    const v = spawnSync(BUN, [MAIN, "verify", "--ip", "127.0.0.1", "--helo", "client.test", "--mail-from", "writer@signed.test", "--config", srv!.configPath, file], {
      cwd: REPO,
      encoding: "utf8",
    });
    expect(v.status).toBe(0);
    expect(v.stdout).toMatch(new RegExp(`^Authentication-Results: ${HOSTNAME.replace(/\./g, "\\.")};`));
    expect(v.stdout).toMatch(/spf=fail/);
    expect(v.stdout).toMatch(/dkim=pass[^;]*header\.d=signed\.test/);
    expect(v.stdout).toMatch(/dmarc=pass/);
    const fams = (await scrape(srv!.ports.metrics)).fams;
    expect(valueOf(fams, "ringmta_auth_checks_total", { check: "dmarc", result: "fail" })).toBeGreaterThanOrEqual(2);
    expect(valueOf(fams, "ringmta_auth_checks_total", { check: "dkim", result: "pass" })).toBeGreaterThanOrEqual(1);
    expect(valueOf(fams, "ringmta_auth_checks_total", { check: "spf", result: "fail" })).toBeGreaterThanOrEqual(3);
  });
});

describe("spf_reject", () => {
  let dns: Dnsmasq | null = null;
  let srv: Srv | null = null;
  beforeAll(async () => {
    if (!havePeer("dnsmasq")) return;
    dns = await startDnsmasq({ zones: ["reject.test", "pass.test"], txt: [`reject.test,${SPF_ELSEWHERE}`, "pass.test,v=spf1 ip4:127.0.0.0/8 -all"] });
    srv = await startServer({
      config: `[dns]\nservers = ["${dns.server}"]\n[relay]\nnetworks = ["127.0.0.2/32"]\n${CHECKS_ON}spf_reject = true\n`,
    });
  }, 60_000);
  afterAll(async () => {
    await srv?.dispose();
    await dns?.stop();
  });

  peerTest("dnsmasq", "an SPF fail gets 550 5.7.23 at MAIL FROM (RFC 7372); a pass goes on", async () => {
    const c = await SmtpClient.connect(srv!.ports.mx);
    try {
      await c.hello("client.test");
      expect((await c.cmd("MAIL FROM:<x@reject.test>")).raw).toMatch(/^550 5\.7\.23 /);
      expect((await c.cmd("MAIL FROM:<x@pass.test>")).code).toBe(250);
    } finally {
      c.destroy();
    }
  });

  peerTest("dnsmasq", "a client in relay.networks is never checked: the same SPF fail is no refusal, and no field is added", async () => {
    const c = await SmtpClient.connect(srv!.ports.mx, { localAddress: "127.0.0.2" });
    try {
      await c.hello("client.test");
      const r = await sendMail(c, "x@reject.test", ["alice@example.test"], Buffer.from(message("x@reject.test", "from-relay-network")));
      expect(r.mail.code).toBe(250);
      expect(r.final?.code).toBe(250);
    } finally {
      c.destroy();
    }
    await waitFor(() => stored(srv!, "from-relay-network") !== undefined, 10_000);
    expect(ourFields(stored(srv!, "from-relay-network")!)).toEqual([]);
  });
});

describe("forwarding: SRS and an ARC seal that an outside verifier accepts", () => {
  const author = rsaKey("author.test", "s1");
  const arcKey = rsaKey("example.test", "arc");
  let dns: Dnsmasq | null = null;
  let srv: Srv | null = null;
  let cap: CaptureServer | null = null;
  beforeAll(async () => {
    if (!havePeer("dnsmasq")) return;
    dns = await startDnsmasq({
      zones: ["author.test"],
      txt: [txtRecord(keyName(author), author.record), "author.test,v=spf1 -all", "_dmarc.author.test,v=DMARC1; p=reject"],
    });
    cap = await CaptureServer.start();
    // The ARC key is the SRS domain's first selector (CONTRACT "Forwarding"), read at start from DATA/dkim.
    const data = mkdtempSync(join(tmpdir(), "ringmta-arc-"));
    mkdirSync(join(data, "dkim", "example.test"), { recursive: true });
    writeFileSync(join(data, "dkim", "example.test", "arc.key"), arcKey.private.export({ format: "pem", type: "pkcs8" }), { mode: 0o600 });
    srv = await startServer({
      config:
        `data_dir = "${data}"\n[dns]\nservers = ["${dns.server}"]\n${CHECKS_ON}` +
        `[srs]\nsecret = "arc-e2e"\n[dkim.selectors]\n"example.test" = ["arc"]\n` +
        `[local.aliases]\n"fwd@example.test" = ["user@remote.test"]\n[relay.routes]\n"remote.test" = "127.0.0.1:${cap.port}"\n`,
    });
  }, 60_000);
  afterAll(async () => {
    await srv?.dispose();
    await cap?.close();
    await dns?.stop();
  });

  peerTest("dkimverify", "a DKIM-signed message to an alias of a remote address: SRS0 sender, ARC set i=1, arc_verify pass", async (ctx) => {
    if (!havePeer("dnsmasq")) return ctx.skip();
    const original = Buffer.from(message("writer@author.test", "forward-me").replace("alice@example.test", "fwd@example.test"), "latin1");
    const signed = dkimpySignWith(original, author);
    const c = await SmtpClient.connect(srv!.ports.mx);
    try {
      await c.hello("client.test");
      const r = await sendMail(c, "writer@author.test", ["fwd@example.test"], signed);
      expect(r.final?.code).toBe(250);
    } finally {
      c.destroy();
    }
    const got = await waitFor(() => cap!.messages.find((m) => m.data.includes("Subject: forward-me")), 15_000);
    expect(got.mailFrom).toMatch(/^<SRS0=[^=]{4}=[A-Z2-7]{2}=author\.test=writer@example\.test>/);
    const text = got.data.toString("latin1");
    expect(text).toMatch(/^ARC-Seal: i=1;/m);
    expect(text).toMatch(/^ARC-Message-Signature: i=1;/m);
    expect(text).toMatch(/^ARC-Authentication-Results: i=1; mx\.test\.ringmta;/m);
    expect(ourFields(text)[0]).toMatch(/dkim=pass[^;]*header\.d=author\.test/);
    // The next hop's view: dkimpy validates the chain through our ARC key (and the author's DKIM key).
    expect(dkimpyArcVerify(got.data, [arcKey, author])).toMatchObject({ cv: "pass" });
  });
});
