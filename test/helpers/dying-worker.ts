/**
 * A delivery worker entry for pool tests that dies once: the first worker to claim items after start ends its
 * thread right after telling the pool what it claimed (before delivering any of them), as a crash would. Which
 * worker died is recorded in the marker file named by RINGMTA_TEST_DIE_MARKER, so replacements live.
 */
import { existsSync, writeFileSync } from "node:fs";
import { runDeliveryWorker } from "../../src/delivery/index.ts";
import { createBunDialer } from "../../src/transport/bun/index.ts";

const marker = process.env.RINGMTA_TEST_DIE_MARKER ?? "";
const scope = globalThis as unknown as { postMessage(m: unknown): void; close(): void };
const post = scope.postMessage.bind(scope);
scope.postMessage = (m: unknown) => {
  post(m);
  const msg = m as { type?: string; ids?: string[] };
  if (msg.type === "claimed" && marker !== "" && !existsSync(marker)) {
    writeFileSync(marker, msg.ids!.join("\n"));
    scope.close();
    throw new Error("worker dies on purpose (test)");
  }
};
runDeliveryWorker({ dialer: createBunDialer() });
