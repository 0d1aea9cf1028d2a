/**
 * Certificate reload on SIGHUP (CONTRACT "Guarantees", issue 3 §4): new STARTTLS handshakes and new implicit-TLS
 * connections get the new certificate, connections opened before the reload stay usable, the pid stays the same.
 */
import { execFile } from "node:child_process";
import { X509Certificate } from "node:crypto";
import { copyFileSync, readFileSync } from "node:fs";
import { connect as netConnect } from "node:net";
import { join } from "node:path";
import { connect as tlsConnect, type PeerCertificate, type TLSSocket } from "node:tls";
import { expect, test } from "vitest";
import { BUN, HOSTNAME, MAIN, REPO, SmtpClient, tempDir, useServer, waitFor } from "../helpers/index.ts";

const srv = useServer();

interface Seen {
  cn: string;
  fingerprint256: string;
}

const seen = (c: PeerCertificate): Seen => ({ cn: String(c.subject.CN), fingerprint256: c.fingerprint256 });

/** Implicit TLS: the certificate the listener presents to a new connection. */
function implicitCert(port: number): Promise<Seen> {
  return new Promise((resolve, reject) => {
    const s = tlsConnect({ host: "127.0.0.1", port, rejectUnauthorized: false });
    s.once("secureConnect", () => {
      resolve(seen(s.getPeerCertificate()));
      s.destroy();
    });
    s.once("error", reject);
  });
}

/** STARTTLS (RFC 3207): greeting, EHLO, STARTTLS, then the certificate of the handshake. */
function starttlsCert(port: number): Promise<Seen> {
  return new Promise((resolve, reject) => {
    const sock = netConnect({ host: "127.0.0.1", port });
    let buf = "";
    let step = 0;
    const timer = setTimeout(() => {
      sock.destroy();
      reject(new Error(`STARTTLS dialogue stalled at step ${step}: ${JSON.stringify(buf)}`));
    }, 10_000);
    sock.on("error", reject);
    sock.on("data", (b: Buffer) => {
      buf += b.toString("latin1");
      // Act on each complete final reply line ("NNN " ... CRLF).
      for (let m = /^(\d{3}) [^\n]*\n/m.exec(buf); m; m = /^(\d{3}) [^\n]*\n/m.exec(buf)) {
        buf = buf.slice(m.index + m[0].length);
        step++;
        if (step === 1) sock.write("EHLO client.test\r\n");
        else if (step === 2) sock.write("STARTTLS\r\n");
        else if (step === 3) {
          if (m[1] !== "220") return reject(new Error(`STARTTLS refused: ${m[0]}`));
          sock.removeAllListeners("data");
          const t: TLSSocket = tlsConnect({ socket: sock, rejectUnauthorized: false });
          t.once("secureConnect", () => {
            clearTimeout(timer);
            resolve(seen(t.getPeerCertificate()));
            t.destroy();
          });
          t.once("error", reject);
          return;
        }
      }
    });
  });
}

function certsGenerate(host: string, out: string): Promise<void> {
  return new Promise((resolve, reject) =>
    execFile(BUN, [MAIN, "certs", "generate", "--host", host, "--out", out], { cwd: REPO, timeout: 30_000 }, (err, _o, e) =>
      err ? reject(new Error(`certs generate: ${err.message}\n${e}`)) : resolve(),
    ),
  );
}

test("SIGHUP with a new certificate: new STARTTLS and implicit-TLS connections see it, open ones keep working", async () => {
  const s = srv();
  const pid = s.pid;
  const oldFp = new X509Certificate(readFileSync(join(s.dir, "server.crt"))).fingerprint256;
  expect(await starttlsCert(s.ports.mx)).toEqual({ cn: HOSTNAME, fingerprint256: oldFp });
  expect(await implicitCert(s.ports.submissions)).toEqual({ cn: HOSTNAME, fingerprint256: oldFp });

  // Connections opened before the reload, in the middle of a session.
  const openStarttls = await SmtpClient.connect(s.ports.mx);
  await openStarttls.hello();
  expect((await openStarttls.startTls()).code).toBe(220);
  expect((await openStarttls.cmd("EHLO client.test")).code).toBe(250);
  const openImplicit = await SmtpClient.connect(s.ports.submissions, { tls: true });
  expect((await openImplicit.hello()).code).toBe(250);
  const openPlain = await SmtpClient.connect(s.ports.mx);
  expect((await openPlain.hello()).code).toBe(250);

  const out = tempDir();
  await certsGenerate("other.test", out);
  const newFp = new X509Certificate(readFileSync(join(out, "server.crt"))).fingerprint256;
  expect(newFp).not.toBe(oldFp);
  copyFileSync(join(out, "server.crt"), join(s.dir, "server.crt"));
  copyFileSync(join(out, "server.key"), join(s.dir, "server.key"));
  const reloads = (): number => s.logs().split("config.reloaded").length - 1;
  const before = reloads();
  process.kill(pid, "SIGHUP");
  await waitFor(() => reloads() > before, 10_000);

  const want = { cn: "other.test", fingerprint256: newFp };
  await waitFor(async () => {
    expect(await implicitCert(s.ports.submissions)).toEqual(want);
    return true;
  }, 10_000);
  expect(await starttlsCert(s.ports.mx)).toEqual(want);
  expect(await starttlsCert(s.ports.submission)).toEqual(want);
  // Several new implicit-TLS connections in a row all get the new one (no old listener still accepting).
  for (let i = 0; i < 5; i++) expect(await implicitCert(s.ports.submissions)).toEqual(want);

  // The connections from before the reload still answer, and can still run a transaction.
  expect((await openStarttls.cmd("NOOP")).code).toBe(250);
  expect((await openStarttls.cmd("MAIL FROM:<sender@remote.test>")).code).toBe(250);
  expect((await openStarttls.cmd("RCPT TO:<alice@example.test>")).code).toBe(250);
  expect((await openImplicit.cmd("NOOP")).code).toBe(250);
  // A plaintext session from before the reload can still upgrade, and then gets the new certificate.
  expect((await openPlain.cmd("NOOP")).code).toBe(250);
  expect((await openPlain.startTls()).code).toBe(220);
  expect((await openPlain.cmd("EHLO client.test")).code).toBe(250);
  for (const c of [openStarttls, openImplicit, openPlain]) c.destroy();

  // Same process: reloaded, not restarted.
  expect(s.pid).toBe(pid);
  expect(s.proc.exitCode).toBeNull();
});
