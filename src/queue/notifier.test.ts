import { describe, expect, test } from "vitest";
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { localOutcome } from "../mail/index.ts";
import { fileDirectory } from "../directory/index.ts";
import { Policy } from "../policy/index.ts";
import { Notifier, openStored, recordOutcomes, recover, Spool, SyncBatcher } from "./index.ts";
import type { Notice } from "./index.ts";
import { localEnvelope } from "../../test/helpers/envelope.ts";
import { commitMessages } from "../../test/helpers/spool.ts";
import { tempDir } from "../../test/helpers/server.ts";

const policy = new Policy({
  directory: fileDirectory({ domains: ["example.test"], users: [{ address: "alice@example.test", hash: "" }], aliases: {} }),
  catchAll: false,
  relayNetworks: [],
});

/** The DSN items a Notifier committed through the real spool (read back as file items after recovery). */
async function withNotifier(dir: string, run: (n: Notifier, logged: string[]) => Promise<void>): Promise<string[]> {
  const ids: string[] = [];
  const logged: string[] = [];
  const spool = new Spool({ dir, onCommitted: (c) => ids.push(c.id) });
  const log = { info: (e: string) => logged.push(e), warn: (e: string) => logged.push(e) };
  const n = new Notifier({ queueDir: dir, hostname: "mx.test", maxAgeMs: 86_400_000, spool, routeOwn: (a) => policy.routeOwn(a), log });
  try {
    await run(n, logged);
  } finally {
    await spool.close();
  }
  recover(dir); // segment records out as <id>.msg
  return ids;
}

describe("Notifier: DSNs as our own mail", () => {
  test("a bounce to a remote sender is routed without relay permission or a login, with the null sender", async () => {
    const dir = tempDir("notifier");
    const [orig] = await commitMessages(dir, [{ body: "Subject: hi\r\n\r\nbody\r\n", envelope: localEnvelope(["bob@example.test"], { sender: "x@far.test" }) }], { asFiles: true });
    await recordOutcomes(dir, orig.id, [{ index: 0, attempts: 1, nextAttempt: 0, outcome: localOutcome("failed", 550, "5.1.1", "no such user") }], new SyncBatcher());
    const notices: Notice[] = [{ index: 0, action: "failed" }];
    const [dsnId] = await withNotifier(dir, (n) => n.notify(orig.id, notices));
    const dsn = openStored(dir, dsnId)!;
    expect(dsn.envelope.sender).toBe("");
    expect(dsn.envelope.recipients).toEqual([{ rcpt: "x@far.test", address: "x@far.test", route: { kind: "remote", domain: "far.test" } }]);
    expect(dsn.envelope.client.authUser).toBeUndefined();
    const text = Buffer.concat([...dsn.message.chunks()]).toString("utf8");
    expect(text).toContain("Action: failed\r\nStatus: 5.1.1\r\n");
    // Our own failure: no Remote-MTA, our own diagnostic type (RFC 3464 §2.3.5, §2.3.6).
    expect(text).not.toContain("Remote-MTA");
    expect(text).toContain("Diagnostic-Code: X-ringmta; 550 5.1.1 no such user\r\n");
  });

  test("a finished item found at start: the DSN from its recorded state, then the item leaves the spool", async () => {
    const dir = tempDir("notifier");
    const env = localEnvelope(["bob@example.test", "carol@example.test"], { sender: "alice@example.test" });
    env.recipients[1].notify = ["SUCCESS"];
    const [orig] = await commitMessages(dir, [{ body: "Subject: hi\r\n\r\n", envelope: env }], { asFiles: true });
    await recordOutcomes(
      dir,
      orig.id,
      [
        { index: 0, attempts: 3, nextAttempt: 0, outcome: { kind: "failed", code: 550, enhanced: "5.2.2", text: "mailbox full", remoteMta: "mx.far.test" } },
        { index: 1, attempts: 1, nextAttempt: 0, outcome: localOutcome("delivered", 250, "2.0.0", "delivered to maildir as x") },
      ],
      new SyncBatcher(),
    );
    const [dsnId] = await withNotifier(dir, (n) => n.bounceFinished(orig.id));
    expect(existsSync(join(dir, `${orig.id}.msg`))).toBe(false);
    const dsn = openStored(dir, dsnId)!;
    // A local sender's DSN lands in its own Maildir route.
    expect(dsn.envelope.recipients[0].route).toEqual({ kind: "local", domain: "example.test", localPart: "alice" });
    const text = Buffer.concat([...dsn.message.chunks()]).toString("utf8");
    expect(text).toContain("Final-Recipient: rfc822; bob@example.test\r\nAction: failed\r\nStatus: 5.2.2\r\nRemote-MTA: dns; mx.far.test\r\nDiagnostic-Code: smtp; 550 5.2.2 mailbox full\r\n");
    expect(text).toContain("Final-Recipient: rfc822; carol@example.test\r\nAction: delivered\r\nStatus: 2.0.0\r\n");
  });

  test("never a DSN to <>; a sender that leads nowhere is logged, nothing queued", async () => {
    const dir = tempDir("notifier");
    const [a, b] = await commitMessages(
      dir,
      [
        { body: "x\r\n", envelope: localEnvelope(["bob@example.test"], { sender: "" }) },
        { body: "x\r\n", envelope: localEnvelope(["bob@example.test"], { sender: "ghost@example.test" }) },
      ],
      { asFiles: true },
    );
    for (const id of [a.id, b.id]) {
      await recordOutcomes(dir, id, [{ index: 0, attempts: 1, nextAttempt: 0, outcome: localOutcome("failed", 550, "5.1.1", "no") }], new SyncBatcher());
    }
    let logged: string[] = [];
    const ids = await withNotifier(dir, async (n, l) => {
      logged = l;
      await n.notify(a.id, [{ index: 0, action: "failed" }]);
      await n.notify(b.id, [{ index: 0, action: "failed" }]);
    });
    expect(ids).toEqual([]);
    expect(logged).toEqual(["dsn.undeliverable"]);
    expect(readFileSync(join(dir, `${a.id}.msg`)).length).toBeGreaterThan(0);
  });
});
