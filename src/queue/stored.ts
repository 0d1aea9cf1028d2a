/**
 * Reading a committed spool item: trailer and meta from the end of `<id>.msg`, the per-recipient state from
 * `<id>.state`, and the message bytes streamed in 64 KiB reads. Read-only, so it is safe while the server runs.
 */
import { closeSync, fstatSync, openSync, readSync } from "node:fs";
import { Buffer } from "node:buffer";
import { join } from "node:path";
import type { Envelope, StoredMessage } from "../mail/index.ts";
import { CorruptItemError, decodeMeta, decodeTrailer, TRAILER_LEN } from "./item-format.ts";
import { readStateLog } from "./state-log.ts";
import { parseItem } from "./segment.ts";
import type { RecipientState } from "./state-log.ts";

export const READ_CHUNK = 64 * 1024;

export interface StoredItem {
  id: string;
  envelope: Envelope;
  /** The message's size as delivered: prepended header fields (meta v2) and the stored bytes. */
  size: number;
  state: RecipientState[];
  message: StoredMessage;
}

function readFully(fd: number, buf: Uint8Array, pos: number): void {
  let off = 0;
  while (off < buf.length) {
    const n = readSync(fd, buf, off, buf.length - off, pos + off);
    if (n === 0) throw new CorruptItemError("file shorter than its trailer says");
    off += n;
  }
}

/**
 * A StoredItem over item bytes already in memory (a segment record, segment.ts): never a state log, since a
 * segment item is written out as `<id>.msg` before anything about it is recorded.
 */
export function storedFromItem(item: Uint8Array, id: string): StoredItem {
  const { envelope, size, prepend } = parseItem(item, id);
  const bytes = item.subarray(0, size);
  const total = prepend.length + size;
  const message: StoredMessage = {
    id,
    envelope,
    size: total,
    *chunks(): Iterable<Uint8Array> {
      if (prepend.length > 0) yield prepend;
      if (bytes.length > 0) yield bytes;
    },
  };
  return { id, envelope, size: total, state: readStateLog(null, envelope.recipients.length), message };
}

export function msgPath(dir: string, id: string): string {
  return join(dir, `${id}.msg`);
}

export function statePath(dir: string, id: string): string {
  return join(dir, `${id}.state`);
}

/**
 * Open item `id` in spool `dir`. Returns null when it does not exist (delivered or deleted meanwhile); throws
 * CorruptItemError when the file fails validation, other errors as they come.
 */
export function openStored(dir: string, id: string, opts: { fresh?: boolean } = {}): StoredItem | null {
  const path = msgPath(dir, id);
  let fd: number;
  try {
    fd = openSync(path, "r");
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return null;
    throw err;
  }
  let whole: Uint8Array | null = null;
  let size: number;
  let envelope: Envelope;
  let prepend: Uint8Array;
  try {
    const fileLen = fstatSync(fd).size;
    if (fileLen < TRAILER_LEN) throw new CorruptItemError("file shorter than a trailer");
    // A small item is read in one go and served from memory; a large one only by its tail.
    const tailLen = Math.min(fileLen, READ_CHUNK);
    const tail = Buffer.allocUnsafe(tailLen);
    readFully(fd, tail, fileLen - tailLen);
    const t = decodeTrailer(tail.subarray(tailLen - TRAILER_LEN));
    size = t.size;
    if (size + t.metaLen + TRAILER_LEN !== fileLen) throw new CorruptItemError("length does not match the trailer");
    let meta: Uint8Array;
    if (t.metaLen + TRAILER_LEN <= tailLen) {
      meta = tail.subarray(tailLen - TRAILER_LEN - t.metaLen, tailLen - TRAILER_LEN);
    } else {
      meta = Buffer.allocUnsafe(t.metaLen);
      readFully(fd, meta, size);
    }
    ({ envelope, prepend } = decodeMeta(meta, id));
    if (tailLen === fileLen) whole = tail.subarray(0, size);
  } finally {
    closeSync(fd);
  }
  // A fresh item (first attempt straight after its commit) has no state log yet: skip the failing open.
  const state = opts.fresh
    ? readStateLog(null, envelope.recipients.length)
    : readStateLog(statePath(dir, id), envelope.recipients.length);
  const bytes = whole;
  const msgSize = size;
  const head = prepend;
  const message: StoredMessage = {
    id,
    envelope,
    size: head.length + msgSize,
    *chunks(): Iterable<Uint8Array> {
      if (head.length > 0) yield head;
      if (bytes !== null) {
        if (bytes.length > 0) yield bytes;
        return;
      }
      const f = openSync(path, "r");
      try {
        for (let pos = 0; pos < msgSize; ) {
          // A fresh buffer per chunk: a consumer may hold on to it (queued socket writes).
          const buf = Buffer.allocUnsafe(Math.min(READ_CHUNK, msgSize - pos));
          readFully(f, buf, pos);
          pos += buf.length;
          yield buf;
        }
      } finally {
        closeSync(f);
      }
    },
  };
  return { id, envelope, size: message.size, state, message };
}
