/**
 * The bundled load generator (native-bench/, issue 5), correctness only: run as a subprocess with --json against
 * the real server, it must account for every message (sent = accepted = files in the Maildir, no duplicates) and
 * print the documented JSON shape; errors above the threshold give a non-zero exit. No timing is asserted.
 * A few pure parts of the generator (reply framing, message template, histogram) are checked directly.
 */
import { spawn } from "node:child_process";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, test } from "vitest";
import { LatencyHistogram, MessageTemplate, ReplyScanner } from "../../native-bench/index.ts";
import { BUN, REPO, USERS, maildirFiles, useServer } from "../helpers/index.ts";

const BENCH = join(REPO, "native-bench", "main.ts");

const srv = useServer({
  listeners: [{ name: "mx", tls: "none", auth: "off" }],
  config: "[local]\ncatch_all = true\n",
});

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

function bench(args: string[]): Promise<Run> {
  return new Promise((resolve) => {
    const p = spawn(BUN, [BENCH, ...args], { cwd: REPO, stdio: ["ignore", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    p.stdout.on("data", (b: Buffer) => (stdout += b.toString("utf8")));
    p.stderr.on("data", (b: Buffer) => (stderr += b.toString("utf8")));
    const t = setTimeout(() => p.kill("SIGKILL"), 120_000);
    p.once("exit", (code) => {
      clearTimeout(t);
      resolve({ code, stdout, stderr });
    });
  });
}

function parseJson(r: Run): Record<string, any> {
  expect(r.stdout.trim().split("\n"), `one JSON line on stdout; stderr: ${r.stderr}`).toHaveLength(1);
  return JSON.parse(r.stdout);
}

function messageIds(files: string[]): string[] {
  return files.map((f) => /^Message-ID: <([^>]+)>/m.exec(readFileSync(f, "latin1"))?.[1] ?? `missing in ${f}`);
}

const PERCENTILES = { count: expect.any(Number), p50: expect.any(Number), p90: expect.any(Number), p99: expect.any(Number), max: expect.any(Number), mean: expect.any(Number) };

describe("bench generator against ringmta", () => {
  test("300 messages over 4 sessions: all accepted, all delivered once, JSON shape", async () => {
    const mailbox = join(srv().dataDir, "mail", "example.test", "bench1");
    const r = await bench([
      "--port", String(srv().ports.mx), "--connections", "4", "--messages", "300", "--size", "2KiB",
      "--to", "bench1@example.test", "--maildir", mailbox, "--maildir-timeout", "60s", "--json", "--no-progress",
    ]);
    expect(r.code, r.stderr).toBe(0);
    const j = parseJson(r);
    expect(j).toMatchObject({
      target: `127.0.0.1:${srv().ports.mx}`,
      connections: 4,
      planned: 300,
      attempted: 300,
      accepted: 300,
      failed: 0,
      connectionErrors: 0,
      errors: 0,
      bytes: 300 * 2048,
      msgsPerSec: expect.any(Number),
      mbPerSec: expect.any(Number),
      elapsedMs: expect.any(Number),
      latencyMs: { connect: { ...PERCENTILES, count: 4 }, mail: { ...PERCENTILES, count: 300 }, data: { ...PERCENTILES, count: 300 } },
      maildir: { glob: mailbox, baseline: 0, expected: 300, found: 300, delivered: 300, complete: true },
      firstError: null,
      ok: true,
    });
    // Banner + EHLO per session, MAIL/RCPT/end-of-data 250 and DATA 354 per message, QUIT 221 per session.
    expect(j.replies).toEqual({ "220": 4, "221": 4, "250": 4 + 3 * 300, "354": 300 });
    const files = maildirFiles(srv().dataDir, "example.test", "bench1");
    expect(files).toHaveLength(300);
    const ids = messageIds(files);
    expect(new Set(ids).size, "every delivered file has its own Message-ID").toBe(300);
  }, 120_000);

  test("pipelining, 2 recipients, a size mix: every recipient's copy arrives", async () => {
    const r = await bench([
      "--port", String(srv().ports.mx), "--connections", "3", "--messages", "200", "--size-dist", "1KiB:3,20KiB:1",
      "--rcpts", "2", "--pipelining", "--to", "bench2@example.test",
      "--maildir", join(srv().dataDir, "mail", "example.test", "bench2*"), "--json", "--no-progress",
    ]);
    expect(r.code, r.stderr).toBe(0);
    const j = parseJson(r);
    expect(j).toMatchObject({ accepted: 200, failed: 0, rcpts: 2, pipelining: true, maildir: { expected: 400, delivered: 400, complete: true } });
    expect(j.sizes).toEqual([
      { bytes: 1024, weight: 3 },
      { bytes: 20480, weight: 1 },
    ]);
    // Both size classes were used (200 draws at 3:1; either class missing has odds below 1e-24).
    expect(j.bytes).toBeGreaterThan(200 * 1024);
    expect(j.bytes).toBeLessThan(200 * 20480);
    const first = maildirFiles(srv().dataDir, "example.test", "bench2");
    const second = maildirFiles(srv().dataDir, "example.test", "bench21");
    expect(first).toHaveLength(200);
    expect(second).toHaveLength(200);
    expect(new Set(messageIds(first))).toEqual(new Set(messageIds(second)));
  }, 120_000);

  test("refused messages: counted as failed, exit code 1, the first error named", async () => {
    const r = await bench([
      "--port", String(srv().ports.mx), "--connections", "2", "--messages", "20", "--to", "someone@elsewhere.test",
      "--json", "--no-progress",
    ]);
    expect(r.code).toBe(1);
    const j = parseJson(r);
    expect(j).toMatchObject({ attempted: 20, accepted: 0, failed: 20, ok: false });
    expect(j.replies["554"]).toBe(20);
    expect(j.firstError).toMatch(/RCPT: 554/);
  }, 60_000);

  test("flood mode (issue 15): idle and flood phases, garbage from 2 addresses, the JSON shape", async () => {
    const r = await bench([
      "flood", "--port", String(srv().ports.mx), "--pid", String(srv().pid), "--garbage", "6", "--sources", "2",
      "--duration", "2s", "--idle", "1s", "--to", "flood@example.test", "--json",
    ]);
    const j = parseJson(r);
    expect(r.code, r.stderr).toBe(j.ok ? 0 : 1);
    expect(j.sources).toEqual(["127.0.0.2", "127.0.0.3"]);
    for (const phase of [j.idle, j.flood]) {
      expect(phase.transactions).toBeGreaterThan(0);
      expect(phase.failed).toBe(0);
      expect(phase.endOfData).toEqual(PERCENTILES);
      expect(typeof phase.serverCpuPercent).toBe("number");
    }
    expect(j.garbage.opened).toBeGreaterThanOrEqual(6);
    expect(j.garbage.errorReplies).toBeGreaterThan(0);
    expect(j.garbage.bytesWritten).toBeGreaterThan(0);
  }, 60_000);

  test("bad usage: exit code 2 with the usage text", async () => {
    const r = await bench(["--size", "lots"]);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/--size: "lots" is not a size/);
    expect(r.stderr).toMatch(/usage: bun run bench/);
  }, 30_000);
});

describe("bench generator with STARTTLS and AUTH PLAIN", () => {
  const tlsSrv = useServer();

  test("each session upgrades, authenticates once, and its messages are delivered", async () => {
    const r = await bench([
      "--port", String(tlsSrv().ports.submission), "--connections", "2", "--messages", "20", "--starttls",
      "--auth", `alice@example.test:${USERS.alice}`, "--from", "alice@example.test", "--to", "bob@example.test",
      "--maildir", join(tlsSrv().dataDir, "mail", "example.test", "bob"), "--json", "--no-progress",
    ]);
    expect(r.code, r.stderr).toBe(0);
    const j = parseJson(r);
    expect(j).toMatchObject({ starttls: true, auth: true, accepted: 20, failed: 0, maildir: { delivered: 20, complete: true } });
    // Per session: 220 banner, 220 to STARTTLS, 235 to AUTH, 221 to QUIT.
    expect(j.replies).toMatchObject({ "220": 4, "235": 2, "221": 2, "354": 20 });
  }, 60_000);
});

describe("bench generator parts", () => {
  test("reply scanner: multi-line replies and replies split across chunks yield one code each", () => {
    const codes: number[] = [];
    const s = new ReplyScanner((c) => codes.push(c));
    const bytes = new TextEncoder().encode("220 hi\r\n250-a\r\n250-b\r\n250 c\r\n354 go\r\n250 2.0.0 ok\r\n");
    for (let i = 0; i < bytes.length; i += 3) s.feed(bytes.subarray(i, Math.min(bytes.length, i + 3)));
    expect(codes).toEqual([220, 250, 354, 250]);
  });

  test("message template: exact size before stuffing, ends with CRLF . CRLF, Message-ID stamped in place", () => {
    const t = new MessageTemplate({ size: 1024, from: "a@b.test", to: "c@d.test", tag: "t.1" });
    expect(t.size).toBe(1024);
    expect(t.bytes.length).toBe(1024 + 3);
    const text = (b: Uint8Array): string => Buffer.from(b).toString("latin1");
    expect(text(t.bytes).endsWith("\r\n.\r\n")).toBe(true);
    expect(text(t.stamp(255))).toContain("Message-ID: <0000000000ff.t.1@bench.ringmta>");
    const again = t.stamp(256);
    expect(again).toBe(t.bytes);
    expect(text(again)).toContain("Message-ID: <000000000100.t.1@bench.ringmta>");
    for (const line of text(t.bytes).split("\r\n")) expect(line.length).toBeLessThanOrEqual(998);
  });

  test("histogram: percentiles within the bucket resolution", () => {
    const h = new LatencyHistogram();
    for (let i = 1; i <= 1000; i++) h.record(i / 10); // 0.1 .. 100 ms
    const s = h.summary();
    expect(s.count).toBe(1000);
    expect(s.p50).toBeGreaterThan(50 * 0.98);
    expect(s.p50).toBeLessThan(50 * 1.02);
    expect(s.p99).toBeGreaterThan(99 * 0.98);
    expect(s.p99).toBeLessThan(99 * 1.02);
    expect(s.max).toBe(100);
  });
});
