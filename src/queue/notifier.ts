/**
 * Sending our own DSNs (RFC 3464, built by dsn.ts): a message we generate is injected through the spool like any
 * accepted message, with the null envelope sender <> (never bounced itself, RFC 5321 §4.5.5), to the original
 * envelope sender, routed by `routeOwn` (the policy's routing for our own mail: a local sender's DSN lands in its
 * Maildir through its aliases, a remote one is relayed; no relay permission and no login are involved). Never to <>.
 *
 * Which recipients a DSN reports is notices.ts's decision: an attempt's notices as the worker made them, or, for a
 * finished item found at start whose bounce was never sent, the same rule applied to its recorded state.
 */
import type { EnvelopeRecipient, Route, SpoolPort } from "../mail/index.ts";
import { dsnChunks } from "./dsn.ts";
import type { DsnRecipient } from "./dsn.ts";
import { deleteItem } from "./list.ts";
import { finishedNotices } from "./notices.ts";
import type { Notice } from "./notices.ts";
import { openStored } from "./stored.ts";

export interface NotifierLog {
  info(event: string, fields: Record<string, unknown>): void;
  warn(event: string, fields: Record<string, unknown>): void;
}

/** Read at each DSN (the composition may hand getters over current settings). */
export interface NotifierOptions {
  queueDir: string;
  /** Reporting-MTA, MAILER-DAEMON@<hostname>, our HELO in the DSN's envelope. */
  hostname: string;
  /** queue.max_age: a delay warning's Will-Retry-Until. */
  maxAgeMs: number;
  spool: SpoolPort;
  /**
   * Where our own mail to `address` goes (Policy.routeOwn), read at each DSN (a SIGHUP may change it);
   * "unavailable" while the directory cannot say (kind = "postgres", database down).
   */
  routeOwn(address: string): Array<{ address: string; route: Route }> | null | "unavailable";
  /** Resolves once routeOwn may answer again (the directory is back). */
  whenAvailable?(): Promise<void>;
  log: NotifierLog;
  now?: () => number;
}

export class Notifier {
  constructor(private readonly o: NotifierOptions) {}

  /**
   * Queue the DSN for `notices` of item `id` (null: the item is finished, and its state says what to report).
   * The item must still be in the spool. Resolves once the DSN is committed (or there is nothing to send).
   */
  async notify(id: string, notices: readonly Notice[] | null): Promise<void> {
    const item = openStored(this.o.queueDir, id);
    if (item === null) return;
    const env = item.envelope;
    if (env.sender === "") return;
    const list = notices ?? finishedNotices(env, item.state);
    if (list.length === 0) return;
    const now = (this.o.now ?? Date.now)();
    const recipients: DsnRecipient[] = [];
    for (const { index, action } of list) {
      const r = env.recipients[index];
      const last = item.state[index].last;
      // A notice is made from a recorded outcome; without one there is nothing true to say.
      if (last === null) continue;
      const d: DsnRecipient = { address: r.address, action, outcome: last, lastAttempt: now };
      if (r.orcpt !== undefined) d.orcpt = r.orcpt;
      if (action === "delayed") d.willRetryUntil = env.arrival + this.o.maxAgeMs;
      recipients.push(d);
    }
    if (recipients.length === 0) return;
    const targets = this.o.routeOwn(env.sender);
    if (targets === "unavailable") {
      // The directory is down: the DSN waits for it, and so does the item (the pool deletes a finished item only
      // once this resolves). Then everything is read again: the item may have moved on meanwhile.
      this.o.log.info("dsn.waiting_for_directory", { id, note: "the directory is unavailable: the DSN waits for it" });
      if (this.o.whenAvailable === undefined) return;
      await this.o.whenAvailable();
      await this.notify(id, notices);
      this.o.log.info("dsn.sent_after_directory_outage", { id });
      return;
    }
    if (targets === null || targets.length === 0) {
      this.o.log.warn("dsn.undeliverable", { id, sender: env.sender, reason: "no route for the sender" });
      return;
    }
    const sink = this.o.spool.begin();
    try {
      const chunks = dsnChunks({ hostname: this.o.hostname, dsnId: sink.id, envelope: env, recipients, chunks: () => item.message.chunks(), now });
      for (const c of chunks) sink.write(c);
      await sink.commit({
        sender: "",
        recipients: targets.map((t): EnvelopeRecipient => ({ rcpt: env.sender, address: t.address, route: t.route })),
        body: "8BITMIME",
        smtputf8: /[^\x00-\x7f]/.test(env.sender),
        client: { address: "127.0.0.1", helo: this.o.hostname, listener: "dsn" },
        arrival: 0,
      });
    } catch (err) {
      sink.abort();
      throw err;
    }
    this.o.log.info("dsn.queued", { id: sink.id, about: id, to: env.sender, actions: recipients.map((r) => r.action) });
  }

  /** A finished item (all recipients final, some failed) found at start: its bounce, then the item goes. */
  async bounceFinished(id: string): Promise<void> {
    await this.notify(id, null);
    deleteItem(this.o.queueDir, id);
  }
}
