/**
 * PasswordHasher for runtimes without Bun.password (Deno, Node): a small pool of node:worker_threads workers
 * running hash-wasm (password-worker.ts), started on first use. Idle workers are unref'd so that they never keep
 * a finished process alive, and stopped after IDLE_MS to give back their 64 MiB argon2 arenas.
 */
import { availableParallelism } from "node:os";
import { clearTimeout, setTimeout } from "node:timers";
import { Worker } from "node:worker_threads";
import type { PasswordReply, PasswordRequest } from "./password-worker.ts";

const IDLE_MS = 60_000;

interface Slot {
  worker: Worker;
  pending: Map<number, { resolve(v: string | boolean): void; reject(e: Error): void }>;
  idle: ReturnType<typeof setTimeout> | null;
}

export class WasmPasswordHasher {
  private readonly slots: Array<Slot | null>;
  private nextId = 1;

  constructor(threads = Math.min(2, availableParallelism())) {
    this.slots = new Array(Math.max(1, threads)).fill(null);
  }

  hash(password: string): Promise<string> {
    return this.call({ id: 0, op: "hash", password }) as Promise<string>;
  }

  verify(password: string, hash: string): Promise<boolean> {
    return (this.call({ id: 0, op: "verify", password, hash }) as Promise<boolean>).catch(() => false);
  }

  /** Stop every worker now; calls in flight are rejected. */
  close(): void {
    for (let i = 0; i < this.slots.length; i++) this.drop(i, new Error("password hasher closed"));
  }

  private call(req: PasswordRequest): Promise<string | boolean> {
    req.id = this.nextId++;
    const slot = this.pick();
    if (slot.idle !== null) clearTimeout(slot.idle);
    slot.idle = null;
    if (slot.pending.size === 0) slot.worker.ref();
    return new Promise((resolve, reject) => {
      slot.pending.set(req.id, { resolve, reject });
      slot.worker.postMessage(req);
    });
  }

  /** The least busy slot, starting a worker in an empty one. */
  private pick(): Slot {
    let best = -1;
    for (let i = 0; i < this.slots.length; i++) {
      const s = this.slots[i];
      if (s === null) return this.spawn(i);
      if (best < 0 || s.pending.size < this.slots[best]!.pending.size) best = i;
    }
    return this.slots[best]!;
  }

  private spawn(i: number): Slot {
    const worker = new Worker(new URL("./password-worker.ts", import.meta.url));
    const slot: Slot = { worker, pending: new Map(), idle: null };
    this.slots[i] = slot;
    worker.on("message", (r: PasswordReply) => {
      const p = slot.pending.get(r.id);
      if (p === undefined) return;
      slot.pending.delete(r.id);
      if (r.ok) p.resolve(r.value);
      else p.reject(new Error(r.error));
      if (slot.pending.size === 0) this.rest(i, slot);
    });
    worker.on("error", (e: Error) => this.drop(i, e));
    worker.on("exit", () => this.drop(i, new Error("password worker exited")));
    return slot;
  }

  private rest(i: number, slot: Slot): void {
    slot.worker.unref();
    slot.idle = setTimeout(() => this.drop(i, new Error("idle")), IDLE_MS);
    slot.idle.unref();
  }

  private drop(i: number, why: Error): void {
    const s = this.slots[i];
    if (s === null || s === undefined) return;
    this.slots[i] = null;
    if (s.idle !== null) clearTimeout(s.idle);
    for (const p of s.pending.values()) p.reject(why);
    s.pending.clear();
    void s.worker.terminate();
  }
}
