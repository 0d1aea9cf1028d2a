/**
 * The first stage: loop detection (RFC 5321 §6.3). A message that already carries more than max_hops Received
 * fields has gone round a loop; it is refused after end of data (CONTRACT: 554 5.4.6, nothing delivered).
 * The counter reads only the header section, so a large body costs nothing.
 */
import { ReceivedCounter, Reply } from "../protocol/index.ts";
import type { EndVerdict, MessageObserver, Stage, StageSession } from "../mail/index.ts";

class HopObserver implements MessageObserver {
  private readonly counter = new ReceivedCounter();
  constructor(private readonly maxHops: () => number) {}
  write(bytes: Uint8Array): void {
    this.counter.feed(bytes);
  }
  end(): EndVerdict {
    return this.counter.count > this.maxHops() ? { kind: "reject", reply: Reply.loop } : null;
  }
}

/** `maxHops` is read at each message, so a SIGHUP that changes limits.max_hops applies to the next one. */
export function hopCounterStage(maxHops: () => number): Stage {
  const session: StageSession = { message: () => new HopObserver(maxHops) };
  return { name: "hops", open: () => session };
}
