/**
 * `serve`: start the server, write DATA/ringmta.pid (for `queue flush`), and wire the signals:
 * SIGTERM/SIGINT drain and exit 0, SIGHUP reloads, SIGUSR1 retries deferred mail now.
 */
import { writeFileSync, unlinkSync } from "node:fs";
import { join } from "node:path";
import { startServer } from "../app/index.ts";
import { resolveConfig } from "../config/index.ts";
import { createLogger, type LogFormat } from "../observe/index.ts";
import { runtimeLimitations, runtimeName } from "../runtime/index.ts";
import type { Transport } from "../transport/types.ts";
import { flag, parseArgs, UsageError } from "./args.ts";
import { loadConfigOrReport, loadKeyringOrReport } from "./load.ts";

const EXIT_DEADLINE_MS = 9500;

export async function serveCommand(argv: string[], transport: () => Transport): Promise<number> {
  const a = parseArgs(argv, ["config", "log-format"], []);
  const fmt = flag(a, "log-format") ?? (process.stderr.isTTY ? "text" : "json");
  if (fmt !== "json" && fmt !== "text") throw new UsageError(`--log-format must be "json" or "text".`);
  const log = createLogger(fmt as LogFormat);
  // Said at every start, so that an operator on Deno knows what differs from Bun (README "Running on Deno").
  for (const note of runtimeLimitations()) log.warn("runtime.limitation", { runtime: runtimeName(), note });
  const config = loadConfigOrReport(a);
  if (!config) return 2;
  const dkimKeyring = loadKeyringOrReport(config);
  if (!dkimKeyring) return 2;
  const explicit = flag(a, "config");
  // Until the server is up, a SIGHUP or SIGUSR1 (whose default action ends the process) is noted, not fatal: the
  // reload or flush is done once startServer resolves. SIGTERM/SIGINT keep their default (stop) until then.
  const early = new Set<string>();
  const note = (signal: string) => (): void => void early.add(signal);
  const noteHup = note("SIGHUP");
  const noteUsr1 = note("SIGUSR1");
  process.on("SIGHUP", noteHup);
  process.on("SIGUSR1", noteUsr1);
  const server = await startServer(config, {
    transport: transport(),
    log,
    dkimKeyring,
    reloadConfig: () => resolveConfig(explicit, process.cwd()),
  });
  const pidFile = join(config.dataDir, "ringmta.pid");
  writeFileSync(pidFile, `${process.pid}\n`);
  log.info("server.ready", { pid: process.pid, config: config.configPath ?? "embedded defaults", hostname: config.hostname });

  return await new Promise<number>((resolveExit) => {
    let stopping = false;
    const stop = (signal: string): void => {
      if (stopping) return;
      stopping = true;
      log.info("signal", { signal });
      // CONTRACT: exit within 10 s whatever happens.
      setTimeout(() => {
        log.error("server.stop_timeout", {});
        resolveExit(1);
      }, EXIT_DEADLINE_MS).unref();
      server.shutdown().then(
        () => {
          try {
            unlinkSync(pidFile);
          } catch {
            // already gone
          }
          resolveExit(0);
        },
        (e: unknown) => {
          log.error("server.stop_failed", { error: String(e) });
          resolveExit(1);
        },
      );
    };
    process.on("SIGTERM", () => stop("SIGTERM"));
    process.on("SIGINT", () => stop("SIGINT"));
    process.on("SIGHUP", () => {
      log.info("signal", { signal: "SIGHUP" });
      void server.reload();
    });
    process.on("SIGUSR1", () => {
      log.info("signal", { signal: "SIGUSR1", action: "queue flush" });
      server.flushQueue();
    });
    process.off("SIGHUP", noteHup);
    process.off("SIGUSR1", noteUsr1);
    if (early.has("SIGHUP")) void server.reload();
    if (early.has("SIGUSR1")) server.flushQueue();
  });
}
