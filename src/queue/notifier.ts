/**
 * Sending our own DSNs (RFC 3464, built by dsn.ts): a message we generate is injected through the spool like any
 * accepted message, with the null envelope sender <> (never bounced itself, RFC 5321 §4.5.5), to the original
 * envelope sender, routed by `routeOwn` (the policy's routing for our own mail: a local sender's DSN lands in its
 * Maildir through its aliases, a remote one is relayed; no relay permission and no login are involved). Never to <>.
 *
 * A DSN whose sender cannot be routed now (the directory is unavailable: kind = "postgres" with the database
 * down) waits: notify() rejects with DsnWaits, so the item stays in the spool, and retryWaiting() sends it once
 * the directory answers again (then a finished item is deleted).
 *
 * Which recipients a DSN reports is notices.ts's decision: an attempt's notices as the worker made them, or, for a
 * finished item found at start whose bounce was never sent, the same rule applied to its recorded state.
 */
import type { EnvelopeRecipient, OwnRoute, SpoolPort } from "../mail/index.ts";
import { dsnChunks } from "./dsn.ts";
import type { DsnRecipient } from "./dsn.ts";
import { deleteItem } from "./list.ts";
import { finishedNotices } from "./notices.ts";
import type { Notice } from "./notices.ts";
import { openStored } from "./stored.ts";

/** The DSN waits for the directory; the item must stay in the spool (the pool keeps it on this rejection). */
export class DsnWaits extends Error {
  override readonly name = "DsnWaits";
  constructor(readonly id: string) {
    super(`the DSN about ${id} waits for the directory`);
  }
}

/**
 * Signs one DSN as it is written (CONTRACT "DKIM": our DSNs are signed for <hostname>'s domain when it has
 * selectors): fed the DSN's bytes in order, then `end()` gives the header fields to put on top, or null.
 */
export interface DsnSigner {
  write(bytes: Uint8Array): void;
  end(): string | null;
}

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
  /** Where our own mail to `address` goes (Policy.routeOwn), read at each DSN (a SIGHUP may change it). */
  routeOwn(address: string): OwnRoute;
  /** A signer for the next DSN, or null when DSNs go unsigned ([dkim] sign off, or no selectors). */
  signer?: () => DsnSigner | null;
  log: NotifierLog;
  now?: () => number;
}

export class Notifier {
  /** DSNs that wait for the directory: item id → its notices, and whether the item goes once the DSN is out. */
  private readonly waiting = new Map<string, { notices: readonly Notice[] | null; remove: boolean }>();
  private retrying = false;

  constructor(private readonly o: NotifierOptions) {}

  /** How many DSNs wait for the directory. */
  get waitingCount(): number {
    return this.waiting.size;
  }

  /**
   * Queue the DSN for `notices` of item `id` (null: the item is finished, and its state says what to report).
   * The item must still be in the spool. Resolves once the DSN is committed (or there is nothing to send).
   */
  async notify(id: string, notices: readonly Notice[] | null, remove = false): Promise<void> {
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
    const route = this.o.routeOwn(env.sender);
    if (route.kind === "later") {
      if (!this.waiting.has(id)) this.o.log.warn("dsn.waiting", { id, sender: env.sender, reason: "the directory is unavailable" });
      this.waiting.set(id, { notices, remove });
      throw new DsnWaits(id);
    }
    if (route.kind === "nowhere" || route.targets.length === 0) {
      this.o.log.warn("dsn.undeliverable", { id, sender: env.sender, reason: "no route for the sender" });
      return;
    }
    const targets = route.targets;
    const sink = this.o.spool.begin();
    try {
      const chunks = dsnChunks({ hostname: this.o.hostname, dsnId: sink.id, envelope: env, recipients, chunks: () => item.message.chunks(), now });
      const signer = this.o.signer?.() ?? null;
      for (const c of chunks) {
        sink.write(c);
        signer?.write(c);
      }
      const fields = signer?.end() ?? null;
      const prepend = fields === null ? undefined : new TextEncoder().encode(fields);
      await sink.commit({
        sender: "",
        recipients: targets.map((t): EnvelopeRecipient => ({ rcpt: env.sender, address: t.address, route: t.route })),
        body: "8BITMIME",
        smtputf8: /[^\x00-\x7f]/.test(env.sender),
        client: { address: "127.0.0.1", helo: this.o.hostname, listener: "dsn" },
        arrival: 0,
      }, prepend);
    } catch (err) {
      sink.abort();
      throw err;
    }
    this.o.log.info("dsn.queued", { id: sink.id, about: id, to: env.sender, actions: recipients.map((r) => r.action) });
  }

  /** A finished item (all recipients final, some failed) found at start: its bounce, then the item goes. */
  async bounceFinished(id: string): Promise<void> {
    await this.notify(id, null, true);
    deleteItem(this.o.queueDir, id);
  }

  /** The directory changed: send the DSNs that waited for it (those still unroutable keep waiting). */
  async retryWaiting(): Promise<void> {
    if (this.retrying) return;
    this.retrying = true;
    try {
      for (const [id, w] of [...this.waiting]) {
        this.waiting.delete(id);
        try {
          await this.notify(id, w.notices, w.remove);
          if (w.remove) deleteItem(this.o.queueDir, id);
          this.o.log.info("dsn.sent_after_directory_outage", { id });
        } catch (err) {
          if (err instanceof DsnWaits) return; // still down: it is waiting again
          this.o.log.warn("dsn.failed", { id, error: String(err) });
        }
      }
    } finally {
      this.retrying = false;
    }
  }
}
