/**
 * The password worker (node:worker_threads) behind the wasm hasher: argon2id and bcrypt verification take
 * ~100–250 ms of CPU each, which must not stall the SMTP event loop. Requests are {id, op, password, hash?};
 * replies are {id, ok: true, value} or {id, ok: false, error}.
 */
import { parentPort } from "node:worker_threads";
import { hashPhc, verifyPhc } from "./phc.ts";

export interface PasswordRequest {
  id: number;
  op: "hash" | "verify";
  password: string;
  hash?: string;
}

export type PasswordReply = { id: number; ok: true; value: string | boolean } | { id: number; ok: false; error: string };

const port = parentPort;
if (port !== null) {
  port.on("message", (m: PasswordRequest) => {
    const work = m.op === "hash" ? hashPhc(m.password) : verifyPhc(m.password, m.hash ?? "");
    work.then(
      (value) => port.postMessage({ id: m.id, ok: true, value } satisfies PasswordReply),
      (e: unknown) => port.postMessage({ id: m.id, ok: false, error: String(e) } satisfies PasswordReply),
    );
  });
}
