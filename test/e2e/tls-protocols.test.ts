/**
 * CONTRACT "Guarantees": every listener accepts TLS 1.2 and 1.3 only. openssl s_client forced to one version,
 * against the STARTTLS (mx) and the implicit-TLS (submissions) listener. OpenSSL 3 refuses TLS 1.0/1.1 on its
 * own at the default security level, so the old versions are offered with @SECLEVEL=0 — and a control run
 * against `openssl s_server` proves this client really speaks them, so a failure here is the server's refusal.
 */
import { execFile, spawn } from "node:child_process";
import { join } from "node:path";
import { afterAll, describe, expect } from "vitest";
import { canConnect, freePorts, peerPath, peerTest, sleep, useServer } from "../helpers/index.ts";

const srv = useServer();

interface Run {
  code: number;
  out: string;
}

function sClient(args: string[]): Promise<Run> {
  return new Promise((resolve) => {
    const p = execFile(peerPath("openssl")!, ["s_client", ...args], { timeout: 20_000 }, (err, stdout, stderr) =>
      resolve({ code: err ? (typeof err.code === "number" ? err.code : -1) : 0, out: String(stdout) + String(stderr) }),
    );
    p.stdin!.end("QUIT\n");
  });
}

/**
 * The version s_client agreed on, or null when no cipher was agreed ("Cipher is (NONE)"). The SSL-Session block's
 * "Protocol :" names it; with TLS 1.3 that block may be missing (it waits for a session ticket), and then the
 * "New, TLSv1.3, Cipher is …" line does (for older versions that line names the cipher's version instead).
 */
function negotiated(out: string): string | null {
  const m = /^New, (\S+), Cipher is (\S+)/m.exec(out);
  if (!m || m[2] === "(NONE)") return null;
  return /^\s*Protocol\s*:\s*(\S+)/m.exec(out)?.[1] ?? m[1]!;
}

const OLD = ["DEFAULT:@SECLEVEL=0"];
const VERSIONS: Array<[flag: string, name: string, ok: boolean]> = [
  ["-tls1", "TLSv1", false],
  ["-tls1_1", "TLSv1.1", false],
  ["-tls1_2", "TLSv1.2", true],
  ["-tls1_3", "TLSv1.3", true],
];

const started: Array<{ kill(): void }> = [];
afterAll(() => {
  for (const p of started) p.kill();
});

describe("control: this openssl client can speak TLS 1.0 and 1.1", () => {
  for (const [flag, name] of VERSIONS.filter((v) => !v[2])) {
    peerTest("openssl", `s_client ${flag} @SECLEVEL=0 completes ${name} with an s_server that allows it`, async () => {
      const [port] = await freePorts(1);
      const dir = srv().dir;
      const server = spawn(peerPath("openssl")!, [
        "s_server", "-accept", `127.0.0.1:${port}`, "-cert", join(dir, "server.crt"), "-key", join(dir, "server.key"),
        flag, "-cipher", OLD[0]!, "-quiet",
      ], { stdio: "ignore" });
      started.push(server);
      for (let i = 0; i < 50 && !(await canConnect(port!)); i++) await sleep(100);
      const r = await sClient(["-connect", `127.0.0.1:${port}`, flag, "-cipher", OLD[0]!]);
      server.kill();
      expect(negotiated(r.out), r.out).toBe(name);
    });
  }
});

for (const listener of ["mx", "submissions"] as const) {
  describe(`${listener} (${listener === "mx" ? "STARTTLS" : "implicit TLS"})`, () => {
    for (const [flag, name, ok] of VERSIONS) {
      peerTest("openssl", `s_client ${flag}: ${ok ? "handshake succeeds" : "handshake fails"}`, async () => {
        const args = ["-connect", `127.0.0.1:${srv().ports[listener]}`, flag, "-cipher", OLD[0]!];
        if (listener === "mx") args.push("-starttls", "smtp");
        const r = await sClient(args);
        if (ok) {
          expect(negotiated(r.out), r.out).toBe(name);
        } else {
          expect(r.code, r.out).not.toBe(0);
          expect(negotiated(r.out), r.out).toBeNull();
          // The refusal comes from the server: a protocol_version alert (RFC 8446 §6.2, alert 70).
          expect(r.out).toMatch(/alert protocol version/);
        }
      });
    }
  });
}

/** The cipher s_client agreed on, or null. */
function cipherOf(out: string): string | null {
  const m = /^New, \S+, Cipher is (\S+)/m.exec(out);
  return m && m[1] !== "(NONE)" ? m[1]! : null;
}

for (const listener of ["mx", "submissions"] as const) {
  describe(`${listener}: TLS 1.2 cipher suites (modern, the server's order)`, () => {
    const base = (): string[] => {
      const a = ["-connect", `127.0.0.1:${srv().ports[listener]}`, "-tls1_2"];
      return listener === "mx" ? [...a, "-starttls", "smtp"] : a;
    };

    peerTest("openssl", "suites without forward secrecy or AEAD (AES128-SHA, AES256-GCM-SHA384, ECDHE-ECDSA-AES128-SHA) are refused", async () => {
      for (const suite of ["AES128-SHA", "AES256-GCM-SHA384", "ECDHE-ECDSA-AES128-SHA", "ECDHE-ECDSA-AES256-SHA384"]) {
        const r = await sClient([...base(), "-cipher", `${suite}:@SECLEVEL=0`]);
        expect(cipherOf(r.out), `${suite}: ${r.out}`).toBeNull();
      }
    });

    peerTest("openssl", "the server's preference wins over the client's order", async () => {
      // The client prefers CHACHA20, then AES-256; the server's list starts with AES-128-GCM.
      const client = "ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-ECDSA-AES128-GCM-SHA256";
      const r = await sClient([...base(), "-cipher", client]);
      expect(cipherOf(r.out), r.out).toBe("ECDHE-ECDSA-AES128-GCM-SHA256");
    });
  });
}
