/**
 * CONTRACT (SIGHUP re-reads the config; the pid does not change): a SIGHUP or SIGUSR1 that arrives while the
 * server is still starting must not end the process (their default action), only be acted on once it is up.
 */
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, expect, test } from "vitest";
import { freePorts, waitFor } from "../helpers/index.ts";
import { spawnRingmta, waitFor220 } from "../helpers/server.ts";

const dir = mkdtempSync(join(tmpdir(), "ringmta-early-signal-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

test("SIGHUP and SIGUSR1 during start-up: the server comes up, then reloads; the pid stays", async () => {
  const [port] = await freePorts(1);
  writeFileSync(
    join(dir, "ringmta.toml"),
    `hostname = "mx.early.test"\ndata_dir = "data"\n[metrics]\nlisten = ""\n[[listeners]]\nname = "mx"\nhost = "127.0.0.1"\nport = ${port}\ntls = "none"\nauth = "off"\n`,
  );
  const s = spawnRingmta(["serve", "--config", join(dir, "ringmta.toml")], dir);
  try {
    // The listener is bound while startServer still runs (workers, recovery and the ready line come after it).
    await waitFor(() => s.logs().includes('"listener.up"'), 20_000, 5);
    expect(s.logs()).not.toContain('"server.ready"');
    s.proc.kill("SIGHUP");
    s.proc.kill("SIGUSR1");
    await waitFor220(port!, s.proc, s.logs, 20_000);
    await waitFor(() => s.logs().includes('"config.reloaded"'), 10_000);
    expect(s.proc.exitCode).toBeNull();
    expect(s.proc.signalCode).toBeNull();
  } finally {
    s.proc.kill("SIGTERM");
    await new Promise((r) => s.proc.once("exit", r));
  }
}, 60_000);
