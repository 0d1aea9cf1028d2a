/**
 * No open relay (CONTRACT "Guarantees"): an unauthenticated client outside relay.networks gets no non-local
 * recipient accepted, on any listener, with or without TLS.
 */
import { describe, expect, test } from "vitest";
import { SmtpClient, useServer } from "../helpers/index.ts";

const srv = useServer();

describe("relay denied", () => {
  test("mx, plaintext: 554 5.7.1 at RCPT for a remote domain", async () => {
    const c = await SmtpClient.connect(srv().ports.mx);
    await c.hello();
    expect((await c.cmd("MAIL FROM:<sender@remote.test>")).code).toBe(250);
    const r = await c.cmd("RCPT TO:<victim@remote.test>");
    expect([r.code, r.enhanced]).toEqual([554, "5.7.1"]);
    // A local-looking local part with a foreign domain is still foreign; source routes are not a way out.
    const r2 = await c.cmd("RCPT TO:<alice%remote.test@remote.test>");
    expect([r2.code, r2.enhanced]).toEqual([554, "5.7.1"]);
    c.destroy();
  });

  test("mx after STARTTLS: TLS alone grants no relay (554 5.7.1)", async () => {
    const c = await SmtpClient.connect(srv().ports.mx);
    await c.hello();
    expect((await c.startTls()).code).toBe(220);
    expect(c.tlsVersion).toMatch(/^TLSv1\.[23]$/);
    expect((await c.cmd("EHLO client.test")).code).toBe(250);
    expect((await c.cmd("MAIL FROM:<sender@remote.test>")).code).toBe(250);
    const r = await c.cmd("RCPT TO:<victim@remote.test>");
    expect([r.code, r.enhanced]).toEqual([554, "5.7.1"]);
    c.destroy();
  });

  test("submission after STARTTLS, unauthenticated: MAIL refused with 530 5.7.0, so no remote RCPT", async () => {
    const c = await SmtpClient.connect(srv().ports.submission);
    await c.hello();
    expect((await c.startTls()).code).toBe(220);
    const ehlo = await c.cmd("EHLO client.test");
    expect(ehlo.lines.some((l) => /^AUTH\b.*\bPLAIN\b/i.test(l))).toBe(true);
    const m = await c.cmd("MAIL FROM:<sender@remote.test>");
    expect([m.code, m.enhanced]).toEqual([530, "5.7.0"]);
    const r = await c.cmd("RCPT TO:<victim@remote.test>");
    expect(r.code).toBeGreaterThanOrEqual(500);
    c.destroy();
  });

  test("submissions (implicit TLS), unauthenticated: MAIL refused with 530 5.7.0, so no remote RCPT", async () => {
    const c = await SmtpClient.connect(srv().ports.submissions, { tls: true });
    expect(c.tlsVersion).toMatch(/^TLSv1\.[23]$/);
    const ehlo = await c.hello();
    expect(ehlo.lines.some((l) => /^STARTTLS$/i.test(l))).toBe(false);
    const m = await c.cmd("MAIL FROM:<sender@remote.test>");
    expect([m.code, m.enhanced]).toEqual([530, "5.7.0"]);
    const r = await c.cmd("RCPT TO:<victim@remote.test>");
    expect(r.code).toBeGreaterThanOrEqual(500);
    c.destroy();
  });
});
