/**
 * Event-loop CPU per message of an MX session with the inbound checks on, against the same session with them off:
 * a real Session (the in-process tier, test/session/harness.ts) fed the checks bench's message (1 KiB, one
 * RSA-2048 signature, DMARC p=reject; native-bench/checks.ts) as MAIL, RCPT, DATA, body, one message after another.
 * The difference is what the checks cost the event loop in the session: the stage (test/checks/measure-stage.ts
 * measures it alone) and what comes with it (the forged-field filter, the busy phase at end of data, the prepended
 * field). Run by hand:
 *   npx bun test/checks/measure-session.ts [ITERATIONS]
 * A measurement, not a test.
 */
import { Resolver } from "../../src/dns/index.ts";
import type { Envelope, MessageSink, SpoolPort } from "../../src/mail/index.ts";
import { Session } from "../../src/session/index.ts";
import { FakeConn, sessionDeps, sessionTier, type MemorySpool } from "../session/harness.ts";
import { allChecksStage, benchSender, mainThreadCpu, SENDER_DOMAIN } from "./measure-common.ts";

const n = Number(process.argv[2] ?? 20000);
const sender = await benchSender(["rsa"], "alice@example.test");
const D = SENDER_DOMAIN;
const transaction = Buffer.from(`MAIL FROM:<bench@${D}>\r\nRCPT TO:<alice@example.test>\r\nDATA\r\n${sender.message.toString("latin1")}.\r\n`, "latin1");

const dns = new Resolver({ servers: [sender.dnsServer], timeoutMs: 1000, attempts: 1 });
const checks = allChecksStage(dns, "mx.example.test");

/**
 * A spool that keeps nothing and wakes the driver at each commit (the tier's MemorySpool keeps every message as
 * text, which would cost more than what is measured); the driver waits for the commit itself, not by polling: the
 * DNS packets and the thread pool's signature check are real asynchronous work, and spinning the event loop while
 * they run would be counted as the session's cost.
 */
class CountingSpool implements SpoolPort {
  committed = 0;
  last = "";
  onCommit = (): void => {};
  private seq = 0;

  begin(): MessageSink {
    return new CountingSink(`M${++this.seq}`, this);
  }
}

/** Counts the bytes written; a commit is counted by its spool (with the prepended fields) and resolves at once. */
class CountingSink implements MessageSink {
  size = 0;

  constructor(
    readonly id: string,
    private readonly spool: CountingSpool,
  ) {}

  write(bytes: Uint8Array): void {
    this.size += bytes.length;
  }

  commit(_envelope: Envelope, prepend?: Uint8Array): Promise<void> {
    this.spool.committed++;
    if (prepend !== undefined) this.spool.last = Buffer.from(prepend).toString("latin1");
    this.spool.onCommit();
    return Promise.resolve();
  }

  abort(): void {}
}

interface Driven {
  session: Session;
  conn: FakeConn;
  spool: CountingSpool;
}

async function run(d: Driven, count: number): Promise<void> {
  for (let i = 0; i < count; i++) {
    const before = d.spool.committed;
    const committed = new Promise<void>((resolve) => (d.spool.onCommit = resolve));
    d.conn.deliver(transaction);
    if (d.spool.committed === before) await committed;
    // The 250 reply follows the commit's promise.
    await Promise.resolve();
    await Promise.resolve();
    if (d.conn.ended) throw new Error("session closed");
    if (d.conn.writes.length > 1000) d.conn.writes.length = 0;
  }
}

function open(checked: boolean): Driven {
  const base = checked ? sessionTier({ stages: [checks], ownAuthservId: "mx.example.test" }) : sessionTier();
  const spool = new CountingSpool();
  const conn = new FakeConn("127.0.0.1", false, "succeed");
  const session = new Session(conn, base.settings, sessionDeps({ ...base, spool: spool as unknown as MemorySpool }, () => {}));
  conn.handler = session;
  session.start();
  conn.deliver(Buffer.from("EHLO client.bench\r\n"));
  return { session, conn, spool };
}

const tiers = { off: open(false), on: open(true) };
for (const t of Object.values(tiers)) await run(t, 2000);
const last = tiers.on.spool.last;
if (!/dkim=pass/.test(last) || !/dmarc=pass/.test(last)) throw new Error(`checks did not pass: ${last}`);
const cost: Record<string, number[]> = { off: [], on: [] };
for (let rep = 0; rep < 3; rep++) {
  for (const [name, t] of Object.entries(tiers)) {
    const m0 = mainThreadCpu()!;
    await run(t, n);
    cost[name]!.push((mainThreadCpu()! - m0) / n);
  }
}
const med = (a: number[]): number => [...a].sort((x, y) => x - y)[1]!;
console.log(
  `event loop per message (median of 3 × ${n}): checks off ${med(cost.off!).toFixed(1)} µs, on ${med(cost.on!).toFixed(1)} µs ` +
    `(+${(med(cost.on!) - med(cost.off!)).toFixed(1)} µs); runs off ${cost.off!.map((c) => c.toFixed(0)).join(", ")}, on ${cost.on!.map((c) => c.toFixed(0)).join(", ")}`,
);
await sender.stop();
