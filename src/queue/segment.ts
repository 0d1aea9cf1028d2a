/**
 * Spool segments, DATA/queue/segments/: where most messages are made durable. A message held in memory
 * (≤ MEMORY_MESSAGE_MAX, spool.ts) is not given a file of its own at commit: the spool writer appends it as a record to the current
 * segment, and one flush per group-commit round makes the whole round durable. Per message that saves a file
 * creation, a rename, an unlink and the inode churn behind them (measured on ext4 here: every create scans past the
 * inodes deleted in the last minutes, so a spool that creates and deletes a file per message slows itself down).
 *
 *   <seg>.seg   records, appended by the spool writer only:
 *               [magic "RMTAS001" (8) | item length L (u32 BE) | L ^ 0x53454721 (u32 BE)] [item: L bytes]
 *               where the item is byte for byte what `<id>.msg` holds (message, meta JSON, trailer: item-format.ts),
 *               so every record validates itself. A crash can leave a torn record only at the end (records are
 *               acknowledged after the round's flush); a reader stops at the first record that does not validate.
 *   <seg>.done  ids whose record is no longer needed, one "<id>\n" per line, appended (O_APPEND) by delivery
 *               workers, by `queue delete` and by the writer for records of a failed round. A torn last line is
 *               ignored.
 *
 * A record is live until its id is in the done file or `<id>.msg` exists: a delivery worker finishes a segment
 * item at its first attempt, or, when anything is left to retry or to report, first writes it out as `<id>.msg`
 * (materialize) and continues with the file. A segment whose records are all done is deleted by the writer once it
 * is sealed (rotated at SEGMENT_MAX bytes). At start, recover() writes every live record out as `<id>.msg` and
 * deletes all segments, so a segment never outlives the process that wrote it.
 *
 * A segment item travels through the ring as the token `<id>:<seg>:<offset base 36>` (itemToken).
 */
import { closeSync, fstatSync, fsyncSync, openSync, readdirSync, readSync, writeSync } from "node:fs";
import { Buffer } from "node:buffer";
import { join } from "node:path";
import type { Envelope } from "../mail/index.ts";
import { FILE_MODE } from "../fsio/index.ts";
import { CorruptItemError, decodeMeta, decodeTrailer, TRAILER_LEN } from "./item-format.ts";
import { isQueueId } from "./queue-id.ts";

export const SEGMENT_DIR = "segments";
/** Rotate the current segment once it holds this much (then it can be deleted when its records are done). */
export const SEGMENT_MAX = 8 * 1024 * 1024;
export const RECORD_HEADER_LEN = 16;
const MAGIC = [0x52, 0x4d, 0x54, 0x41, 0x53, 0x30, 0x30, 0x31]; // "RMTAS001"
const CHECK = 0x53454721;

export function segmentDir(queueDir: string): string {
  return join(queueDir, SEGMENT_DIR);
}

export function segPath(queueDir: string, seg: string): string {
  return join(queueDir, SEGMENT_DIR, `${seg}.seg`);
}

export function donePath(queueDir: string, seg: string): string {
  return join(queueDir, SEGMENT_DIR, `${seg}.done`);
}

export function encodeRecordHeader(itemLen: number): Uint8Array {
  const h = Buffer.alloc(RECORD_HEADER_LEN);
  h.set(MAGIC, 0);
  h.writeUInt32BE(itemLen, 8);
  h.writeUInt32BE((itemLen ^ CHECK) >>> 0, 12);
  return h;
}

/** The item length of a record header, or -1 when these bytes are not one. */
export function decodeRecordHeader(h: Uint8Array): number {
  if (h.length < RECORD_HEADER_LEN) return -1;
  for (let i = 0; i < 8; i++) if (h[i] !== MAGIC[i]) return -1;
  const v = new DataView(h.buffer, h.byteOffset, RECORD_HEADER_LEN);
  const len = v.getUint32(8);
  return v.getUint32(12) === (len ^ CHECK) >>> 0 && len >= TRAILER_LEN ? len : -1;
}

/** `<id>:<seg>:<offset>`: what the ring carries for a segment item. */
export function itemToken(id: string, loc: string): string {
  return `${id}:${loc}`;
}

export function segmentLoc(seg: string, offset: number): string {
  return `${seg}:${offset.toString(36)}`;
}

export interface ParsedToken {
  id: string;
  seg: string | null;
  offset: number;
}

/** The queue id a ring token names (what the pool tracks a claimed item by); the rest is the queue's business. */
export function tokenId(token: string): string {
  const a = token.indexOf(":");
  return a < 0 ? token : token.slice(0, a);
}

export function parseToken(token: string): ParsedToken {
  const a = token.indexOf(":");
  if (a < 0) return { id: token, seg: null, offset: 0 };
  const b = token.indexOf(":", a + 1);
  return { id: token.slice(0, a), seg: token.slice(a + 1, b), offset: parseInt(token.slice(b + 1), 36) };
}

/** Validate an item (the bytes of a `<id>.msg` or of a record) and return its id, envelope and message size. */
export function parseItem(item: Uint8Array, expectId?: string): { id: string; envelope: Envelope; size: number; prepend: Uint8Array } {
  if (item.length < TRAILER_LEN) throw new CorruptItemError("item shorter than a trailer");
  const t = decodeTrailer(item.subarray(item.length - TRAILER_LEN));
  if (t.size + t.metaLen + TRAILER_LEN !== item.length) throw new CorruptItemError("length does not match the trailer");
  const { id, envelope, prepend } = decodeMeta(item.subarray(t.size, t.size + t.metaLen), expectId);
  return { id, envelope, size: t.size, prepend };
}

function readFull(fd: number, buf: Uint8Array, pos: number): boolean {
  let off = 0;
  while (off < buf.length) {
    const n = readSync(fd, buf, off, buf.length - off, pos + off);
    if (n === 0) return false;
    off += n;
  }
  return true;
}

/** The ids in a done file (a missing file: none). */
export function readDoneIds(path: string): Set<string> {
  const done = new Set<string>();
  let fd: number;
  try {
    fd = openSync(path, "r");
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return done;
    throw err;
  }
  try {
    const buf = Buffer.allocUnsafe(fstatSync(fd).size);
    if (buf.length > 0) readFull(fd, buf, 0);
    addDoneLines(buf, done);
  } finally {
    closeSync(fd);
  }
  return done;
}

/** Add each complete "<id>\n" line of `bytes` to `done`; returns how many bytes were consumed (up to the last newline). */
function addDoneLines(bytes: Uint8Array, done: Set<string>): number {
  const text = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.length).toString("latin1");
  let start = 0;
  for (;;) {
    const nl = text.indexOf("\n", start);
    if (nl < 0) return start;
    const id = text.slice(start, nl);
    if (isQueueId(id)) done.add(id);
    start = nl + 1;
  }
}

/** Append ids to a done file (created when absent); `durable`: fsync it before returning. */
export function appendDone(path: string, ids: readonly string[], durable = false): void {
  const fd = openSync(path, "a", FILE_MODE);
  try {
    writeSync(fd, ids.map((id) => `${id}\n`).join(""));
    if (durable) fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

export interface SegmentRecord {
  id: string;
  offset: number;
  envelope: Envelope;
  size: number;
  /** The item bytes (a `<id>.msg` file's content). */
  item: Uint8Array;
}

/**
 * Every valid record of a segment file, in order. Stops at the first record that does not validate and reports
 * where (a torn tail after a crash: those records were never acknowledged).
 */
export function readSegment(path: string, onTail?: (offset: number, fileSize: number) => void): SegmentRecord[] {
  const fd = openSync(path, "r");
  const out: SegmentRecord[] = [];
  try {
    const size = fstatSync(fd).size;
    const header = Buffer.allocUnsafe(RECORD_HEADER_LEN);
    let off = 0;
    while (off < size) {
      const len = readFull(fd, header, off) ? decodeRecordHeader(header) : -1;
      const item = len > 0 && off + RECORD_HEADER_LEN + len <= size ? Buffer.allocUnsafe(len) : null;
      let rec: SegmentRecord | null = null;
      if (item !== null && readFull(fd, item, off + RECORD_HEADER_LEN)) {
        try {
          rec = { offset: off, item, ...parseItem(item) };
        } catch (err) {
          if (!(err instanceof CorruptItemError)) throw err;
        }
      }
      if (rec === null) {
        onTail?.(off, size);
        break;
      }
      out.push(rec);
      off += RECORD_HEADER_LEN + len;
    }
  } finally {
    closeSync(fd);
  }
  return out;
}

/** Segment names present in `queueDir` (without extension), oldest first. */
export function listSegments(queueDir: string): string[] {
  let names: string[];
  try {
    names = readdirSync(segmentDir(queueDir));
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return [];
    throw err;
  }
  return names.filter((n) => n.endsWith(".seg")).map((n) => n.slice(0, -4)).sort();
}

interface OpenSegment {
  fd: number;
  /** The done file, opened for appending and reading ("a+"); the writer creates it with the segment. */
  doneFd: number;
  done: Set<string>;
  /** Bytes of the done file already read into `done`. */
  doneRead: number;
}

const KEEP_OPEN = 4;
/** Bytes read speculatively with a record's header: a typical message fits. */
const FIRST_READ = 16 * 1024;

/**
 * A delivery worker's view of the segments: reads records by offset (pread on a cached descriptor) and keeps each
 * segment's done set current (a `queue delete` or another worker may have appended to it).
 */
export class SegmentReader {
  private readonly open = new Map<string, OpenSegment>();

  constructor(private readonly queueDir: string) {}

  /** The item bytes of `id` at `offset` in `seg`; null when the record is done (delivered or deleted). */
  read(seg: string, offset: number, id: string): Uint8Array | null {
    const s = this.get(seg);
    this.refreshDone(s);
    if (s.done.has(id)) return null;
    // One pread for the header and, for most messages, the whole item.
    const first = Buffer.allocUnsafe(RECORD_HEADER_LEN + FIRST_READ);
    const got = readSync(s.fd, first, 0, first.length, offset);
    const len = got >= RECORD_HEADER_LEN ? decodeRecordHeader(first) : -1;
    if (len < 0) throw new CorruptItemError(`no record at ${seg}:${offset}`);
    if (RECORD_HEADER_LEN + len <= got) return first.subarray(RECORD_HEADER_LEN, RECORD_HEADER_LEN + len);
    const item = Buffer.allocUnsafe(len);
    const have = got - RECORD_HEADER_LEN;
    item.set(first.subarray(RECORD_HEADER_LEN, got), 0);
    if (!readFull(s.fd, item.subarray(have), offset + got)) throw new CorruptItemError(`record at ${seg}:${offset} is cut short`);
    return item;
  }

  /**
   * Record that `id` needs its record no more (one small O_APPEND write). Returns the done file's descriptor:
   * the record is durable once that is flushed (SyncBatcher.syncFd), which the caller does when it matters.
   */
  markDone(seg: string, id: string): number {
    const s = this.get(seg);
    writeSync(s.doneFd, `${id}\n`);
    s.done.add(id);
    return s.doneFd;
  }

  close(): void {
    for (const s of this.open.values()) {
      closeSync(s.fd);
      closeSync(s.doneFd);
    }
    this.open.clear();
  }

  private get(seg: string): OpenSegment {
    let s = this.open.get(seg);
    if (s !== undefined) return s;
    const fd = openSync(segPath(this.queueDir, seg), "r");
    let doneFd: number;
    try {
      doneFd = openSync(donePath(this.queueDir, seg), "a+", FILE_MODE);
    } catch (err) {
      closeSync(fd);
      throw err;
    }
    s = { fd, doneFd, done: new Set(), doneRead: 0 };
    if (this.open.size >= KEEP_OPEN) {
      const [oldest, o] = this.open.entries().next().value as [string, OpenSegment];
      closeSync(o.fd);
      closeSync(o.doneFd);
      this.open.delete(oldest);
    }
    this.open.set(seg, s);
    return s;
  }

  private refreshDone(s: OpenSegment): void {
    const size = fstatSync(s.doneFd).size;
    if (size <= s.doneRead) return;
    const buf = Buffer.allocUnsafe(size - s.doneRead);
    if (!readFull(s.doneFd, buf, s.doneRead)) return;
    s.doneRead += addDoneLines(buf, s.done);
  }
}
