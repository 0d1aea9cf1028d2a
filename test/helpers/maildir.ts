/**
 * Reading what the server delivered: Maildir files (CONTRACT "Storage layout") and their trace fields.
 */
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";

/** Paths of the delivered files in DATA/mail/<domain>/<local>/{new,cur}/, sorted; [] when the Maildir is absent. */
export function maildirFiles(dataDir: string, domain: string, local: string): string[] {
  const base = join(dataDir, "mail", domain, local);
  const out: string[] = [];
  for (const sub of ["new", "cur"]) {
    let names: string[];
    try {
      names = readdirSync(join(base, sub));
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === "ENOENT") continue;
      throw err;
    }
    for (const n of names) if (!n.startsWith(".")) out.push(join(base, sub, n));
  }
  return out.sort();
}

export interface Delivered {
  trace: { returnPath: string; deliveredTo: string; received: string };
  /** Exactly the bytes that followed the trace fields: the message as the client sent it, after unstuffing. */
  body: Buffer;
  /** The whole file. */
  raw: Buffer;
}

/** Reads one CRLF line starting at `at`; returns [text without CRLF, index after CRLF]. */
function line(buf: Buffer, at: number, path: string): [string, number] {
  const nl = buf.indexOf("\r\n", at);
  if (nl < 0) throw new Error(`${path}: trace field at offset ${at} has no CRLF`);
  return [buf.toString("utf8", at, nl), nl + 2];
}

/**
 * Parses the trace block the server prepends: exactly `Return-Path: <…>`, `Delivered-To: …`, and one
 * `Received:` field (RFC 5322 §3.6.7), possibly folded over lines that start with SP or HTAB. Throws when the file
 * does not start that way.
 */
export function readDelivered(path: string): Delivered {
  const raw = readFileSync(path);
  let [l1, at] = line(raw, 0, path);
  const rp = /^Return-Path: ?(<.*>)$/i.exec(l1);
  if (!rp) throw new Error(`${path}: first line is not Return-Path: ${JSON.stringify(l1)}`);
  let l2: string;
  [l2, at] = line(raw, at, path);
  const dt = /^Delivered-To: ?(.*)$/i.exec(l2);
  if (!dt) throw new Error(`${path}: second line is not Delivered-To: ${JSON.stringify(l2)}`);
  let l3: string;
  [l3, at] = line(raw, at, path);
  if (!/^Received:/i.test(l3)) throw new Error(`${path}: third line is not Received: ${JSON.stringify(l3)}`);
  let received = l3.slice("Received:".length).trim();
  while (at < raw.length && (raw[at] === 0x20 || raw[at] === 0x09)) {
    let cont: string;
    [cont, at] = line(raw, at, path);
    received += " " + cont.trim();
  }
  return { trace: { returnPath: rp[1], deliveredTo: dt[1].trim(), received }, body: raw.subarray(at), raw };
}

/** Files of all mailboxes of `domain`, as { localpart: paths }. */
export function mailboxes(dataDir: string, domain: string): Record<string, string[]> {
  const out: Record<string, string[]> = {};
  let locals: string[];
  try {
    locals = readdirSync(join(dataDir, "mail", domain));
  } catch {
    return out;
  }
  for (const l of locals) out[l] = maildirFiles(dataDir, domain, l);
  return out;
}

/** Delivered files in the mailbox of `address` (localpart@domain) whose bytes contain `needle`. */
export function findDelivered(dataDir: string, address: string, needle: string | Buffer): string[] {
  const at = address.lastIndexOf("@");
  const files = maildirFiles(dataDir, address.slice(at + 1), address.slice(0, at));
  return files.filter((f) => readFileSync(f).includes(needle));
}

/** How many delivered files of the mailbox contain `Message-ID: <id>`. */
export function countMessageId(dataDir: string, address: string, messageId: string): number {
  return findDelivered(dataDir, address, `Message-ID: <${messageId}>`).length;
}
