/**
 * The main-thread side of delivery: a ring shared with N worker threads (worker.ts). Ids go in through
 * enqueue(); when the ring is full they wait in an in-memory backlog that is moved into the ring as workers claim
 * items. Deferred items wait in one sorted schedule served by a single timer. A worker that dies is replaced, and
 * the ids it had claimed are queued again with FLAG_RECHECK (the Maildir courier then detects copies already made).
 * A fresh small item travels as a segment token (queue/segment.ts) until a result says its record is released.
 *
 * Mailbox affinity: one worker owns a Maildir directory at a time, so that two workers do not contend on one
 * mailbox's directory (measured: `rwsem_spin_on_owner` in the kernel, about 40 µs per message when one mailbox
 * takes everything). Each worker has a ring of its own besides the shared one; an item with a local recipient
 * goes to the ring of the worker chosen by a hash of its first local mailbox, every time it is queued (retries and
 * crash re-queues included: a replacement worker takes over its slot's ring), and to the shared ring when that
 * ring is full or it has no local recipient. Workers take from their own ring first, then from the shared one.
 */
import { createRing, Ring } from "../ring/index.ts";
import { deleteItem, DsnWaits, parseToken } from "../queue/index.ts";
import { defaultRemoteSettings } from "./remote/index.ts";
import type { RemoteSettings } from "./remote/index.ts";
import type { LmtpSettings } from "./lmtp/index.ts";
import { COURIER_KINDS, FLAG_RECHECK } from "./worker-protocol.ts";
import type { Envelope, Route } from "../mail/index.ts";
import type { DeliveryResult, PoolToWorker, WorkerInit, WorkerToPool } from "./worker-protocol.ts";

export type { DeliveryResult } from "./worker-protocol.ts";

export interface PoolLog {
  info(event: string, fields: Record<string, unknown>): void;
  warn(event: string, fields: Record<string, unknown>): void;
  error(event: string, fields: Record<string, unknown>): void;
}

export interface DeliveryPoolOptions {
  /** The worker entry module (app/delivery-worker.ts: it picks the runtime's Dialer and runs the worker). */
  workerUrl: InstanceType<typeof URL> | string;
  workers: number;
  queueDir: string;
  mailDir: string;
  hostname: string;
  retryIntervalsMs: number[];
  /** queue.max_age; default 5 days. */
  maxAgeMs?: number;
  /** queue.delay_warning; 0 = never (the default here). */
  delayWarningMs?: number;
  /** Routing and client settings of the remote courier; default: MX delivery on port 25, RFC timeouts. */
  remote?: RemoteSettings;
  /** local.delivery = "lmtp": the LMTP server local recipients go to (read at start; a change takes a restart). */
  lmtp?: LmtpSettings;
  /** Power of 2; default 4096. */
  ringCapacity?: number;
  /** Every result as it arrives (metrics, logs); `worker`: the slot of the worker that made it. */
  onResult?(r: DeliveryResult, worker: number): void;
  /**
   * A result with DSN notices (r.notices: failures, delay warnings, successes asked for) or a finished item kept
   * for its bounce (r.kept). The item is still in the spool while this runs; the pool deletes a kept item once
   * this resolves (when absent, at once).
   */
  onFinished?(r: DeliveryResult): Promise<void> | void;
  /** The segment record behind a ref given to enqueue() is no longer needed (Spool.release). */
  onReleased?(ref: string): void;
  log?: PoolLog;
}

interface Handle {
  worker: Worker;
  slot: number;
  alive: boolean;
  claimed: Set<string>;
  ready: () => void;
  stopped: () => void;
}

const RESTART_DELAY_MS = 200;
const STOP_TIMEOUT_MS = 8000;
const FIVE_DAYS = 5 * 86_400_000;

export class DeliveryPool {
  private opts: DeliveryPoolOptions;
  private readonly sab: SharedArrayBuffer;
  private readonly ring: Ring;
  /** One ring per worker slot (mailbox affinity), kept across a worker's replacement. */
  private readonly ownSabs: SharedArrayBuffer[];
  private readonly own: Ring[];
  /** The worker slot of items with a local recipient, by id, while they are in the spool. */
  private readonly affinity = new Map<string, number>();
  private readonly handles: Array<Handle | null>;
  /** Ids in the ring, the backlog or a worker's hands, with their flags. Guards against double delivery. */
  private readonly outstanding = new Map<string, number>();
  /** The segment token of items still held by a segment record, by id. */
  private readonly tokens = new Map<string, string>();
  private backlog: Array<{ id: string; flags: number }> = [];
  private backlogHead = 0;
  private notifyQueued = false;
  /** Deferred items by due time, ascending; `due` holds the current time of each id. */
  private scheduled: Array<{ at: number; id: string }> = [];
  private readonly due = new Map<string, number>();
  private timer: ReturnType<typeof setTimeout> | null = null;
  private timerAt = 0;
  private started = false;
  private stopping = false;

  constructor(opts: DeliveryPoolOptions) {
    if (!Number.isInteger(opts.workers) || opts.workers < 1) throw new RangeError("workers must be a positive integer");
    this.opts = opts;
    this.sab = createRing(opts.ringCapacity ?? 4096);
    this.ring = new Ring(this.sab);
    this.ownSabs = Array.from({ length: opts.workers }, () => createRing(opts.ringCapacity ?? 4096));
    this.own = this.ownSabs.map((s) => new Ring(s));
    this.handles = new Array(opts.workers).fill(null);
  }

  /** Spawn the workers; resolves when every one has initialised. */
  async start(): Promise<void> {
    if (this.started) return;
    this.started = true;
    await Promise.all(this.handles.map((_, slot) => this.spawn(slot)));
  }

  /**
   * Queue an item for delivery now. `ref`: its id, or the segment token the spool committed it under
   * (CommittedItem.ref), which the ring carries until a worker releases the record. `recovered`: found at start-up,
   * so a copy may already have been delivered.
   */
  enqueue(ref: string, recovered = false, envelope?: Envelope): void {
    const { id, seg } = parseToken(ref);
    if (seg !== null) this.tokens.set(id, ref);
    if (envelope !== undefined) this.pin(id, envelope);
    this.push(id, recovered ? FLAG_RECHECK : 0);
  }

  /**
   * Remember which worker owns `id`'s first local mailbox (none: any worker takes it). Given with enqueue() or
   * schedule(); kept until the item is done.
   */
  private pin(id: string, envelope: Envelope): void {
    const n = this.handles.length;
    if (n < 2) return;
    for (const r of envelope.recipients) {
      if (r.route.kind === "local") {
        this.affinity.set(id, mailboxHash(r.route) % n);
        return;
      }
    }
  }

  /** What the ring carries for `id`: its segment token while a record holds it, else the id. */
  private token(id: string): string {
    return this.tokens.get(id) ?? id;
  }

  /** Queue `id` again at `atMs` (a deferred retry). The item is re-checked for copies made by earlier attempts. */
  schedule(id: string, atMs: number, envelope?: Envelope): void {
    if (this.stopping) return;
    if (envelope !== undefined) this.pin(id, envelope);
    this.due.set(id, atMs);
    let lo = 0;
    let hi = this.scheduled.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (this.scheduled[mid].at <= atMs) lo = mid + 1;
      else hi = mid;
    }
    this.scheduled.splice(lo, 0, { at: atMs, id });
    this.arm();
  }

  /** SIGHUP: new relay settings (routes, smart host, DNS) for every worker, and for workers started later. */
  updateRemote(remote: RemoteSettings): void {
    this.opts = { ...this.opts, remote };
    for (const h of this.handles) if (h?.alive) h.worker.postMessage({ type: "remote", remote } satisfies PoolToWorker);
  }

  /** Move every scheduled item to the ring now (`queue flush`). */
  flushScheduled(): void {
    const items = this.scheduled;
    this.scheduled = [];
    for (const { id, at } of items) {
      if (this.due.get(id) !== at) continue;
      this.due.delete(id);
      this.push(id, FLAG_RECHECK);
    }
  }

  /**
   * Does an item have a pending recipient that a worker can deliver? Items whose pending recipients all lack a
   * courier (remote, before the remote courier exists) are not enqueued: they would only be loaded for nothing.
   */
  static wants(envelope: Envelope, state?: ReadonlyArray<{ status: string }>): boolean {
    return envelope.recipients.some(
      (r, i) =>
        COURIER_KINDS.includes(r.route.kind) &&
        (state === undefined || (state[i].status !== "delivered" && state[i].status !== "failed")),
    );
  }

  /** Items waiting for a worker (ring + backlog). */
  get depth(): number {
    let d = this.ring.depth + (this.backlog.length - this.backlogHead);
    for (const r of this.own) d += r.depth;
    return d;
  }

  /** Items waiting for their next attempt. */
  get scheduledCount(): number {
    return this.due.size;
  }

  healthy(): boolean {
    return this.started && !this.stopping && this.handles.every((h) => h !== null && h.alive);
  }

  /**
   * Stop the workers after their in-flight deliveries; what is still queued stays in the spool for the next start.
   * A worker still busy after `timeoutMs` is terminated: its items are re-checked at the next start.
   */
  async stop(timeoutMs = STOP_TIMEOUT_MS): Promise<void> {
    if (this.stopping) return;
    this.stopping = true;
    if (this.timer !== null) clearTimeout(this.timer);
    this.timer = null;
    await Promise.all(
      this.handles.map(async (h) => {
        if (h === null || !h.alive) return;
        await new Promise<void>((resolve) => {
          const t = setTimeout(() => {
            this.opts.log?.warn("delivery.stop_timeout", { slot: h.slot, claimed: h.claimed.size });
            resolve();
          }, timeoutMs);
          h.stopped = () => {
            clearTimeout(t);
            resolve();
          };
          h.worker.postMessage({ type: "stop" } satisfies PoolToWorker);
        });
        h.alive = false;
        h.worker.terminate();
      }),
    );
  }

  private push(id: string, flags: number): void {
    if (this.stopping) return;
    const had = this.outstanding.get(id);
    if (had !== undefined) {
      // Already on its way; keep the stronger flag for a copy still in the backlog.
      this.outstanding.set(id, had | flags);
      return;
    }
    this.outstanding.set(id, flags);
    // The owner's ring first (it is not behind the backlog: that only holds the shared ring's overflow).
    const slot = this.affinity.get(id);
    if (slot === undefined || !this.own[slot].push(this.token(id), flags)) {
      if (this.backlogHead < this.backlog.length || !this.ring.push(this.token(id), flags)) this.backlog.push({ id, flags });
    }
    this.queueNotify();
  }

  private flushBacklog(): void {
    let moved = false;
    while (this.backlogHead < this.backlog.length) {
      const b = this.backlog[this.backlogHead];
      if (!this.ring.push(this.token(b.id), this.outstanding.get(b.id) ?? b.flags)) break;
      this.backlogHead++;
      moved = true;
    }
    if (this.backlogHead === this.backlog.length) {
      this.backlog = [];
      this.backlogHead = 0;
    } else if (this.backlogHead > 4096 && this.backlogHead * 2 > this.backlog.length) {
      this.backlog = this.backlog.slice(this.backlogHead);
      this.backlogHead = 0;
    }
    if (moved) this.queueNotify();
  }

  /** One notify per burst of pushes: a wake-up per id would cost a syscall each. */
  private queueNotify(): void {
    if (this.notifyQueued) return;
    this.notifyQueued = true;
    queueMicrotask(() => {
      this.notifyQueued = false;
      // Workers park on their own ring and watch the shared one from there (Ring.waitForItems' `also`), so a push
      // to either wakes through their own rings; each notify is one atomic load when nobody sleeps on it.
      for (const r of this.own) r.notify();
    });
  }

  private arm(): void {
    const first = this.scheduled[0];
    if (first === undefined || this.stopping) return;
    if (this.timer !== null && this.timerAt <= first.at) return;
    if (this.timer !== null) clearTimeout(this.timer);
    this.timerAt = first.at;
    this.timer = setTimeout(() => this.fire(), Math.max(0, first.at - Date.now()));
  }

  private fire(): void {
    this.timer = null;
    const now = Date.now();
    let k = 0;
    while (k < this.scheduled.length && this.scheduled[k].at <= now) k++;
    const dueNow = this.scheduled.splice(0, k);
    for (const { id, at } of dueNow) {
      if (this.due.get(id) !== at) continue; // superseded by a later schedule()
      this.due.delete(id);
      this.push(id, FLAG_RECHECK);
    }
    this.arm();
  }

  private spawn(slot: number): Promise<void> {
    return new Promise<void>((resolveReady) => {
      const url = this.opts.workerUrl;
      const worker = new Worker(typeof url === "string" ? url : url.href, { type: "module" });
      const h: Handle = { worker, slot, alive: true, claimed: new Set(), ready: resolveReady, stopped: () => {} };
      this.handles[slot] = h;
      worker.onmessage = (e: MessageEvent) => this.onMessage(h, e.data as WorkerToPool);
      worker.onerror = (e: Event) => {
        e.preventDefault();
        this.onDeath(h, (e as ErrorEvent).message ?? "worker error");
      };
      // Bun reports a worker's exit as "close"; an exit we did not ask for is a death.
      worker.addEventListener("close", () => this.onDeath(h, "worker exited"));
      const init: WorkerInit = {
        type: "init",
        sab: this.sab,
        ownSab: this.ownSabs[slot],
        queueDir: this.opts.queueDir,
        mailDir: this.opts.mailDir,
        hostname: this.opts.hostname,
        retryIntervalsMs: this.opts.retryIntervalsMs,
        maxAgeMs: this.opts.maxAgeMs ?? FIVE_DAYS,
        delayWarningMs: this.opts.delayWarningMs ?? 0,
        remote: this.opts.remote ?? defaultRemoteSettings(this.opts.hostname),
        ...(this.opts.lmtp !== undefined ? { lmtp: this.opts.lmtp } : {}),
      };
      worker.postMessage(init satisfies PoolToWorker);
    });
  }

  private onMessage(h: Handle, msg: WorkerToPool): void {
    switch (msg.type) {
      case "ready":
        h.ready();
        return;
      case "claimed":
        for (const id of msg.ids) h.claimed.add(id);
        this.flushBacklog();
        return;
      case "results":
        for (const r of msg.results) {
          h.claimed.delete(r.id);
          this.outstanding.delete(r.id);
        }
        this.flushBacklog();
        for (const r of msg.results) this.onResult(r, h.slot);
        return;
      case "stopped":
        h.stopped();
        return;
    }
  }

  private onResult(r: DeliveryResult, worker: number): void {
    if (r.released) {
      const ref = this.tokens.get(r.id);
      if (ref !== undefined) {
        this.tokens.delete(r.id);
        this.opts.onReleased?.(ref);
      }
    }
    this.opts.onResult?.(r, worker);
    if (r.done) this.affinity.delete(r.id);
    if (r.error !== undefined) {
      this.opts.log?.warn("delivery.error", { id: r.id, error: r.error });
      // A vanished item is simply gone; otherwise retry after the first interval, re-checking for copies.
      if (!r.done) this.schedule(r.id, Date.now() + this.opts.retryIntervalsMs[0]);
      return;
    }
    if (r.done) {
      if (r.kept) void this.finish(r, true);
      return;
    }
    if (r.notices.length > 0) void this.finish(r, false);
    if (r.nextAttempt > 0) this.schedule(r.id, r.nextAttempt);
  }

  private async finish(r: DeliveryResult, remove: boolean): Promise<void> {
    try {
      await this.opts.onFinished?.(r);
      if (remove) deleteItem(this.opts.queueDir, r.id);
    } catch (err) {
      // A DSN waiting for the directory keeps the item; the notifier sends it (and deletes a finished one) later.
      if (err instanceof DsnWaits) return;
      this.opts.log?.error("delivery.finish_failed", { id: r.id, error: String(err) });
    }
  }

  private onDeath(h: Handle, reason: string): void {
    if (!h.alive) return;
    h.alive = false;
    h.worker.terminate();
    h.ready();
    h.stopped();
    if (this.stopping) return;
    this.opts.log?.error("delivery.worker_died", { slot: h.slot, reason, claimed: h.claimed.size });
    // What it had claimed may be partly delivered: queue it again with the re-check flag.
    for (const id of h.claimed) {
      this.outstanding.delete(id);
      this.push(id, FLAG_RECHECK);
    }
    h.claimed.clear();
    setTimeout(() => {
      if (!this.stopping && this.handles[h.slot] === h) void this.spawn(h.slot);
    }, RESTART_DELAY_MS);
  }
}

/** FNV-1a over a local mailbox's domain and local part: the same mailbox, the same worker. */
function mailboxHash(route: Extract<Route, { kind: "local" }>): number {
  let h = 0x811c9dc5;
  const add = (s: string): void => {
    for (let i = 0; i < s.length; i++) {
      h ^= s.charCodeAt(i);
      h = Math.imul(h, 0x01000193);
    }
  };
  add(route.domain);
  h ^= 0x2f; // "/"
  h = Math.imul(h, 0x01000193);
  add(route.localPart);
  return h >>> 0;
}
