/**
 * Queue ids: 20 ASCII characters of [0-9A-Z] (Crockford base32, which sorts like its numbers in ASCII):
 * 10 for the millisecond timestamp, 4 for a per-millisecond counter, 6 for a random tag drawn once per module
 * instance (process or worker thread). Unique across restarts and concurrent processes without a pid, and
 * sortable by time.
 */
import { randomInt } from "node:crypto";

const ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ";
export const QUEUE_ID_PATTERN = /^[0-9A-Z]{1,24}$/;

function base32(n: number, width: number): string {
  let s = "";
  for (let i = 0; i < width; i++) {
    s = ALPHABET[n % 32] + s;
    n = Math.floor(n / 32);
  }
  return s;
}

let tag = "";
let lastMs = 0;
let counter = 0;

export function newQueueId(): string {
  if (tag === "") tag = base32(randomInt(0, 2 ** 30), 6);
  // Monotonic within this instance even if the wall clock steps back.
  const now = Math.max(Date.now(), lastMs);
  if (now === lastMs) {
    counter++;
    if (counter >= 32 ** 4) {
      lastMs = now + 1;
      counter = 0;
    }
  } else {
    lastMs = now;
    counter = 0;
  }
  return base32(lastMs, 10) + base32(counter, 4) + tag;
}

export function isQueueId(s: string): boolean {
  return QUEUE_ID_PATTERN.test(s);
}
