/**
 * The local courier: Maildir delivery (CONTRACT "Storage layout"; maildir(5), https://cr.yp.to/proto/maildir.html).
 *
 * For each local recipient, DATA/mail/<domain>/<localPart>/ receives the stored bytes prefixed only by
 * `Return-Path: <sender>` (RFC 5321 §4.4) and `Delivered-To: <address>`. Exactly once, crash or not:
 * the file name is a function of (queue id, recipient index) alone, the copy is written to tmp/<name>, fsync'd,
 * then hard-linked to new/<name> (link fails with EEXIST if a previous attempt already got there, which counts as
 * delivered), new/ is fsync'd, and the tmp copy unlinked. After a crash or a deferred attempt the caller sets
 * `attempt.recheck`, and cur/ is also searched for <name>* (a reader such as Dovecot moves new/<name> to cur/<name>:2,S).
 * That is what makes this courier `exactlyOnce`.
 *
 * A message whose envelope names a folder (`.Junk`: DMARC quarantine, CONTRACT "Storage layout") goes to the
 * Maildir++ folder <mailbox>/<folder>/{tmp,new,cur}, created 0700 with its `maildirfolder` marker (Maildir++:
 * a folder is a maildir of its own inside the mailbox; Dovecot and Courier recognise it by that file). A folder
 * name must be `.` and [A-Za-z0-9_-]+ (no nesting, no traversal); anything else fails the recipient.
 * I/O errors become `deferred` outcomes; nothing is thrown.
 */
import { closeSync, renameSync, openSync, readdirSync, statSync } from "node:fs";
import { join } from "node:path";
import { localOutcome, mailboxText } from "../../mail/index.ts";
import type { Courier, DeliveryAttempt, EnvelopeRecipient, Outcome, StoredMessage } from "../../mail/index.ts";
import { FILE_MODE, mkdirDurableSync, SyncBatcher, unlinkQuiet, writeAllSync, writevAllSync } from "../../fsio/index.ts";

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

/** A Maildir++ folder name we deliver into: one level, `.` then [A-Za-z0-9_-]+. */
export function validFolder(folder: string): boolean {
  return /^\.[A-Za-z0-9_-]+$/.test(folder);
}

/** Path segments from the envelope must not climb out of DATA/mail. */
function safeSegment(s: string): boolean {
  return s.length > 0 && s !== "." && s !== ".." && !s.includes("/") && !s.includes("\0");
}

export class MaildirCourier implements Courier {
  readonly name = "local";
  readonly exactlyOnce = true;
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
   * Deliver to every recipient concurrently so that their fsyncs share rounds, and report them together (being
   * exactly once, nothing is gained by recording one before the others). Each recipient must be an element of
   * message.envelope.recipients (its index names the file).
   */
  async deliver(message: StoredMessage, recipients: EnvelopeRecipient[], attempt: DeliveryAttempt = {}): Promise<Outcome[]> {
    const recheck = attempt.recheck === true;
    const out =
      recipients.length === 1
        ? [await this.deliverOne(message, recipients[0], recheck)]
        : await Promise.all(recipients.map((r) => this.deliverOne(message, r, recheck)));
    if (attempt.report !== undefined) await attempt.report(recipients.length === 1 ? ONLY : recipients.map((_, k) => k), out);
    return out;
  }

  /** Nothing is held open between deliveries. */
  close(): void {}

  private async deliverOne(message: StoredMessage, r: EnvelopeRecipient, recheck: boolean): Promise<Outcome> {
    const route = r.route;
    if (route.kind !== "local") return localOutcome("failed", 554, "5.3.5", `${r.address} is not a local mailbox`);
    if (!safeSegment(route.domain) || !safeSegment(route.localPart)) {
      return localOutcome("failed", 553, "5.1.3", `unusable mailbox name for ${r.address}`);
    }
    const index = message.envelope.recipients.indexOf(r);
    if (index < 0) return localOutcome("deferred", 451, "4.3.0", "recipient is not part of the message envelope");
    const folder = message.envelope.folder;
    if (folder !== undefined && !validFolder(folder)) {
      return localOutcome("failed", 554, "5.3.5", `unusable mail folder ${JSON.stringify(folder)} for ${mailboxText(r.address)}`);
    }
    const mailbox = join(this.mailDir, route.domain, route.localPart);
    const box = folder === undefined ? mailbox : join(mailbox, folder);
    // CONTRACT: addresses in RFC 5321 form (a quoted local part stays quoted).
    const prefix = this.enc.encode(
      `Return-Path: <${mailboxText(message.envelope.sender)}>\r\nDelivered-To: ${mailboxText(r.address)}\r\n`,
    );
    const name = maildirName(message.envelope.arrival, message.id, index, this.host, prefix.length + message.size);
    const tmp = join(box, "tmp", name);
    const dest = join(box, "new", name);
    let fd = -1;
    try {
      if (folder !== undefined) this.prepare(mailbox, false);
      this.prepare(box, folder !== undefined);
      if (recheck && this.alreadyThere(box, name)) return delivered(name);
      fd = openSync(tmp, "w", FILE_MODE); // "w": a copy left in tmp/ by a crash is overwritten, not appended to
      // The trace fields and the first chunk (a whole small message) in one writev, with the stored bytes when the
      // first chunk was prepended header fields; larger messages stream on.
      const chunks = message.chunks()[Symbol.iterator]();
      const first = chunks.next();
      if (first.done) writevAllSync(fd, [prefix]);
      else if (first.value.length >= message.size) writevAllSync(fd, [prefix, first.value]);
      else {
        const second = chunks.next();
        writevAllSync(fd, second.done ? [prefix, first.value] : [prefix, first.value, second.value]);
      }
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
      if (code === "ENAMETOOLONG") return localOutcome("failed", 550, "5.1.3", `mailbox name too long for ${mailboxText(r.address)}`);
      return localOutcome("deferred", 451, "4.3.0", `maildir delivery to ${mailboxText(r.address)} failed: ${code}`);
    }
  }

  /** `folder`: a Maildir++ folder, marked by an empty `maildirfolder` file. */
  private prepare(box: string, folder: boolean): void {
    if (this.ready.has(box)) return;
    for (const sub of ["tmp", "new", "cur"]) mkdirDurableSync(join(box, sub));
    if (folder) closeSync(openSync(join(box, "maildirfolder"), "a", FILE_MODE));
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

/** The indices of a single recipient, shared (never modified by a reader). */
const ONLY: number[] = [0];

function delivered(name: string): Outcome {
  return localOutcome("delivered", 250, "2.0.0", `delivered to maildir as ${name}`);
}
