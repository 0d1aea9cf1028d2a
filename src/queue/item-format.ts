/**
 * The self-validating layout of a committed spool item `<id>.msg` (see spool.ts for the whole spool format):
 *
 *   [message bytes: S]  [meta JSON, UTF-8: M]  [trailer: 24 bytes]
 *
 * trailer = magic "RMTAQ001" (8) | S high 32 bits | S low 32 bits | M | check word S_low ^ M ^ 0x52494E47
 * (each u32 big-endian). A file is valid only when its length is exactly S + M + 24, the
 * magic and check word match and the meta JSON parses to {v: 1, id, envelope} with the file's id. A file cut short
 * anywhere (crash before the fsync completed) fails the length or magic test.
 *
 * Meta v2, {v: 2, id, envelope, prepend: "<base64>"}, also carries header fields that the inbound stages prepend
 * at end of data (MessageSink.commit's `prepend`): they are stored beside the received bytes, never spliced into
 * them, and a reader yields them first (StoredMessage.chunks). An item without such fields is still written as v1,
 * and v1 items (every item of earlier versions) load as before.
 *
 * A recipient may carry `sender`, the MAIL FROM of its copy when not the envelope's (SRS forwarding,
 * EnvelopeRecipient.sender). It is an optional field inside the envelope JSON, so the version stays: an item
 * written before it has none, and its copies go out with the envelope sender, as they always did.
 */
import { Buffer } from "node:buffer";
import type { Envelope } from "../mail/index.ts";
import { isQueueId } from "./queue-id.ts";

export const TRAILER_LEN = 24;
const MAGIC = [0x52, 0x4d, 0x54, 0x41, 0x51, 0x30, 0x30, 0x31]; // "RMTAQ001"
const CHECK = 0x52494e47;

export class CorruptItemError extends Error {
  override readonly name = "CorruptItemError";
}

export function encodeTrailer(size: number, metaLen: number): Uint8Array {
  const t = new Uint8Array(TRAILER_LEN);
  t.set(MAGIC, 0);
  const v = new DataView(t.buffer);
  const hi = Math.floor(size / 2 ** 32);
  const lo = size >>> 0;
  v.setUint32(8, hi);
  v.setUint32(12, lo);
  v.setUint32(16, metaLen);
  v.setUint32(20, (lo ^ metaLen ^ CHECK) >>> 0);
  return t;
}

/** Parse a trailer; throws CorruptItemError when it is not one. */
export function decodeTrailer(t: Uint8Array): { size: number; metaLen: number } {
  if (t.length !== TRAILER_LEN) throw new CorruptItemError("short trailer");
  for (let i = 0; i < 8; i++) if (t[i] !== MAGIC[i]) throw new CorruptItemError("bad trailer magic");
  const v = new DataView(t.buffer, t.byteOffset, TRAILER_LEN);
  const lo = v.getUint32(12);
  const metaLen = v.getUint32(16);
  if (v.getUint32(20) !== (lo ^ metaLen ^ CHECK) >>> 0) throw new CorruptItemError("bad trailer check word");
  return { size: v.getUint32(8) * 2 ** 32 + lo, metaLen };
}

const EMPTY = new Uint8Array(0);

export function encodeMeta(id: string, envelope: Envelope, prepend?: Uint8Array): Uint8Array {
  if (prepend === undefined || prepend.length === 0) return new TextEncoder().encode(JSON.stringify({ v: 1, id, envelope }));
  const b64 = Buffer.from(prepend.buffer, prepend.byteOffset, prepend.length).toString("base64");
  return new TextEncoder().encode(JSON.stringify({ v: 2, id, envelope, prepend: b64 }));
}

export interface ItemMeta {
  id: string;
  envelope: Envelope;
  /** Header fields to yield before the stored bytes (v2); empty for v1. */
  prepend: Uint8Array;
}

/**
 * Parse and shape-check the meta JSON; throws CorruptItemError. `expectId`: the id the item must carry (its file
 * name or ring token); without it, any queue id is taken (a segment record names itself).
 */
export function decodeMeta(bytes: Uint8Array, expectId?: string): ItemMeta {
  let meta: unknown;
  try {
    meta = JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(bytes));
  } catch {
    throw new CorruptItemError("meta is not JSON");
  }
  const m = meta as { v?: unknown; id?: unknown; envelope?: Partial<Envelope>; prepend?: unknown } | null;
  if (m === null || typeof m !== "object" || (m.v !== 1 && m.v !== 2)) throw new CorruptItemError("bad meta version");
  let prepend = EMPTY;
  if (m.v === 2) {
    if (typeof m.prepend !== "string" || !/^[A-Za-z0-9+/]*={0,2}$/.test(m.prepend)) throw new CorruptItemError("bad prepend");
    prepend = new Uint8Array(Buffer.from(m.prepend, "base64"));
  }
  if (typeof m.id !== "string" || !isQueueId(m.id)) throw new CorruptItemError("meta id is not a queue id");
  if (expectId !== undefined && m.id !== expectId) throw new CorruptItemError("meta id does not match the file name");
  const e = m.envelope;
  if (
    !e ||
    typeof e.sender !== "string" ||
    typeof e.arrival !== "number" ||
    !Array.isArray(e.recipients) ||
    e.recipients.some(
      (r) =>
        !r || typeof r.address !== "string" || !r.route || typeof r.route.kind !== "string" ||
        (r.sender !== undefined && typeof r.sender !== "string"),
    )
  ) {
    throw new CorruptItemError("bad envelope");
  }
  return { id: m.id, envelope: e as Envelope, prepend };
}
