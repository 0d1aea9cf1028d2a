import { describe, expect, test } from "vitest";
import { createRing } from "../ring/index.ts";
import { SyncBatcher } from "../queue/index.ts";
import { createBunDialer } from "../transport/bun/index.ts";
import { tempDir } from "../../test/helpers/server.ts";
import { defaultRemoteSettings } from "./remote/index.ts";
import { WorkerServices } from "./services.ts";
import type { WorkerInit } from "./worker-protocol.ts";

function init(dir: string): WorkerInit {
  return {
    type: "init",
    sab: createRing(16),
    ownSab: createRing(16),
    queueDir: `${dir}/queue`,
    mailDir: `${dir}/mail`,
    hostname: "mx.test",
    retryIntervalsMs: [60_000],
    maxAgeMs: 86_400_000,
    delayWarningMs: 0,
    remote: defaultRemoteSettings("mx.test", { routes: { "far.test": "127.0.0.1:2600" } }),
  };
}

describe("WorkerServices", () => {
  test("one courier per route kind, with its exactly-once flag", () => {
    const s = new WorkerServices(init(tempDir("services")), new SyncBatcher(), { dialer: createBunDialer() });
    expect(s.courier("local")).toMatchObject({ name: "local", exactlyOnce: true });
    expect(s.courier("remote")).toMatchObject({ name: "remote", exactlyOnce: false });
    s.close();
  });

  test('local.delivery = "lmtp": route kind "local" goes to the LMTP courier (at least once)', () => {
    const i = { ...init(tempDir("services")), lmtp: { target: "unix:/run/dovecot/lmtp", hostname: "mx.test" } };
    const s = new WorkerServices(i, new SyncBatcher(), { dialer: createBunDialer() });
    expect(s.courier("local")).toMatchObject({ name: "lmtp", exactlyOnce: false });
    expect(s.courier("remote")).toMatchObject({ name: "remote" });
    s.close();
  });

  test("a SIGHUP that changes no relay setting keeps the remote courier (its connections and caches)", () => {
    const i = init(tempDir("services"));
    const s = new WorkerServices(i, new SyncBatcher(), { dialer: createBunDialer() });
    const local = s.courier("local");
    const remote = s.courier("remote");
    // The same values in a fresh object, as postMessage delivers them.
    expect(s.updateRemote(structuredClone(i.remote))).toBe(false);
    expect(s.courier("remote")).toBe(remote);
    expect(s.updateRemote({ ...i.remote, routes: { "far.test": "127.0.0.1:2601" } })).toBe(true);
    expect(s.courier("remote")).not.toBe(remote);
    // Maildir delivery depends on no relay setting.
    expect(s.courier("local")).toBe(local);
    s.close();
  });
});
