/**
 * The signing stage in the real server (CONTRACT "DKIM"): keys from `dkim keygen` under data_dir/dkim, mail from
 * relay.networks signed (ringmta_dkim_signed_total{domain}), mail from elsewhere or for a domain without selectors
 * not; absurd header sections answered in bounded time with the server still serving; a missing key is a config
 * error at start (exit 2) and on SIGHUP (logged, the running keys kept).
 */
import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { CaptureServer } from "../helpers/capture-server.ts";
import { dkimpyVerify, recordsOf } from "../helpers/dkim.ts";
import { maildirFiles, peerTest, SmtpClient, sendMail, spawnRingmta, startServer, waitFor, type Srv } from "../helpers/index.ts";
import { scrape, valueOf } from "../helpers/prometheus.ts";
import { BUN, MAIN } from "../helpers/server.ts";

const keys = mkdtempSync(join(tmpdir(), "ringmta-dkim-srv-"));
const DKIM = `
[relay]
networks = ["127.0.0.0/8"]
[limits]
max_message_size = 4194304
[dkim.selectors]
"example.test" = ["rsa1", "ed1"]
`;
let srv: Srv;

beforeAll(async () => {
  for (const [s, algo] of [["rsa1", "rsa"], ["ed1", "ed25519"]]) {
    const r = spawnSync(BUN, [MAIN, "dkim", "keygen", "--domain", "example.test", "--selector", s!, "--algo", algo!], {
      cwd: keys,
      encoding: "utf8",
    });
    expect(r.status, r.stderr).toBe(0);
  }
  // keygen without --config writes under ./data (the embedded default data_dir); the server uses that data_dir.
  srv = await startServer({ config: `data_dir = "${join(keys, "data")}"\n${DKIM}` });
}, 90_000);
afterAll(async () => {
  await srv?.dispose();
  rmSync(keys, { recursive: true, force: true });
}, 30_000);

const signed = async (): Promise<number> => valueOf((await scrape(srv.ports.metrics)).fams, "ringmta_dkim_signed_total", { domain: "example.test" });

async function send(from: string, body: Buffer | string): Promise<number | null> {
  const c = await SmtpClient.connect(srv.ports.mx);
  try {
    await c.hello();
    const r = await sendMail(c, "alice@example.test", ["alice@example.test"], typeof body === "string" ? Buffer.from(`From: <${from}>\r\nSubject: s\r\n\r\n${body}\r\n`) : body);
    await c.cmd("QUIT");
    return r.final?.code ?? null;
  } finally {
    c.destroy();
  }
}

function events(name: string): Array<Record<string, unknown>> {
  return srv
    .logs()
    .split("\n")
    .filter((l) => l.startsWith("{"))
    .map((l) => JSON.parse(l) as Record<string, unknown>)
    .filter((j) => j.event === name);
}

describe("DKIM signing in the server", () => {
  test("mail from relay.networks whose From has selectors is signed; other From domains are not", async () => {
    expect(await signed()).toBe(0);
    expect(await send("alice@example.test", "one")).toBe(250);
    expect(await send("alice@news.example.test", "nearest parent")).toBe(250);
    expect(await send("someone@remote.test", "no selectors")).toBe(250);
    expect(await signed()).toBe(2);
  });

  test("10,000 header fields and a 2 MiB header section: 250, unsigned, logged, and the server keeps answering", async () => {
    const before = await signed();
    const t0 = Date.now();
    const many = Buffer.from("From: <alice@example.test>\r\n" + "X-F: v\r\n".repeat(10_000) + "\r\nbody\r\n");
    const huge = Buffer.from("From: <alice@example.test>\r\nX-Long: " + "y".repeat(2 * 1024 * 1024) + "\r\n\r\nbody\r\n");
    expect(await send("", many)).toBe(250);
    expect(await send("", huge)).toBe(250);
    expect(Date.now() - t0).toBeLessThan(15_000);
    expect(await send("alice@example.test", "after")).toBe(250);
    expect(await signed()).toBe(before + 1);
    await waitFor(() => events("dkim.unsigned").length >= 2, 5000);
    expect(events("dkim.unsigned").map((e) => e.reason)).toEqual(["header-too-large", "header-too-large"]);
  }, 60_000);

  test("SIGHUP with a selector whose key is missing: reload refused naming the file, the running keys kept", async () => {
    const good = readFileSync(srv.configPath, "utf8");
    writeFileSync(srv.configPath, good.replace(/"rsa1",\s*"ed1"/, '"rsa1", "ed1", "missing"'));
    const seen = events("config.reload_failed").length;
    process.kill(srv.pid, "SIGHUP");
    await waitFor(() => events("config.reload_failed").length > seen, 10_000);
    expect(JSON.stringify(events("config.reload_failed").at(-1))).toContain(
      `dkim.selectors.example.test: ${join(keys, "data", "dkim", "example.test", "missing.key")}: no such file`,
    );
    const before = await signed();
    expect(await send("alice@example.test", "still signed")).toBe(250);
    expect(await signed()).toBe(before + 1);
    writeFileSync(srv.configPath, good);
  }, 30_000);

  test("serve with a selector whose key is missing: exit 2, `config error: dkim.selectors.<domain>: <file>: ...`", async () => {
    const bad = join(keys, "bad.toml");
    writeFileSync(bad, `data_dir = "data"\n[dkim.selectors]\n"example.test" = ["nokey"]\n[metrics]\nlisten = ""\n`);
    const p = spawnRingmta(["serve", "--config", bad], keys);
    const code = await new Promise<number | null>((r) => p.proc.once("exit", (c) => r(c)));
    expect(code).toBe(2);
    expect(p.logs()).toContain(`config error: dkim.selectors.example.test: ${join(keys, "data", "dkim", "example.test", "nokey.key")}: no such file`);
  }, 30_000);
});

describe("our DSNs are signed (CONTRACT: for <hostname>'s domain when it has selectors)", () => {
  peerTest("dkimverify", "a bounce from MAILER-DAEMON@mx.example.test carries both signatures, and dkimpy passes them", async () => {
    const dir = mkdtempSync(join(tmpdir(), "ringmta-dkim-dsn-"));
    const printed: string[] = [];
    for (const [s, algo] of [["rsa1", "rsa"], ["ed1", "ed25519"]]) {
      const r = spawnSync(BUN, [MAIN, "dkim", "keygen", "--domain", "example.test", "--selector", s!, "--algo", algo!], { cwd: dir, encoding: "utf8" });
      expect(r.status, r.stderr).toBe(0);
      printed.push(r.stdout);
    }
    // The next hop refuses the recipient: a permanent failure, so the DSN goes to the sender at once.
    const refusing = await CaptureServer.start({ script: { RCPT: ["550 5.1.1 no such user"] } });
    const bouncer = await startServer({
      config: `hostname = "mx.example.test"\ndata_dir = "${join(dir, "data")}"\n${DKIM}\n[relay.routes]\n"far.test" = "127.0.0.1:${refusing.port}"\n`,
    });
    try {
      const c = await SmtpClient.connect(bouncer.ports.mx);
      await c.hello();
      const r = await sendMail(c, "alice@example.test", ["nobody@far.test"], Buffer.from("From: <alice@example.test>\r\nSubject: s\r\n\r\nbody\r\n"));
      expect(r.final?.code).toBe(250);
      await c.cmd("QUIT");
      c.destroy();
      const files = await waitFor(() => {
        const f = maildirFiles(join(dir, "data"), "example.test", "alice");
        return f.length > 0 ? f : null;
      }, 15_000);
      const dsn = readFileSync(files[0]!);
      const text = dsn.toString("latin1");
      expect(text).toMatch(/^From: .*MAILER-DAEMON@mx\.example\.test/m);
      // Two on the DSN itself (the returned original inside it carries its own two).
      expect(text.slice(0, text.indexOf("\r\n\r\n")).match(/^DKIM-Signature:/gm)).toHaveLength(2);
      // The Maildir file starts with the courier's Return-Path and Delivered-To; dkimpy reads the whole message.
      expect(dkimpyVerify(dsn, recordsOf(printed))).toEqual(["rsa1:pass", "ed1:pass"]);
    } finally {
      await bouncer.dispose();
      await refusing.close();
      rmSync(dir, { recursive: true, force: true });
    }
  }, 60_000);
});
