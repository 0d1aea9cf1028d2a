/**
 * The single binary (`bun run build` → dist/ringmta; here built into a temp dir by src/build.ts): it runs
 * with no node_modules anywhere above it, its subcommands work, and `serve` — delivery workers included — takes
 * a message over STARTTLS + AUTH and delivers it to Maildir.
 */
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import nodemailer from "nodemailer";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { buildBinary } from "../../src/build.ts";
import { freePorts, maildirFiles, removeDir, sleep, tempDir, waitFor, waitFor220 } from "../helpers/index.ts";

const dir = tempDir("ringmta-bin-");
const run = join(dir, "run");
const bin = join(dir, "ringmta");
let server: ChildProcess | null = null;
let serverLog = "";

function ringmta(args: string[], input?: string) {
  return spawnSync(bin, args, { cwd: run, encoding: "utf8", input, timeout: 60_000 });
}

beforeAll(() => {
  mkdirSync(run);
  const r = buildBinary(bin);
  console.log(`binary: ${(r.bytes / 1024 / 1024).toFixed(1)} MiB, built in ${r.ms} ms from ${r.entries.join(" ")}`);
}, 180_000);

afterAll(async () => {
  if (server !== null && server.exitCode === null) {
    server.kill("SIGKILL");
    await sleep(100);
  }
  removeDir(dir);
});

describe("dist/ringmta", () => {
  test("no node_modules in the run directory or any directory above it", () => {
    for (let d = run; ; d = dirname(d)) {
      expect(existsSync(join(d, "node_modules")), d).toBe(false);
      if (dirname(d) === d) break;
    }
  });

  test("certs generate writes a PEM certificate and key", () => {
    const r = ringmta(["certs", "generate", "--host", "mx.bin.test", "--out", "certs"]);
    expect(r.status, r.stderr).toBe(0);
    expect(readFileSync(join(run, "certs", "server.crt"), "utf8")).toMatch(/^-----BEGIN CERTIFICATE-----\n/);
    expect(readFileSync(join(run, "certs", "server.key"), "utf8")).toMatch(/^-----BEGIN PRIVATE KEY-----\n/);
  });

  let ports: number[] = [];
  test("check-config: exit 0 for a good file, 2 with the key path for a bad one", async () => {
    ports = await freePorts(2);
    writeFileSync(
      join(run, "ringmta.toml"),
      `hostname = "mx.bin.test"
data_dir = "data"
[checks]                           # no DNS checks: this test/bench is not about them
spf = "off"
dkim = "off"
arc = "off"
dmarc = "off"
[tls]
cert = "certs/server.crt"
key = "certs/server.key"
[[listeners]]
name = "mx"
host = "127.0.0.1"
port = ${ports[0]}
tls = "starttls"
auth = "optional"
[[listeners]]
name = "submission"
host = "127.0.0.1"
port = ${ports[1]}
tls = "starttls"
auth = "required"
[local]
domains = ["example.test"]
users_file = "users.txt"
[delivery]
workers = 2
[metrics]
listen = ""
`,
    );
    const good = ringmta(["check-config", "--config", "ringmta.toml"]);
    expect(good.status, good.stderr).toBe(0);
    writeFileSync(join(run, "bad.toml"), "[limits]\nmax_recipients = -1\n");
    const bad = ringmta(["check-config", "--config", "bad.toml"]);
    expect(bad.status).toBe(2);
    expect(bad.stderr).toMatch(/^config error: limits\.max_recipients: /m);
  });

  test("verify: the checks (mailauth inside the binary) read a message and print the Authentication-Results field", () => {
    // DKIM and ARC need no DNS for an unsigned message; SPF and DMARC would ask DNS, so they are off here.
    writeFileSync(join(run, "verify.toml"), `hostname = "mx.bin.test"\n[checks]\nspf = "off"\ndkim = "on"\narc = "on"\ndmarc = "off"\n`);
    writeFileSync(join(run, "m.eml"), "From: <a@sender.test>\r\nSubject: v\r\n\r\nbody\r\n");
    const v = ringmta(["verify", "--ip", "192.0.2.1", "--helo", "c.test", "--mail-from", "a@sender.test", "--config", "verify.toml", "m.eml"]);
    expect(v.status, v.stderr).toBe(0);
    expect(v.stdout).toBe("Authentication-Results: mx.bin.test;\n dkim=none;\n arc=none\n");
  });

  test("user add / user list", () => {
    const add = ringmta(["user", "add", "alice@example.test", "--password-stdin", "--config", "ringmta.toml"], "secret-alice\n");
    expect(add.status, add.stderr).toBe(0);
    expect(readFileSync(join(run, "users.txt"), "utf8")).toMatch(/^alice@example\.test:\$argon2id\$/m);
    const list = ringmta(["user", "list", "--config", "ringmta.toml"]);
    expect(list.stdout).toBe("alice@example.test\n");
  });

  test("serve: a message over STARTTLS + AUTH lands in Maildir", async () => {
    const t0 = Date.now();
    server = spawn(bin, ["serve", "--config", "ringmta.toml", "--log-format", "json"], { cwd: run, stdio: ["ignore", "pipe", "pipe"] });
    server.stdout!.on("data", (b: Buffer) => (serverLog += b.toString()));
    server.stderr!.on("data", (b: Buffer) => (serverLog += b.toString()));
    await waitFor220(ports[0]!, server, () => serverLog, 20_000);
    console.log(`binary: first 220 ${Date.now() - t0} ms after spawn`);

    const mailer = nodemailer.createTransport({
      host: "127.0.0.1",
      port: ports[1],
      secure: false,
      requireTLS: true,
      tls: { rejectUnauthorized: false },
      auth: { user: "alice@example.test", pass: "secret-alice" },
    });
    const info = await mailer.sendMail({
      from: "alice@example.test",
      to: "alice@example.test",
      subject: "from the binary",
      text: "delivered by dist/ringmta\n",
    });
    expect(info.response).toMatch(/^250 /);
    const files = await waitFor(() => maildirFiles(join(run, "data"), "example.test", "alice").length === 1 && maildirFiles(join(run, "data"), "example.test", "alice"));
    const text = readFileSync(files[0]!, "utf8");
    expect(text).toMatch(/^Return-Path: <alice@example\.test>\r\nDelivered-To: alice@example\.test\r\nReceived: /);
    expect(text).toMatch(/ with ESMTPSA id /);
    expect(text).toContain("delivered by dist/ringmta");

    const q = ringmta(["queue", "list", "--json", "--config", "ringmta.toml"]);
    expect(q.status, q.stderr).toBe(0);
    expect(JSON.parse(q.stdout)).toEqual([]);

    server.kill("SIGTERM");
    const code = await new Promise<number | null>((r) => server!.once("exit", (c) => r(c)));
    expect(code, serverLog).toBe(0);
  });
});
