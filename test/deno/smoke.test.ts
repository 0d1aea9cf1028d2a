/**
 * The Deno smoke suite (`deno test -A test/deno/`): the real server, `deno run -A src/main.ts serve`, in a temp
 * dir on free loopback ports — plain delivery to Maildir, STARTTLS + AUTH (RFC 3207, RFC 4954) against users
 * whose hashes come from Deno's own `user add` (hash-wasm), from Bun.password (argon2id) and bcrypt, and relay
 * through relay.routes to a small SMTP capture server started here.
 */
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { appendFileSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { createServer, connect, type AddressInfo, type Server, type Socket } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import nodemailer from "nodemailer";

declare const Deno: {
  test(def: { name: string; sanitizeOps?: boolean; sanitizeResources?: boolean; fn(t: TestContext): Promise<void> }): void;
  execPath(): string;
};
interface TestContext {
  step(name: string, fn: () => Promise<void>): Promise<boolean>;
}

const REPO = fileURLToPath(new URL("../../", import.meta.url));
/** Made by Bun.password.hash("secret-bob") (argon2id defaults) and ("secret-carol", bcrypt) on Bun 1.4. */
const BOB_ARGON2 = "$argon2id$v=19$m=65536,t=2,p=1$4bykF2QXKyVxE7WmhLqz6/wWAwpgNR6n3EB1UY/rqRg$KwxcHAKtyFi+0yUpLZGHY702neGd87/uN4WCAs09Ivw";
const CAROL_BCRYPT = "$2b$10$VWJ7O4m9EDABaDYtcBzhWOoh.YjXkCwb34iaK1lN.ofBklkX0nO3W";

function assert(cond: unknown, msg: string): asserts cond {
  if (!cond) throw new Error(msg);
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

async function waitFor<T>(what: string, f: () => T | undefined | null | false, ms = 20_000): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = f();
    if (v) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(50);
  }
}

async function freePort(): Promise<number> {
  const s = createServer();
  await new Promise<void>((r) => s.listen(0, "127.0.0.1", r));
  const port = (s.address() as AddressInfo).port;
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}

/** Resolves with the first line the server sends (its greeting), or rejects if the port does not answer. */
function greeting(port: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const s: Socket = connect(port, "127.0.0.1");
    let buf = "";
    s.setEncoding("latin1");
    s.on("data", (d: string) => {
      buf += d;
      if (buf.includes("\r\n")) {
        s.end("QUIT\r\n");
        resolve(buf.slice(0, buf.indexOf("\r\n")));
      }
    });
    s.on("error", reject);
    s.setTimeout(3000, () => {
      s.destroy();
      reject(new Error("no greeting"));
    });
  });
}

interface Captured {
  from: string;
  to: string[];
  data: string;
}

/** A minimal SMTP receiver (RFC 5321 §4.1): enough for ringmta's relay client, keeps what it receives. */
function captureServer(got: Captured[]): Server {
  return createServer((s) => {
    s.setEncoding("latin1");
    let buf = "";
    let cur: Captured = { from: "", to: [], data: "" };
    let inData = false;
    s.write("220 capture.test ESMTP\r\n");
    s.on("data", (d: string) => {
      buf += d;
      for (;;) {
        if (inData) {
          const end = buf.indexOf("\r\n.\r\n");
          if (end < 0) return;
          cur.data = buf.slice(0, end + 2);
          buf = buf.slice(end + 5);
          inData = false;
          got.push(cur);
          cur = { from: "", to: [], data: "" };
          s.write("250 2.0.0 captured\r\n");
          continue;
        }
        const nl = buf.indexOf("\r\n");
        if (nl < 0) return;
        const line = buf.slice(0, nl);
        buf = buf.slice(nl + 2);
        const verb = line.slice(0, 4).toUpperCase();
        if (verb === "EHLO") s.write("250-capture.test\r\n250-PIPELINING\r\n250 8BITMIME\r\n");
        else if (verb === "HELO") s.write("250 capture.test\r\n");
        else if (verb === "MAIL") (cur.from = line), s.write("250 2.1.0 ok\r\n");
        else if (verb === "RCPT") cur.to.push(line), s.write("250 2.1.5 ok\r\n");
        else if (verb === "DATA") (inData = true), s.write("354 go on\r\n");
        else if (verb === "QUIT") s.end("221 2.0.0 bye\r\n");
        else s.write("250 2.0.0 ok\r\n");
      }
    });
    s.on("error", () => {});
  });
}

function maildir(dataDir: string, domain: string, local: string): string[] {
  try {
    const d = join(dataDir, "mail", domain, local, "new");
    return readdirSync(d).map((n) => join(d, n));
  } catch {
    return [];
  }
}

function mailer(port: number, user: string, pass: string) {
  return nodemailer.createTransport({
    host: "127.0.0.1",
    port,
    secure: false,
    requireTLS: true,
    tls: { rejectUnauthorized: false },
    auth: { user, pass },
  });
}

Deno.test({
  name: "ringmta serves on Deno",
  // The server is a child process and the capture server lives across steps: Deno's leak checks do not apply.
  sanitizeOps: false,
  sanitizeResources: false,
  async fn(t) {
    const dir = mkdtempSync(join(tmpdir(), "ringmta-deno-"));
    const [mx, submission, capturePort, lb] = [await freePort(), await freePort(), await freePort(), await freePort()];
    const captured: Captured[] = [];
    const capture = captureServer(captured);
    await new Promise<void>((r) => capture.listen(capturePort, "127.0.0.1", r));
    const config = join(dir, "ringmta.toml");
    writeFileSync(
      config,
      `hostname = "mx.deno.test"
data_dir = "data"
[checks]                           # no DNS checks: this test/bench is not about them
spf = "off"
dkim = "off"
arc = "off"
dmarc = "off"
[tls]
cert = "server.crt"
key = "server.key"
[[listeners]]
name = "mx"
host = "127.0.0.1"
port = ${mx}
tls = "starttls"
auth = "optional"
[[listeners]]
name = "submission"
host = "127.0.0.1"
port = ${submission}
tls = "starttls"
auth = "required"
[[listeners]]
name = "lb"
host = "127.0.0.1"
port = ${lb}
tls = "starttls"
auth = "optional"
proxy_protocol = true
[local]
domains = ["example.test"]
users_file = "users.txt"
[relay.routes]
"remote.test" = "127.0.0.1:${capturePort}"
[delivery]
workers = 2
[metrics]
listen = ""
`,
    );
    const deno = Deno.execPath();
    const main = join(REPO, "src", "main.ts");
    let server: ChildProcess | null = null;
    let log = "";
    try {
      await t.step("user add on Deno writes a hash the server verifies", async () => {
        const r = spawnSync(deno, ["run", "-A", main, "user", "add", "alice@example.test", "--password-stdin", "--config", config], {
          cwd: dir,
          input: "secret-alice\n",
          encoding: "utf8",
        });
        assert(r.status === 0, `user add exited ${r.status}: ${r.stderr}`);
        const users = readFileSync(join(dir, "users.txt"), "utf8");
        assert(/^alice@example\.test:\$argon2id\$v=19\$m=65536,t=2,p=1\$/m.test(users), `users file: ${users}`);
        appendFileSync(join(dir, "users.txt"), `bob@example.test:${BOB_ARGON2}\ncarol@example.test:${CAROL_BCRYPT}\n`);
      });

      server = spawn(deno, ["run", "-A", main, "serve", "--config", config, "--log-format", "json"], {
        cwd: dir,
        stdio: ["ignore", "pipe", "pipe"],
      });
      server.stdout!.on("data", (b: Uint8Array) => (log += new TextDecoder().decode(b)));
      server.stderr!.on("data", (b: Uint8Array) => (log += new TextDecoder().decode(b)));
      const deadline = Date.now() + 30_000;
      for (;;) {
        if (server.exitCode !== null) throw new Error(`server exited ${server.exitCode}:\n${log}`);
        const g = await greeting(mx).catch(() => "");
        if (g.startsWith("220 ")) break;
        if (Date.now() > deadline) throw new Error(`no 220 on ${mx}:\n${log}`);
        await sleep(100);
      }

      await t.step("the listeners' accept backlog is at least 1024 (CONTRACT)", async () => {
        // ss prints the backlog of a listening socket in its Send-Q column.
        const r = spawnSync("ss", ["-Hltn", `sport = :${mx}`], { encoding: "utf8" });
        assert(r.status === 0, `ss failed: ${r.stderr}`);
        const backlog = Number(r.stdout.trim().split(/\s+/)[2]);
        assert(backlog >= 1024, `backlog ${backlog}: ${r.stdout}`);
      });

      await t.step("a plain message on mx lands in Maildir", async () => {
        const tr = nodemailer.createTransport({ host: "127.0.0.1", port: mx, secure: false, ignoreTLS: true });
        const info = await tr.sendMail({ from: "x@remote.test", to: "bob@example.test", subject: "plain", text: "plain body\n" });
        assert(/^250 /.test(info.response), info.response);
        const files = await waitFor("bob's Maildir", () => maildir(join(dir, "data"), "example.test", "bob").length === 1 && maildir(join(dir, "data"), "example.test", "bob"));
        const text = readFileSync(files[0], "latin1");
        assert(text.startsWith("Return-Path: <x@remote.test>\r\nDelivered-To: bob@example.test\r\n"), text);
        assert(text.includes("Subject: plain\r\n") && text.includes("plain body"), text);
      });

      await t.step("STARTTLS + AUTH on submission: Deno-made, Bun argon2id and bcrypt hashes all verify", async () => {
        for (const [user, pass] of [["alice", "secret-alice"], ["bob", "secret-bob"], ["carol", "secret-carol"]]) {
          const info = await mailer(submission, `${user}@example.test`, pass).sendMail({
            from: `${user}@example.test`,
            to: "alice@example.test",
            subject: `from ${user}`,
            text: `sent by ${user} over TLS\n`,
          });
          assert(/^250 /.test(info.response), info.response);
        }
        const files = await waitFor("alice's three messages", () => {
          const f = maildir(join(dir, "data"), "example.test", "alice");
          return f.length === 3 && f;
        });
        const received = files.map((f) => readFileSync(f, "latin1")).join("\n");
        for (const user of ["alice", "bob", "carol"]) assert(received.includes(`sent by ${user} over TLS`), received);
        // RFC 3848: "ESMTPSA" = ESMTP with STARTTLS and AUTH, in every one of the three.
        assert(received.match(/ with ESMTPSA id /g)?.length === 3, `not ESMTPSA in every trace: ${received}`);
      });

      await t.step("a wrong password gets 535 and nothing is delivered", async () => {
        const err = await mailer(submission, "alice@example.test", "wrong")
          .sendMail({ from: "alice@example.test", to: "bob@example.test", text: "x" })
          .then(() => null, (e: { responseCode?: number }) => e);
        assert(err !== null && err.responseCode === 535, `expected 535, got ${JSON.stringify(err)}`);
      });

      await t.step("PROXY v1 on a proxy_protocol listener: no banner without the header; with it, Received names the client", async () => {
        const talk = (first: string, until: RegExp): Promise<string> =>
          new Promise((resolve, reject) => {
            const s: Socket = connect(lb, "127.0.0.1");
            let buf = "";
            s.setEncoding("latin1");
            s.on("data", (d: string) => {
              buf += d;
              if (until.test(buf)) {
                s.end("QUIT\r\n");
                resolve(buf);
              }
            });
            s.on("close", () => resolve(buf));
            s.on("error", reject);
            s.setTimeout(10_000, () => {
              s.destroy();
              reject(new Error(`no answer; got ${JSON.stringify(buf)}`));
            });
            s.write(first);
          });
        const refused = await talk("EHLO no.header\r\n", /^$/);
        assert(refused === "", `expected no byte without a PROXY header, got ${JSON.stringify(refused)}`);
        const dialog = await talk(
          "PROXY TCP4 127.0.0.77 127.0.0.1 40000 25\r\nEHLO proxied.test\r\nMAIL FROM:<p@remote.test>\r\nRCPT TO:<bob@example.test>\r\nDATA\r\n" +
            "Subject: proxied\r\n\r\nvia proxy\r\n.\r\n",
          /\r\n250 [^\r\n]*\r\n250 [^\r\n]*\r\n354 [^\r\n]*\r\n250 /,
        );
        assert(dialog.startsWith("220 "), dialog);
        const files = await waitFor("the proxied message", () => {
          const f = maildir(join(dir, "data"), "example.test", "bob").filter((p) => readFileSync(p, "latin1").includes("via proxy"));
          return f.length === 1 && f;
        });
        const text = readFileSync(files[0], "latin1");
        assert(text.includes("[127.0.0.77]") && !text.includes("[127.0.0.1]"), text);
      });

      await t.step("relay.routes: mail for remote.test reaches the capture server", async () => {
        const info = await mailer(submission, "alice@example.test", "secret-alice").sendMail({
          from: "alice@example.test",
          to: "someone@remote.test",
          subject: "relayed",
          text: "relayed body\n",
        });
        assert(/^250 /.test(info.response), info.response);
        const got = await waitFor("the capture server", () => captured.length > 0 && captured[0], 30_000).catch((e: Error) => {
          throw new Error(`${e.message}; server log:\n${log}`);
        });
        assert(got.from.includes("<alice@example.test>"), got.from);
        assert(got.to.length === 1 && got.to[0]!.includes("<someone@remote.test>"), got.to.join(","));
        assert(got.data.includes("Subject: relayed\r\n") && got.data.includes("relayed body"), got.data);
      });
    } finally {
      if (server !== null && server.exitCode === null) {
        const exited = new Promise<number | null>((r) => server!.once("exit", (c) => r(c)));
        server.kill("SIGTERM");
        const code = await Promise.race([exited, sleep(15_000).then(() => -1)]);
        if (code === -1) server.kill("SIGKILL");
      }
      await new Promise<void>((r) => capture.close(() => r()));
      rmSync(dir, { recursive: true, force: true });
    }
  },
});
