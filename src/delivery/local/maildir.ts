/**
 * The local courier: Maildir delivery (CONTRACT "Storage layout"; maildir(5), https://cr.yp.to/proto/maildir.html).
 *
 * For each local recipient, DATA/mail/<domain>/<localPart>/ receives the stored bytes prefixed only by
 * `Return-Path: <sender>` (RFC 5321 §4.4) and `Delivered-To: <address>`. Exactly once, crash or not:
 * the file name is a function of (queue id, recipient index) alone, the copy is written to tmp/<name>, fsync'd,
 * then hard-linked to new/<name> (link fails with EEXIST if a previous attempt already got there, which counts as
 * delivered), new/ is fsync'd, and the tmp copy unlinked. After a crash or a deferred attempt the caller sets
 * `recheck`, and cur/ is also searched for <name>* (a reader such as Dovecot moves new/<name> to cur/<name>:2,S).
 * I/O errors become `deferred` outcomes; nothing is thrown.
 */
import { closeSync, renameSync, openSync, readdirSync, statSync } from "node:fs";
import { join } from "node:path";
import type { Courier, EnvelopeRecipient, Outcome, StoredMessage } from "../../mail/index.ts";
import { mailboxText } from "../../mail/index.ts";
import { FILE_MODE, mkdirDurableSync, SyncBatcher, unlinkQuiet, writeAllSync, writevAllSync } from "../../fsio/index.ts";

/** A stored message as the worker hands it over; `recheck` is set for items recovered or retried. */
export type LocalMessage = StoredMessage & { recheck?: boolean };

export interface MaildirOptions {
  /** DATA/mail */
  mailDir: string;
  hostname: string;
  batcher?: SyncBatcher;
}

/** Maildir forbids "/" and ":" in the host part of a name; they are written as octal escapes. */
export function maildirHostname(hostname: string): string {
  return hostname.replace(/\//g, "\\057").replace(/:/g, "\\072");
}

/** The deterministic unique name of the copy for recipient `index` of item `id`. */
export function maildirName(arrivalMs: number, id: string, index: number, hostname: string, size: number): string {
  return `${Math.floor(arrivalMs / 1000)}.R${id}_${index}.${maildirHostname(hostname)},S=${size}`;
}

/** Path segments from the envelope must not climb out of DATA/mail. */
function safeSegment(s: string): boolean {
  return s.length > 0 && s !== "." && s !== ".." && !s.includes("/") && !s.includes("\0");
}

export class MaildirCourier implements Courier {
  readonly name = "local";
  private readonly mailDir: string;
  private readonly host: string;
  private readonly batcher: SyncBatcher;
  /** Mailboxes known to have tmp/ new/ cur/ (saves three mkdir calls per delivery). */
  private readonly ready = new Set<string>();
  private readonly enc = new TextEncoder();

  constructor(opts: MaildirOptions) {
    this.mailDir = opts.mailDir;
    this.host = opts.hostname;
    this.batcher = opts.batcher ?? new SyncBatcher();
  }

  /**
   * Deliver to every recipient concurrently so that their fsyncs share rounds. Each recipient must be an element
   * of message.envelope.recipients (its index names the file).
   */
  deliver(message: LocalMessage, recipients: EnvelopeRecipient[]): Promise<Outcome[]> {
    return Promise.all(recipients.map((r) => this.deliverOne(message, r)));
  }

  private async deliverOne(message: LocalMessage, r: EnvelopeRecipient): Promise<Outcome> {
    const route = r.route;
    if (route.kind !== "local") return { kind: "failed", reply: `5.3.5 ${r.address} is not a local mailbox` };
    if (!safeSegment(route.domain) || !safeSegment(route.localPart)) {
      return { kind: "failed", reply: `5.1.3 unusable mailbox name for ${r.address}` };
    }
    const index = message.envelope.recipients.indexOf(r);
    if (index < 0) return { kind: "deferred", reply: "4.3.0 recipient is not part of the message envelope" };
    const box = join(this.mailDir, route.domain, route.localPart);
    // CONTRACT: addresses in RFC 5321 form (a quoted local part stays quoted).
    const prefix = this.enc.encode(
      `Return-Path: <${mailboxText(message.envelope.sender)}>\r\nDelivered-To: ${mailboxText(r.address)}\r\n`,
    );
    const name = maildirName(message.envelope.arrival, message.id, index, this.host, prefix.length + message.size);
    const tmp = join(box, "tmp", name);
    const dest = join(box, "new", name);
    let fd = -1;
    try {
      this.prepare(box);
      if (message.recheck && this.alreadyThere(box, name)) return delivered(name);
      fd = openSync(tmp, "w", FILE_MODE); // "w": a copy left in tmp/ by a crash is overwritten, not appended to
      // The trace fields and the first chunk (a whole small message) in one writev; larger ones stream on.
      const chunks = message.chunks()[Symbol.iterator]();
      const first = chunks.next();
      writevAllSync(fd, first.done ? [prefix] : [prefix, first.value]);
      for (let c = chunks.next(); !c.done; c = chunks.next()) writeAllSync(fd, c.value);
      await this.batcher.syncFd(fd);
      closeSync(fd);
      fd = -1;
      // rename, not link + unlink: one call fewer per message. A copy already in new/ from an attempt whose
      // outcome was lost has the same name and the same bytes, so replacing it still leaves exactly one.
      renameSync(tmp, dest);
      await this.batcher.syncDir(join(box, "new"));
      return delivered(name);
    } catch (err) {
      if (fd >= 0) {
        try {
          closeSync(fd);
        } catch {
          // already failing; the descriptor is released either way
        }
      }
      unlinkQuiet(tmp);
      const code = (err as NodeJS.ErrnoException).code ?? (err instanceof Error ? err.message : String(err));
      // A name the file system cannot hold never will: permanent (policy refuses such names at RCPT with 553 5.1.3;
      // this covers items spooled before that check).
      if (code === "ENAMETOOLONG") return { kind: "failed", reply: `5.1.3 mailbox name too long for ${mailboxText(r.address)}` };
      return { kind: "deferred", reply: `4.3.0 maildir delivery to ${r.address} failed: ${code}` };
    }
  }

  private prepare(box: string): void {
    if (this.ready.has(box)) return;
    for (const sub of ["tmp", "new", "cur"]) mkdirDurableSync(join(box, sub));
    this.ready.add(box);
  }

  /** Is new/<name> or cur/<name>* present (delivered by an attempt whose outcome was not recorded)? */
  private alreadyThere(box: string, name: string): boolean {
    try {
      statSync(join(box, "new", name));
      return true;
    } catch {
      // not in new/: look in cur/
    }
    for (const f of readdirSync(join(box, "cur"))) {
      // Readers append ":2,<flags>" or ",W=<n>..." to the name when they move it (maildir(5)).
      if (f.startsWith(name) && (f.length === name.length || f[name.length] === ":" || f[name.length] === ",")) {
        return true;
      }
    }
    return false;
  }
}

function delivered(name: string): Outcome {
  return { kind: "delivered", reply: `2.0.0 delivered to maildir as ${name}` };
}
