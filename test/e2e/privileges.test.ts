/**
 * Issue 6 §6 / CONTRACT "Storage layout": started as root with `[server] user = "nobody"`, ringmta binds its
 * listeners (here also a port below 1024 would work), then becomes that user before it touches the spool or the
 * Maildirs: /proc shows the process's uids are that user's, the listeners answer, and every file under data_dir
 * is owned by that user. Needs root to start as root: as another user the test is skipped, naming why.
 */
import { chmodSync, lstatSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { expect, test } from "vitest";
import {
  SmtpClient,
  freePorts,
  sendMail,
  simpleMessage,
  spawnRingmta,
  tempDir,
  uniqueId,
  waitFor,
  waitFor220,
} from "../helpers/index.ts";

function uidOf(name: string): number {
  const line = readFileSync("/etc/passwd", "utf8")
    .split("\n")
    .find((l) => l.startsWith(`${name}:`));
  if (!line) throw new Error(`no user ${name}`);
  return Number(line.split(":")[2]);
}

function walk(dir: string, out: string[] = []): string[] {
  for (const e of readdirSync(dir)) {
    const p = join(dir, e);
    out.push(p);
    if (lstatSync(p).isDirectory()) walk(p, out);
  }
  return out;
}

test('started as root with [server] user = "nobody": binds, then runs as nobody; data_dir is nobody\'s', async (ctx) => {
  if (process.getuid?.() !== 0) {
    ctx.skip("needs root: the test starts the server as root to watch it drop to [server] user");
    return;
  }
  const nobody = uidOf("nobody");
  const dir = tempDir("ringmta-priv-");
  chmodSync(dir, 0o755); // nobody must reach data/ below it
  const [mx, sub] = await freePorts(2);
  writeFileSync(
    join(dir, "ringmta.toml"),
    `hostname = "mx.priv.test"
data_dir = "data"
[checks]                           # no DNS checks: this test/bench is not about them
spf = "off"
dkim = "off"
arc = "off"
dmarc = "off"
[server]
user = "nobody"
[tls]
cert = "certs/server.crt"
key = "certs/server.key"
[[listeners]]
name = "mx"
host = "127.0.0.1"
port = ${mx}
tls = "none"
auth = "off"
[[listeners]]
name = "submission"
host = "127.0.0.1"
port = ${sub}
tls = "starttls"
auth = "required"
[local]
domains = ["example.test"]
catch_all = true
users_file = ""
[delivery]
workers = 2
[metrics]
listen = ""
`,
  );
  const { proc, logs } = spawnRingmta(["serve", "--config", join(dir, "ringmta.toml")], dir);
  try {
    await waitFor220(mx, proc, logs, 20_000);
    await waitFor220(sub, proc, logs, 20_000);

    const status = readFileSync(`/proc/${proc.pid}/status`, "utf8");
    const uids = /^Uid:\s+(\d+)\s+(\d+)\s+(\d+)\s+(\d+)/m.exec(status)!.slice(1).map(Number);
    expect(uids).toEqual([nobody, nobody, nobody, nobody]);

    // STARTTLS still works: the generated certificate was handed to nobody.
    const t = await SmtpClient.connect(sub);
    await t.hello();
    expect((await t.startTls()).code).toBe(220);
    t.destroy();

    const mid = uniqueId("priv");
    const c = await SmtpClient.connect(mx);
    await c.hello();
    const r = await sendMail(c, "a@remote.test", ["someone@example.test"], simpleMessage({ messageId: mid }));
    expect(r.final?.code).toBe(250);
    c.destroy();
    const data = join(dir, "data");
    await waitFor(() => readdirSync(join(data, "mail", "example.test", "someone", "new")).length === 1, 15_000);

    const notNobody = [data, ...walk(data)].filter((p) => lstatSync(p).uid !== nobody);
    expect(notNobody, logs()).toEqual([]);
    expect(logs()).toContain('"event":"privileges.dropped"');
  } finally {
    proc.kill("SIGTERM");
    await new Promise((r) => proc.once("exit", r));
  }
}, 60_000);
