/**
 * CONTRACT "Embedded defaults": with no config file the server listens on 127.0.0.1:2525 and accepts any
 * me@localhost into ./data/mail/localhost/me/.
 */
import { existsSync } from "node:fs";
import { join } from "node:path";
import { afterAll, expect, test } from "vitest";
import {
  SmtpClient,
  canConnect,
  maildirFiles,
  readDelivered,
  removeDir,
  sendMail,
  simpleMessage,
  spawnRingmta,
  tempDir,
  uniqueId,
  waitFor,
  waitFor220,
  type Spawned,
} from "../helpers/index.ts";

const DEFAULT_PORTS = [2525, 2587, 2465, 9025];
let run: Spawned | null = null;
let cwd: string | null = null;

afterAll(async () => {
  if (run && run.proc.exitCode === null && run.proc.signalCode === null) {
    run.proc.kill("SIGKILL");
    await new Promise((r) => run!.proc.once("exit", r));
  }
  if (cwd) removeDir(cwd);
});

test("no config: 127.0.0.1:2525 answers and me@localhost lands in ./data/mail/localhost/me/new/", async () => {
  for (const p of DEFAULT_PORTS) {
    if (await canConnect(p)) {
      throw new Error(`port ${p} on 127.0.0.1 is busy (another ringmta or service?); the defaults test needs it free`);
    }
  }
  cwd = tempDir("ringmta-defaults-");
  run = spawnRingmta(["serve"], cwd);
  await waitFor220(2525, run.proc, run.logs, 20_000);

  const c = await SmtpClient.connect(2525);
  await c.hello();
  const mid = uniqueId("defaults");
  const r = await sendMail(c, "sender@remote.test", ["me@localhost"], simpleMessage({ to: "me@localhost", messageId: mid }));
  expect(r.final?.code, r.final?.raw).toBe(250);
  await c.cmd("QUIT");
  c.destroy();

  const files = await waitFor(() => {
    const f = maildirFiles(join(cwd!, "data"), "localhost", "me");
    return f.length ? f : null;
  }, 15_000);
  expect(files[0]).toContain(join(cwd, "data", "mail", "localhost", "me", "new"));
  expect(readDelivered(files[0]).body.toString("latin1")).toContain(mid);
  // The default TLS pair is generated on first start, relative to the working directory.
  expect(existsSync(join(cwd, "certs", "server.crt"))).toBe(true);
  expect(existsSync(join(cwd, "certs", "server.key"))).toBe(true);

  run.proc.kill("SIGTERM");
  const code = await new Promise<number | null>((resolve) => run!.proc.once("exit", (c) => resolve(c)));
  expect(code).toBe(0);
}, 60_000);
