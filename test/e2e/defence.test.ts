/**
 * The MX defences against the real server with real clients (issue 12 acceptance): DNS lists served by dnsmasq,
 * pregreet against a raw socket that talks first and swaks that waits, rate limits with Postfix's smtp-source,
 * greylisting with swaks (retry, restart) and with Postfix as the retrying MTA.
 *
 * Loopback sources: the server sees 127.0.0.1 for a plain connect; other 127.x.y.z sources (localAddress, swaks
 * --local-interface) stand for other clients.
 */
import { execFile } from "node:child_process";
import { createSocket, type Socket as UdpSocket } from "node:dgram";
import { readFileSync, writeFileSync } from "node:fs";
import { connect } from "node:net";
import { parse, stringify } from "smol-toml";
import { afterAll, beforeAll, describe, expect } from "vitest";
import { startDnsmasq, type Dnsmasq } from "../helpers/dnsmasq.ts";
import {
  havePeer,
  maildirFiles,
  peerPath,
  peerTest,
  sendMail,
  sleep,
  SmtpClient,
  startServer,
  waitFor,
  type Srv,
} from "../helpers/index.ts";
import { startPostfix, type Postfix } from "../helpers/postfix.ts";
import { scrape, valueOf } from "../helpers/prometheus.ts";

const MSG = "Subject: defence\r\n\r\nhello\r\n";

function swaks(args: string[]): Promise<{ code: number; out: string }> {
  return new Promise((resolve) =>
    execFile(peerPath("swaks")!, args, { timeout: 60_000 }, (err, stdout, stderr) =>
      resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, out: stdout + stderr }),
    ),
  );
}

/** One transaction from `localAddress`; the replies. */
async function attempt(port: number, localAddress: string, from = "s@remote.test", to = "alice@example.test") {
  const c = await SmtpClient.connect(port, { localAddress });
  try {
    await c.hello("client.test");
    return await sendMail(c, from, [to], MSG);
  } finally {
    c.destroy();
  }
}

async function defenceRejects(srv: Srv, reason: string): Promise<number> {
  return valueOf((await scrape(srv.ports.metrics)).fams, "ringmta_defence_rejects_total", { reason });
}

describe("DNSBL / DNSWL with dnsmasq", () => {
  let dns: Dnsmasq | null = null;
  let srv: Srv | null = null;
  let silent: UdpSocket | null = null;
  let deaf: Srv | null = null;
  beforeAll(async () => {
    if (!havePeer("dnsmasq")) return;
    dns = await startDnsmasq({
      zones: ["bl.test", "refuse.test", "wl.test"],
      hosts: [
        "1.0.0.127.bl.test,127.0.0.2", // 127.0.0.1 is listed
        "1.0.0.127.refuse.test,127.255.255.254", // the list refuses our queries: not a listing
        "6.0.0.127.refuse.test,127.255.255.254",
        "7.0.0.127.bl.test,127.0.0.2", // 127.0.0.7 is listed, but also allowlisted
        "7.0.0.127.wl.test,127.0.10.1",
      ],
    });
    srv = await startServer({
      config: `[dns]\nservers = ["${dns.server}"]\n[defence]\ndnsbl = ["refuse.test", "bl.test"]\ndnswl = ["wl.test"]\n`,
    });
    // A DNS "server" that never answers: every lookup times out.
    silent = createSocket("udp4");
    await new Promise<void>((r) => silent!.bind(0, "127.0.0.1", r));
    deaf = await startServer({
      config: `[dns]\nservers = ["127.0.0.1:${silent.address().port}"]\n[defence]\ndnsbl = ["bl.test"]\n`,
    });
  }, 60_000);
  afterAll(async () => {
    await srv?.dispose();
    await deaf?.dispose();
    await dns?.stop();
    silent?.close();
  });

  peerTest("dnsmasq", "a listed client gets 554 5.7.1 at RCPT naming the zone; a clean one is accepted", async () => {
    const listed = await attempt(srv!.ports.mx, "127.0.0.1");
    expect(listed.mail.code).toBe(250);
    expect(listed.rcpts[0]!.code).toBe(554);
    expect(listed.rcpts[0]!.enhanced).toBe("5.7.1");
    expect(listed.rcpts[0]!.raw).toContain("bl.test");
    const clean = await attempt(srv!.ports.mx, "127.0.0.5");
    expect(clean.rcpts[0]!.code).toBe(250);
    expect(clean.final?.code).toBe(250);
    expect(await defenceRejects(srv!, "dnsbl")).toBe(1);
    await waitFor(() => /defence\.reject/.test(srv!.logs()) || null, 5000);
    expect(srv!.logs()).toMatch(/defence\.reject.*"reason":"dnsbl".*"client":"127\.0\.0\.1".*"zone":"bl\.test"/);
  }, 30_000);

  peerTest("dnsmasq", "a 127.255.255.254 answer is not a listing (logged as an error); DNSWL beats DNSBL", async () => {
    const refused = await attempt(srv!.ports.mx, "127.0.0.6");
    expect(refused.final?.code).toBe(250);
    await waitFor(() => /dnsl_refused.*127\.0\.0\.6/.test(srv!.logs()) || null, 5000);
    expect(srv!.logs()).toMatch(/defence\.dnsl_refused.*"client":"127\.0\.0\.6".*"zone":"refuse\.test".*127\.255\.255\.254/);
    const allowed = await attempt(srv!.ports.mx, "127.0.0.7");
    expect(allowed.final?.code).toBe(250);
    expect(await defenceRejects(srv!, "dnsbl")).toBe(1);
  }, 30_000);

  peerTest("dnsmasq", "a DNS timeout accepts the client (fail open) and logs it", async () => {
    const t0 = Date.now();
    const r = await attempt(deaf!.ports.mx, "127.0.0.1");
    expect(r.final?.code).toBe(250);
    // The lookups started at connect; RCPT waited at most the 2 s budget.
    expect(Date.now() - t0).toBeLessThan(6000);
    await waitFor(() => /dnsl_failed/.test(deaf!.logs()) || null, 5000);
    expect(deaf!.logs()).toMatch(/defence\.dnsl_failed.*"zone":"bl\.test".*"status":"timeout"/);
  }, 30_000);
});

describe("pregreet", () => {
  let srv: Srv;
  beforeAll(async () => {
    srv = await startServer({ config: `[defence]\npregreet_ms = 1500\n` });
  }, 60_000);
  afterAll(() => srv?.dispose());

  peerTest("swaks", "a raw client that talks first gets 554 5.5.1 and is closed; swaks (which waits) delivers", async () => {
    const got = await new Promise<string>((resolve, reject) => {
      const s = connect({ host: "127.0.0.1", port: srv.ports.mx, localAddress: "127.0.0.9" });
      let text = "";
      s.on("connect", () => s.write("EHLO eager.test\r\n"));
      s.on("data", (b) => (text += b.toString("latin1")));
      s.on("close", () => resolve(text));
      s.on("error", reject);
      setTimeout(() => reject(new Error(`not closed; got ${JSON.stringify(text)}`)), 10_000);
    });
    expect(got).toMatch(/^554 5\.5\.1 /);
    expect(got).not.toContain("220");
    const r = await swaks(["--server", `127.0.0.1:${srv.ports.mx}`, "--from", "s@remote.test", "--to", "alice@example.test"]);
    expect(r.out).toMatch(/<- {2}220/);
    expect(r.out).toMatch(/<- {2}250 2\.0\.0/);
    expect(r.code).toBe(0);
    expect(await defenceRejects(srv, "pregreet")).toBe(1);
    expect(srv.logs()).toMatch(/defence\.reject.*"reason":"pregreet".*"client":"127\.0\.0\.9"/);
  }, 30_000);
});

describe("rate limits with smtp-source", () => {
  let srv: Srv;
  beforeAll(async () => {
    srv = await startServer({
      config: `[local]\ncatch_all = true\n[[rate_limits]]\nkey = "sender"\nrate = "5/1h"\n[[rate_limits]]\nkey = "recipient"\nrate = "8/1h"\n`,
    });
  }, 60_000);
  afterAll(() => srv?.dispose());

  // One session, messages in turn (smtp-source gives up on a session after an error reply; each run is one try).
  const source = (from: string, to: string, n: number): Promise<string> =>
    new Promise((resolve) =>
      execFile(
        peerPath("smtp-source")!,
        ["-s", "1", "-m", String(n), "-l", "1024", "-f", from, "-t", to, `127.0.0.1:${srv.ports.mx}`],
        { timeout: 60_000 },
        (_err, out, stderr) => resolve(out + stderr),
      ),
    );
  const delivered = (local: string): number => maildirFiles(srv.dataDir, "example.test", local).length;
  /** `tries` runs of smtp-source, 10 messages each (each run stops at its first refusal). */
  async function sendUntilRefused(from: string, to: string, tries: number): Promise<void> {
    for (let i = 0; i < tries; i++) await source(from, to, 10);
  }

  peerTest("smtp-source", "exactly the allowed count passes in the window; another key is unaffected", async () => {
    // sender a@x.test: 5 per hour. Three runs of 10 messages each: 5 get through, whatever smtp-source does after a 451.
    await sendUntilRefused("a@x.test", "u1@example.test", 3);
    await waitFor(() => delivered("u1") >= 5 || null, 15_000);
    await sleep(500);
    expect(delivered("u1")).toBe(5);
    // Another sender is unaffected by a@x.test's limit, but u1 may receive 8 per hour (the recipient key): 3 more.
    await sendUntilRefused("b@x.test", "u1@example.test", 3);
    await waitFor(() => delivered("u1") >= 8 || null, 15_000);
    await sleep(500);
    expect(delivered("u1")).toBe(8);
    // Another sender to another recipient: neither limit touched.
    await sendUntilRefused("c@x.test", "u2@example.test", 2);
    await waitFor(() => delivered("u2") >= 5 || null, 15_000);
    await sleep(500);
    expect(delivered("u2")).toBe(5);
    expect(await defenceRejects(srv, "rate_limit")).toBeGreaterThanOrEqual(3);
    await waitFor(() => /"key":"recipient".*"value":"u1@example\.test"/.test(srv.logs()) || null, 5000);
    expect(srv.logs()).toMatch(/defence\.reject.*"reason":"rate_limit".*"key":"sender".*"value":"a@x\.test"/);
    expect(srv.logs()).toMatch(/defence\.reject.*"reason":"rate_limit".*"key":"recipient".*"value":"u1@example\.test"/);
  }, 90_000);
});

describe("ip rate limits and SIGHUP", () => {
  let srv: Srv;
  beforeAll(async () => {
    srv = await startServer({ config: `[local]\ncatch_all = true\n[[rate_limits]]\nkey = "ip"\nrate = "3/1h"\n` });
  }, 60_000);
  afterAll(() => srv?.dispose());
  const delivered = (local: string): number => maildirFiles(srv.dataDir, "example.test", local).length;

  peerTest("smtp-source", "3/1h per ip: exactly 3 from 127.0.0.1, another address unaffected; a reload keeps the count and applies new [defence] keys", async () => {
    for (let i = 0; i < 3; i++) {
      await new Promise<void>((resolve) =>
        execFile(peerPath("smtp-source")!, ["-s", "1", "-m", "5", "-l", "1024", "-f", "a@x.test", "-t", "ip1@example.test", `127.0.0.1:${srv.ports.mx}`], { timeout: 60_000 }, () => resolve()),
      );
    }
    await waitFor(() => delivered("ip1") >= 3 || null, 15_000);
    await sleep(500);
    expect(delivered("ip1")).toBe(3);
    const other = await attempt(srv.ports.mx, "127.0.0.8", "a@x.test", "ip2@example.test");
    expect(other.final?.code).toBe(250);

    // SIGHUP with the same limit plus greylisting: the count of 127.0.0.1 stays, greylisting applies to new sessions.
    const cfg = parse(readFileSync(srv.configPath, "utf8")) as Record<string, unknown>;
    cfg.defence = { greylist: "on", greylist_delay: "1h" };
    writeFileSync(srv.configPath, stringify(cfg) + "\n");
    process.kill(srv.pid, "SIGHUP");
    await waitFor(() => srv.logs().includes("config.reloaded") || null, 10_000);
    const again = await attempt(srv.ports.mx, "127.0.0.1", "a@x.test", "ip1@example.test");
    expect(again.mail.code).toBe(451);
    expect(again.mail.enhanced).toBe("4.7.1");
    const grey = await attempt(srv.ports.mx, "127.0.1.9", "new@x.test", "ip3@example.test");
    expect(grey.mail.code).toBe(250);
    expect(grey.rcpts[0]!.code).toBe(451);
    expect(grey.rcpts[0]!.enhanced).toBe("4.7.1");
  }, 90_000);
});

describe("greylisting", () => {
  let srv: Srv;
  beforeAll(async () => {
    srv = await startServer({ config: `[defence]\ngreylist = "on"\ngreylist_delay = "2s"\n` });
  }, 60_000);
  afterAll(() => srv?.dispose());

  const send = (from: string, li = "127.0.0.1") =>
    swaks(["--server", `127.0.0.1:${srv.ports.mx}`, "--local-interface", li, "--from", from, "--to", "bob@example.test"]);

  peerTest("swaks", "first try deferred (451 4.7.1 at RCPT); a retry after the delay is accepted; state survives a restart", async () => {
    const first = await send("grey@remote.test");
    expect(first.out).toMatch(/<\*\* 451 4\.7\.1/);
    expect(first.code).not.toBe(0);
    const early = await send("grey@remote.test", "127.0.0.44"); // same /24, before the delay: still deferred
    expect(early.out).toMatch(/<\*\* 451 4\.7\.1/);
    await sleep(2200);
    const retry = await send("grey@remote.test");
    expect(retry.out).toMatch(/<- {2}250 2\.0\.0/);
    // Pending before the restart: its first-seen time is kept.
    expect((await send("pending@remote.test")).out).toMatch(/<\*\* 451 4\.7\.1/);
    await srv.restart();
    expect(srv.logs()).toMatch(/greylist\.loaded.*"triples":2/);
    const known = await send("grey@remote.test");
    expect(known.out).toMatch(/<- {2}250 2\.0\.0/);
    await sleep(2200);
    expect((await send("pending@remote.test")).out).toMatch(/<- {2}250 2\.0\.0/);
    expect(maildirFiles(srv.dataDir, "example.test", "bob").length).toBeGreaterThanOrEqual(2);
  }, 60_000);
});

describe("greylisting with Postfix as the sending MTA", () => {
  let srv: Srv;
  let pf: Postfix | null = null;
  beforeAll(async () => {
    srv = await startServer({ config: `[defence]\ngreylist = "on"\ngreylist_delay = "2s"\n` });
    if (!havePeer("postfix")) return;
    pf = await startPostfix("greylist", {
      extra: [
        `relayhost = [127.0.0.1]:${srv.ports.mx}`,
        "smtp_tls_security_level = none",
        // Retry fast (the defaults are minutes): the greylisting delay here is 2 s.
        "minimal_backoff_time = 1s",
        "maximal_backoff_time = 2s",
        "queue_run_delay = 1s",
      ].join("\n"),
    });
  }, 60_000);
  afterAll(async () => {
    await pf?.stop();
    await srv?.dispose();
  });

  peerTest("postfix", "Postfix is deferred, retries on its own and delivers", async () => {
    const c = await SmtpClient.connect(pf!.port);
    try {
      await c.hello("client.test");
      const r = await sendMail(c, "pf@remote.test", ["alice@example.test"], "Subject: via postfix\r\n\r\nretried\r\n");
      expect(r.final?.code).toBe(250);
    } finally {
      c.destroy();
    }
    await waitFor(() => maildirFiles(srv.dataDir, "example.test", "alice").length >= 1 || null, 40_000, 200);
    expect(maildirFiles(srv.dataDir, "example.test", "alice")).toHaveLength(1);
    expect(pf!.log()).toMatch(/451 4\.7\.1/);
    expect(srv.logs()).toMatch(/defence\.reject.*"reason":"greylist"/);
  }, 60_000);
});
