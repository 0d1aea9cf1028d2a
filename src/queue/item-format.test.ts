import { describe, expect, test } from "vitest";
import type { Envelope } from "../mail/index.ts";
import { CorruptItemError, decodeMeta, encodeMeta } from "./item-format.ts";
import { newQueueId } from "./queue-id.ts";

const envelope = (recipients: Envelope["recipients"]): Envelope => ({
  sender: "sender@elsewhere.test",
  recipients,
  body: "7BIT",
  smtputf8: false,
  client: { address: "127.0.0.1", helo: "c.test", listener: "mx" },
  arrival: 1,
});

describe("a recipient's own envelope sender (SRS) in the spool item", () => {
  test("kept through encode and decode; an item written without it (before it existed) loads with none", () => {
    const id = newQueueId();
    const srs = "SRS0=abcd=AA=elsewhere.test=sender@example.test";
    const e = envelope([
      { rcpt: "fwd@example.test", address: "user@remote.test", route: { kind: "remote", domain: "remote.test" }, sender: srs },
      { rcpt: "fwd@example.test", address: "alice@example.test", route: { kind: "local", domain: "example.test", localPart: "alice" } },
    ]);
    expect(decodeMeta(encodeMeta(id, e), id).envelope.recipients.map((r) => r.sender)).toEqual([srs, undefined]);
    // A v1 meta of an earlier version, written by hand: no `sender` anywhere.
    const old = JSON.stringify({ v: 1, id, envelope: { ...e, recipients: [{ rcpt: "a@x.test", address: "a@x.test", route: { kind: "remote", domain: "x.test" } }] } });
    expect(decodeMeta(new TextEncoder().encode(old), id).envelope.recipients[0]!.sender).toBeUndefined();
  });

  test("a sender that is not a string makes the item corrupt", () => {
    const id = newQueueId();
    const bad = envelope([{ rcpt: "a@x.test", address: "a@x.test", route: { kind: "remote", domain: "x.test" }, sender: 7 as unknown as string }]);
    expect(() => decodeMeta(encodeMeta(id, bad), id)).toThrow(CorruptItemError);
  });
});
