/**
 * `certs generate --host NAME [--out DIR] [--rsa]` (CONTRACT "Commands") and the certificate generated at first
 * start when the configured files are absent (issue 3 §1), inspected with openssl.
 */
import { execFile } from "node:child_process";
import { existsSync, readFileSync, statSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, test } from "vitest";
import { BUN, HOSTNAME, MAIN, REPO, peerPath, peerTest, tempDir, useServer } from "../helpers/index.ts";

interface Run {
  code: number;
  out: string;
  err: string;
}

function run(cmd: string, args: string[], cwd = REPO): Promise<Run> {
  return new Promise((resolve) =>
    execFile(cmd, args, { cwd, timeout: 30_000 }, (err, out, errOut) =>
      resolve({ code: err ? (typeof err.code === "number" ? err.code : -1) : 0, out: String(out), err: String(errOut) }),
    ),
  );
}

const certs = (args: string[], cwd?: string): Promise<Run> => run(BUN, [MAIN, "certs", ...args], cwd);
const x509Text = async (file: string): Promise<string> => {
  const r = await run(peerPath("openssl")!, ["x509", "-in", file, "-noout", "-text"]);
  expect(r.code, r.err).toBe(0);
  return r.out;
};

describe("certs generate", () => {
  peerTest("openssl", "--host mx.example.test --out DIR: server.crt + server.key (0600), ECDSA P-256, CA:FALSE, SAN host", async () => {
    const out = join(tempDir(), "fresh", "dir");
    const r = await certs(["generate", "--host", "mx.example.test", "--out", out]);
    expect(r.code, r.err).toBe(0);
    const crt = join(out, "server.crt");
    const key = join(out, "server.key");
    expect(statSync(key).mode & 0o777).toBe(0o600);
    const text = await x509Text(crt);
    expect(text).toMatch(/Subject: CN\s*=\s*mx\.example\.test/);
    expect(text).toMatch(/CA:FALSE/);
    expect(text).toMatch(/DNS:mx\.example\.test/);
    expect(text).toMatch(/id-ecPublicKey/);
    expect(text).toMatch(/prime256v1|P-256/);
    expect(text).toMatch(/TLS Web Server Authentication/);
    // The key is the certificate's: openssl derives the same public key from both.
    const pub1 = await run(peerPath("openssl")!, ["pkey", "-in", key, "-pubout"]);
    const pub2 = await run(peerPath("openssl")!, ["x509", "-in", crt, "-noout", "-pubkey"]);
    expect(pub1.code, pub1.err).toBe(0);
    expect(pub1.out).toBe(pub2.out);
  });

  peerTest("openssl", "--rsa gives an RSA 2048-bit key", async () => {
    const out = tempDir();
    const r = await certs(["generate", "--host", "mx.example.test", "--out", out, "--rsa"]);
    expect(r.code, r.err).toBe(0);
    const text = await x509Text(join(out, "server.crt"));
    expect(text).toMatch(/rsaEncryption/);
    expect(text).toMatch(/Public-Key: \(2048 bit\)/);
    expect(text).toMatch(/CA:FALSE/);
    expect(statSync(join(out, "server.key")).mode & 0o777).toBe(0o600);
  });

  test("without --out it writes ./certs/ under the working directory", async () => {
    const cwd = tempDir();
    const r = await certs(["generate", "--host", "mx.example.test"], cwd);
    expect(r.code, r.err).toBe(0);
    expect(existsSync(join(cwd, "certs", "server.crt"))).toBe(true);
    expect(existsSync(join(cwd, "certs", "server.key"))).toBe(true);
  });

  test("bad usage exits 2 with one line on stderr", async () => {
    for (const args of [["generate"], ["generate", "--host"], ["frobnicate", "--host", "x.test"], ["generate", "--host", "bad host!"], ["generate", "--host", "x.test", "--bogus"]]) {
      const r = await certs(args, tempDir());
      expect(r.code, `certs ${args.join(" ")}: ${r.err}`).toBe(2);
      expect(r.err.trim().split("\n")).toHaveLength(1);
    }
  });
});

describe("first start without certificate files", () => {
  const srv = useServer();

  peerTest("openssl", "the server generates cert and key (key 0600), logs tls.generated, and serves that certificate", async () => {
    const crt = join(srv().dir, "server.crt");
    const key = join(srv().dir, "server.key");
    expect(srv().logs()).toMatch(/tls\.generated/);
    expect(statSync(key).mode & 0o777).toBe(0o600);
    const text = await x509Text(crt);
    expect(text).toContain(`DNS:${HOSTNAME}`);
    expect(text).toMatch(/CA:FALSE/);
    // The certificate on the wire is the one on disk.
    const r = await new Promise<Run>((resolve) => {
      const p = execFile(
        peerPath("openssl")!,
        ["s_client", "-connect", `127.0.0.1:${srv().ports.submissions}`, "-showcerts"],
        { timeout: 20_000 },
        (err, out, errOut) => resolve({ code: err ? 1 : 0, out: String(out), err: String(errOut) }),
      );
      p.stdin!.end("QUIT\n");
    });
    const served = /-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/.exec(r.out)?.[0];
    expect(served, r.out + r.err).toBeDefined();
    expect(readFileSync(crt, "utf8")).toContain(served!);
  });
});
