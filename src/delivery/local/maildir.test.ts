import { describe, expect, test } from "vitest";
import { existsSync, mkdirSync, readdirSync, readFileSync, renameSync, statSync, writeFileSync } from "node:fs";
import { hostname } from "node:os";
import { join } from "node:path";
import { replyLine } from "../../mail/index.ts";
import type { Envelope } from "../../mail/index.ts";
import { openStored, parseToken, SegmentReader, storedFromItem } from "../../queue/index.ts";
import { commitMessages } from "../../../test/helpers/spool.ts";
import { tempDir } from "../../../test/helpers/server.ts";
import { MaildirCourier, maildirHostname, maildirName, validFolder } from "./index.ts";
import { localEnvelope } from "../../../test/helpers/envelope.ts";

const temp = () => tempDir("ringmta-maildir-");

const envelope = (sender: string, rcpts: string[]): Envelope => localEnvelope(rcpts, { sender });

async function stored(root: string, body: Uint8Array, sender: string, rcpts: string[]) {
  const dir = join(root, "queue");
  const [c] = await commitMessages(dir, [{ body, envelope: envelope(sender, rcpts) }], { asFiles: true });
  return openStored(dir, c!.id)!;
}

/** A segment item as a worker reads it (one pread of its record). */
function storedFromRecord(dir: string, ref: string) {
  const { id, seg, offset } = parseToken(ref);
  const segments = new SegmentReader(dir);
  try {
    return storedFromItem(segments.read(seg!, offset, id)!, id);
  } finally {
    segments.close();
  }
}

const RECEIVED = "Received: from c.test ([127.0.0.1]) by mx.test with ESMTP id X; Mon, 1 Jan 2024 00:00:00 +0000\r\n";

describe("MaildirCourier", () => {
  test("writes Return-Path + Delivered-To, then the stored bytes unchanged; 0600 files, 0700 dirs", async () => {
    const root = temp();
    const body = new TextEncoder().encode(RECEIVED + "Subject: héllo\r\n\r\nline\r\n.. not unstuffed here\r\n");
    const item = await stored(root, body, "alice@example.test", ["bob@example.test", "carol@other.test"]);
    const courier = new MaildirCourier({ mailDir: join(root, "mail"), hostname: "mx.test" });
    const out = await courier.deliver(item.message, item.envelope.recipients);
    expect(out.map((o) => o.kind)).toEqual(["delivered", "delivered"]);
    const box = join(root, "mail", "example.test", "bob");
    const files = readdirSync(join(box, "new"));
    expect(files.length).toBe(1);
    const content = readFileSync(join(box, "new", files[0]));
    const prefix = "Return-Path: <alice@example.test>\r\nDelivered-To: bob@example.test\r\n";
    expect(content.equals(Buffer.concat([Buffer.from(prefix), Buffer.from(body)]))).toBe(true);
    expect(files[0]).toBe(maildirName(item.envelope.arrival, item.id, 0, "mx.test", content.length));
    expect(files[0]).toMatch(new RegExp(`^\\d+\\.R${item.id}_0\\.mx\\.test,S=${content.length}$`));
    expect(statSync(join(box, "new", files[0])).mode & 0o777).toBe(0o600);
    expect(statSync(box).mode & 0o777).toBe(0o700);
    expect(readdirSync(join(box, "tmp"))).toEqual([]);
    expect(readdirSync(join(root, "mail", "other.test", "carol", "new")).length).toBe(1);
  });

  test("null sender gives Return-Path: <>, and a large message is copied byte-exact", async () => {
    const root = temp();
    const big = Buffer.alloc(300_000);
    for (let i = 0; i < big.length; i++) big[i] = 32 + (i % 90);
    const item = await stored(root, big, "", ["bob@example.test"]);
    const out = await new MaildirCourier({ mailDir: join(root, "mail"), hostname: "h" }).deliver(
      item.message,
      item.envelope.recipients,
    );
    expect(out[0].kind).toBe("delivered");
    const dir = join(root, "mail", "example.test", "bob", "new");
    const content = readFileSync(join(dir, readdirSync(dir)[0]));
    const prefix = Buffer.from("Return-Path: <>\r\nDelivered-To: bob@example.test\r\n");
    expect(content.equals(Buffer.concat([prefix, big]))).toBe(true);
  });

  test("redelivery of the same id and index gives one file, also after a reader moved it to cur/", async () => {
    const root = temp();
    const item = await stored(root, new TextEncoder().encode("Subject: x\r\n\r\nx\r\n"), "a@b.test", ["bob@example.test"]);
    const courier = new MaildirCourier({ mailDir: join(root, "mail"), hostname: "mx.test" });
    const box = join(root, "mail", "example.test", "bob");
    expect((await courier.deliver(item.message, item.envelope.recipients))[0].kind).toBe("delivered");
    // Same id+index again (say the process died before recording the outcome): EEXIST counts as delivered.
    expect((await courier.deliver(item.message, item.envelope.recipients))[0].kind).toBe("delivered");
    expect(readdirSync(join(box, "new")).length).toBe(1);
    expect(readdirSync(join(box, "tmp"))).toEqual([]);
    // A reader (Dovecot) moves it to cur/ and adds flags; a recovered attempt must still find it.
    const [name] = readdirSync(join(box, "new"));
    renameSync(join(box, "new", name), join(box, "cur", `${name}:2,S`));
    const again = await new MaildirCourier({ mailDir: join(root, "mail"), hostname: "mx.test" }).deliver(
      item.message,
      item.envelope.recipients,
      { recheck: true },
    );
    expect(again[0].kind).toBe("delivered");
    expect(readdirSync(join(box, "new"))).toEqual([]);
    expect(readdirSync(join(box, "cur"))).toEqual([`${name}:2,S`]);
  });

  test("an I/O error is a deferred outcome with a 4.3.0 reply, never a throw", async () => {
    const root = temp();
    const item = await stored(root, new TextEncoder().encode("x\r\n"), "a@b.test", ["bob@example.test"]);
    const box = join(root, "mail", "example.test", "bob");
    mkdirSync(join(box, "tmp"), { recursive: true });
    writeFileSync(join(box, "new"), "a file where new/ should be"); // works as root too, unlike a chmod
    const out = await new MaildirCourier({ mailDir: join(root, "mail"), hostname: "mx.test" }).deliver(
      item.message,
      item.envelope.recipients,
    );
    expect(out[0].kind).toBe("deferred");
    expect(replyLine(out[0])).toMatch(/^451 4\.3\.0 maildir delivery to bob@example\.test failed: E[A-Z]+$/);
    expect(readdirSync(join(box, "tmp"))).toEqual([]);
  });

  test("header fields prepended by the inbound stages come first, before our Received line; segment and file items alike", async () => {
    for (const asFiles of [true, false]) {
      const root = temp();
      const dir = join(root, "queue");
      const body = RECEIVED + "Subject: x\r\n\r\nline\r\n";
      const prepend = "Authentication-Results: mx.test; spf=pass\r\nX-Test: 1\r\n";
      const [c] = await commitMessages(dir, [{ body, envelope: envelope("a@b.test", ["bob@example.test"]), prepend }], { asFiles });
      const item = asFiles ? openStored(dir, c!.id)! : storedFromRecord(dir, c!.ref);
      expect(item.message.size).toBe(prepend.length + body.length);
      expect(await new MaildirCourier({ mailDir: join(root, "mail"), hostname: "h" }).deliver(item.message, item.envelope.recipients)).toMatchObject([{ kind: "delivered" }]);
      const box = join(root, "mail", "example.test", "bob", "new");
      const [name] = readdirSync(box);
      const content = readFileSync(join(box, name), "utf8");
      expect(content).toBe(`Return-Path: <a@b.test>\r\nDelivered-To: bob@example.test\r\n${prepend}${body}`);
      expect(name).toMatch(new RegExp(`,S=${Buffer.byteLength(content)}$`));
    }
  });

  test("a message for a folder lands in the Maildir++ folder (.Junk), created 0700 with its marker", async () => {
    const root = temp();
    const dir = join(root, "queue");
    const [c] = await commitMessages(dir, [{ body: "Subject: spam\r\n\r\n", envelope: localEnvelope(["bob@example.test"], { folder: ".Junk" }) }], { asFiles: true });
    const item = openStored(dir, c!.id)!;
    expect(item.envelope.folder).toBe(".Junk");
    const out = await new MaildirCourier({ mailDir: join(root, "mail"), hostname: "h" }).deliver(item.message, item.envelope.recipients);
    expect(out[0].kind).toBe("delivered");
    const box = join(root, "mail", "example.test", "bob");
    expect(readdirSync(join(box, ".Junk", "new")).length).toBe(1);
    expect(readdirSync(join(box, "new"))).toEqual([]);
    for (const d of [box, join(box, ".Junk"), join(box, ".Junk", "cur")]) expect(statSync(d).mode & 0o777).toBe(0o700);
    expect(statSync(join(box, ".Junk", "maildirfolder")).isFile()).toBe(true);
    // Exactly once in the folder too: a re-check finds the copy.
    expect((await new MaildirCourier({ mailDir: join(root, "mail"), hostname: "h" }).deliver(item.message, item.envelope.recipients, { recheck: true }))[0].kind).toBe("delivered");
    expect(readdirSync(join(box, ".Junk", "new")).length).toBe(1);
  });

  test("folder names are strict: one level, a dot, then [A-Za-z0-9_-]; anything else fails the recipient", async () => {
    for (const ok of [".Junk", ".Spam_2", ".a-b"]) expect(validFolder(ok)).toBe(true);
    for (const bad of ["Junk", ".", "..", "./x", ".a/b", ".a.b", ".Jünk", "", ".a\n"]) expect(validFolder(bad)).toBe(false);
    const root = temp();
    const dir = join(root, "queue");
    const [c] = await commitMessages(dir, [{ body: "x\r\n", envelope: localEnvelope(["bob@example.test"], { folder: "../../etc" }) }], { asFiles: true });
    const item = openStored(dir, c!.id)!;
    const out = await new MaildirCourier({ mailDir: join(root, "mail"), hostname: "h" }).deliver(item.message, item.envelope.recipients);
    expect(out[0]).toMatchObject({ kind: "failed", code: 554, enhanced: "5.3.5" });
    expect(existsSync(join(root, "mail", "example.test", "bob"))).toBe(false);
  });

  test("hostname escapes / and : as Maildir requires", () => {
    expect(maildirHostname("a/b:c")).toBe("a\\057b\\072c");
    expect(maildirHostname(hostname())).not.toMatch(/[/:]/);
  });
});

describe("issue 15: addresses in RFC 5321 form in the trace fields", () => {
  test("Return-Path and Delivered-To keep a quoted local part quoted (stored quoted or, from older items, not)", async () => {
    const root = temp();
    const env = localEnvelope([], { sender: '"s p"@example.test' });
    env.recipients = [
      { rcpt: '"x>y"@example.test', address: '"x>y"@example.test', route: { kind: "local", domain: "example.test", localPart: "x>y" } },
      { rcpt: "a b@example.test", address: "a b@example.test", route: { kind: "local", domain: "example.test", localPart: "a b" } },
      { rcpt: '"q\\"z"@example.test', address: '"q\\"z"@example.test', route: { kind: "local", domain: "example.test", localPart: 'q"z' } },
    ];
    const dir = join(root, "queue");
    const [c] = await commitMessages(dir, [{ body: new TextEncoder().encode("Subject: x\r\n\r\nb\r\n"), envelope: env }], { asFiles: true });
    const item = openStored(dir, c!.id)!;
    const out = await new MaildirCourier({ mailDir: join(root, "mail"), hostname: "h" }).deliver(item.message, item.envelope.recipients);
    expect(out.map((o) => o.kind)).toEqual(["delivered", "delivered", "delivered"]);
    const head = (lp: string): string => {
      const d = join(root, "mail", "example.test", lp, "new");
      return readFileSync(join(d, readdirSync(d)[0]!), "utf8").split("\r\n").slice(0, 2).join("\n");
    };
    expect(head("x>y")).toBe('Return-Path: <"s p"@example.test>\nDelivered-To: "x>y"@example.test');
    expect(head("a b")).toBe('Return-Path: <"s p"@example.test>\nDelivered-To: "a b"@example.test');
    expect(head('q"z')).toBe('Return-Path: <"s p"@example.test>\nDelivered-To: "q\\"z"@example.test');
  });
});

describe("issue 15: a mailbox name the file system cannot hold", () => {
  test("ENAMETOOLONG is a permanent failure (5.1.3), not a deferral until max_age", async () => {
    const root = temp();
    const lp = "i\u0307".repeat(120); // 360 octets: over NAME_MAX
    const env = localEnvelope([], {});
    env.recipients = [{ rcpt: `${lp}@example.test`, address: `${lp}@example.test`, route: { kind: "local", domain: "example.test", localPart: lp } }];
    const dir = join(root, "queue");
    const [c] = await commitMessages(dir, [{ body: new TextEncoder().encode("Subject: x\r\n\r\nb\r\n"), envelope: env }], { asFiles: true });
    const item = openStored(dir, c!.id)!;
    const out = await new MaildirCourier({ mailDir: join(root, "mail"), hostname: "h" }).deliver(item.message, item.envelope.recipients);
    expect(out[0]!.kind).toBe("failed");
    expect([out[0]!.code, out[0]!.enhanced]).toEqual([550, "5.1.3"]);
  });
});
