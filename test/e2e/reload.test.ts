/**
 * Issue 6 §5 / CONTRACT "Guarantees": SIGHUP re-reads the config. A broken one (TOML syntax error, invalid value)
 * is refused with a `config.reload_failed` log line and the old one stays in force; a good one applies to new
 * connections (a new alias, a new local domain, a lower max_recipients) without a restart: same pid, and a
 * connection opened before the reload is not dropped.
 */
import { readFileSync, writeFileSync } from "node:fs";
import { parse, stringify } from "smol-toml";
import { beforeAll, describe, expect, test } from "vitest";
import { SmtpClient, countMessageId, sendMail, simpleMessage, uniqueId, useServer, waitFor } from "../helpers/index.ts";
import { CaptureServer } from "../helpers/capture-server.ts";

const srv = useServer();

interface LogLine {
  event: string;
  [k: string]: unknown;
}

function events(name: string): LogLine[] {
  const out: LogLine[] = [];
  for (const l of srv().logs().split("\n")) {
    if (!l.startsWith("{")) continue;
    const j = JSON.parse(l) as LogLine;
    if (j.event === name) out.push(j);
  }
  return out;
}

/** Writes `text` as the config, sends SIGHUP and waits for the reload's verdict line; returns it. */
async function hup(text: string, verdict: "config.reloaded" | "config.reload_failed"): Promise<LogLine> {
  const seen = events(verdict).length;
  const otherVerdict = verdict === "config.reloaded" ? "config.reload_failed" : "config.reloaded";
  const otherSeen = events(otherVerdict).length;
  writeFileSync(srv().configPath, text);
  process.kill(srv().pid, "SIGHUP");
  await waitFor(() => events(verdict).length > seen || events(otherVerdict).length > otherSeen, 10_000);
  expect(events(otherVerdict).length, `unexpected ${otherVerdict}:\n${srv().logs()}`).toBe(otherSeen);
  return events(verdict).at(-1)!;
}

/** A complete transaction on a new mx connection; returns the RCPT codes and the final reply code. */
async function send(to: string[], mid: string): Promise<{ rcpts: number[]; final: number | null }> {
  const c = await SmtpClient.connect(srv().ports.mx);
  try {
    await c.hello();
    const r = await sendMail(c, "sender@remote.test", to, simpleMessage({ messageId: mid, to: to[0] }));
    await c.cmd("QUIT");
    return { rcpts: r.rcpts.map((x) => x.code), final: r.final?.code ?? null };
  } finally {
    c.destroy();
  }
}

async function expectStillAccepting(): Promise<void> {
  const mid = uniqueId("still");
  expect(await send(["alice@example.test"], mid)).toEqual({ rcpts: [250], final: 250 });
  await waitFor(() => countMessageId(srv().dataDir, "alice@example.test", mid) === 1, 15_000);
}

describe("SIGHUP reload", () => {
  let original = "";
  beforeAll(() => {
    original = readFileSync(srv().configPath, "utf8");
  });

  test("a TOML syntax error is refused, logged with the problem, and the old config keeps serving", async () => {
    const pid = srv().pid;
    const line = await hup(original + "\nthis is = = not toml\n", "config.reload_failed");
    expect(JSON.stringify(line.errors)).toMatch(/syntax error at line \d+/i);
    expect(srv().pid).toBe(pid);
    expect(srv().proc.exitCode).toBeNull();
    await expectStillAccepting();
  });

  test("an invalid value is refused with its key path, and the old config keeps serving", async () => {
    const cfg = parse(original) as Record<string, Record<string, unknown>>;
    cfg.limits!.max_recipients = -1;
    const line = await hup(stringify(cfg), "config.reload_failed");
    expect(JSON.stringify(line.errors)).toContain("limits.max_recipients");
    // The refused value is not in force: five recipients (the running limit) are still accepted.
    const mid = uniqueId("oldlimit");
    const five = ["alice@example.test", "bob@example.test", "postmaster@example.test", "team@example.test", "alice@example.test"];
    expect((await send(five, mid)).final).toBe(250);
    await expectStillAccepting();
  });

  test("a good config applies without a restart: new alias, new local domain, lower max_recipients; an open connection survives", async () => {
    const pid = srv().pid;
    // Opened before the reload and mid-transaction when it happens.
    const open = await SmtpClient.connect(srv().ports.mx);
    await open.hello();
    expect((await open.cmd("MAIL FROM:<early@remote.test>")).code).toBe(250);

    // Before: sales@ is unknown and other.test is not ours.
    const c0 = await SmtpClient.connect(srv().ports.mx);
    await c0.hello();
    expect((await c0.cmd("MAIL FROM:<sender@remote.test>")).code).toBe(250);
    expect((await c0.cmd("RCPT TO:<sales@example.test>")).code).toBe(550);
    expect((await c0.cmd("RCPT TO:<hello@other.test>")).code).toBe(554);
    await c0.cmd("QUIT");
    c0.destroy();

    const cfg = parse(original) as Record<string, Record<string, unknown>>;
    const local = cfg.local as { domains: string[]; aliases: Record<string, string[]> };
    local.domains = [...local.domains, "other.test"];
    local.aliases = { ...local.aliases, "sales@example.test": ["bob@example.test"], "hello@other.test": ["alice@example.test"] };
    cfg.limits!.max_recipients = 2;
    await hup(stringify(cfg), "config.reloaded");
    expect(srv().pid).toBe(pid);

    // The new alias and the new domain work on a new connection.
    const m1 = uniqueId("sales");
    expect(await send(["sales@example.test"], m1)).toEqual({ rcpts: [250], final: 250 });
    await waitFor(() => countMessageId(srv().dataDir, "bob@example.test", m1) === 1, 15_000);
    const m2 = uniqueId("other");
    expect(await send(["hello@other.test"], m2)).toEqual({ rcpts: [250], final: 250 });
    await waitFor(() => countMessageId(srv().dataDir, "alice@example.test", m2) === 1, 15_000);

    // The lower limit: the third recipient gets 452 4.5.3 on a new connection.
    const c = await SmtpClient.connect(srv().ports.mx);
    await c.hello();
    expect((await c.cmd("MAIL FROM:<sender@remote.test>")).code).toBe(250);
    expect((await c.cmd("RCPT TO:<alice@example.test>")).code).toBe(250);
    expect((await c.cmd("RCPT TO:<bob@example.test>")).code).toBe(250);
    const third = await c.cmd("RCPT TO:<postmaster@example.test>");
    expect([third.code, third.enhanced]).toEqual([452, "4.5.3"]);
    await c.cmd("QUIT");
    c.destroy();

    // The connection from before the reload is still up and finishes its transaction.
    expect(open.closedYet).toBe(false);
    const m3 = uniqueId("early");
    expect((await open.cmd("RCPT TO:<bob@example.test>")).code).toBe(250);
    expect((await open.cmd("DATA")).code).toBe(354);
    await open.send(Buffer.concat([simpleMessage({ messageId: m3 }), Buffer.from(".\r\n")]));
    expect((await open.readReply()).code).toBe(250);
    await open.cmd("QUIT");
    open.destroy();
    await waitFor(() => countMessageId(srv().dataDir, "bob@example.test", m3) === 1, 15_000);
    expect(srv().pid).toBe(pid);
  });

  test("a changed relay.routes reaches the delivery workers: mail for the domain goes to the new host", async () => {
    const a = await CaptureServer.start();
    const b = await CaptureServer.start();
    try {
      const cfg = parse(original) as Record<string, Record<string, unknown>>;
      cfg.relay = { ...(cfg.relay ?? {}), networks: ["127.0.0.0/8"], routes: { "routed.test": `127.0.0.1:${a.port}` } };
      await hup(stringify(cfg), "config.reloaded");
      const m1 = uniqueId("route-a");
      expect(await send(["x@routed.test"], m1)).toEqual({ rcpts: [250], final: 250 });
      await waitFor(() => a.messages.some((m) => m.data.includes(m1)), 15_000);

      cfg.relay = { ...cfg.relay, routes: { "routed.test": `127.0.0.1:${b.port}` } };
      await hup(stringify(cfg), "config.reloaded");
      const m2 = uniqueId("route-b");
      expect(await send(["x@routed.test"], m2)).toEqual({ rcpts: [250], final: 250 });
      await waitFor(() => b.messages.some((m) => m.data.includes(m2)), 15_000);
      expect(a.messages.some((m) => m.data.includes(m2))).toBe(false);
    } finally {
      await hup(original, "config.reloaded");
      await a.close();
      await b.close();
    }
  });
});
