/**
 * `queue list [--json]`, `queue show ID`, `queue delete ID`, `queue flush` — like mailq / postqueue -p /
 * postsuper -d / postqueue -f. They read the spool files directly (safe while the server runs: reads are of
 * complete, renamed files; delete unlinks the item atomically). `flush` signals the running server (SIGUSR1 to
 * the pid in DATA/ringmta.pid) to retry deferred mail now.
 */
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { deleteItem, listQueue, showItem, type QueueListEntry } from "../queue/index.ts";
import { flag, parseArgs, UsageError } from "./args.ts";
import { loadConfigOrReport } from "./load.ts";

function line(e: QueueListEntry): string {
  const rcpts = e.recipients.map((r) => `    ${r.address} ${r.state} attempts=${r.attempts}${r.last_reply ? ` (${r.last_reply})` : ""}`);
  return `${e.id} ${e.size} ${e.arrival} <${e.sender}>\n${rcpts.join("\n")}\n`;
}

export function queueCommand(argv: string[]): number {
  const a = parseArgs(argv, ["config"], ["json"]);
  const [sub, id, ...extra] = a.positionals;
  if (extra.length > 0) throw new UsageError(`unexpected argument "${extra[0]}".`);
  const config = loadConfigOrReport(a);
  if (!config) return 2;
  const dir = join(config.dataDir, "queue");
  switch (sub) {
    case "list": {
      const items = listQueue(dir);
      if (a.flags.has("json")) process.stdout.write(JSON.stringify(items, null, 2) + "\n");
      else if (items.length === 0) process.stdout.write("queue is empty\n");
      else for (const e of items) process.stdout.write(line(e));
      return 0;
    }
    case "show": {
      if (id === undefined) throw new UsageError("usage: queue show ID.");
      const e = showItem(dir, id);
      if (!e) {
        process.stderr.write(`ringmta: no message ${id} in the queue.\n`);
        return 1;
      }
      process.stdout.write(JSON.stringify(e, null, 2) + "\n");
      return 0;
    }
    case "delete": {
      if (id === undefined) throw new UsageError("usage: queue delete ID.");
      if (!deleteItem(dir, id)) {
        process.stderr.write(`ringmta: no message ${id} in the queue.\n`);
        return 1;
      }
      process.stdout.write(`deleted ${id}\n`);
      return 0;
    }
    case "flush": {
      let pid: number;
      try {
        pid = Number(readFileSync(join(config.dataDir, "ringmta.pid"), "utf8").trim());
        process.kill(pid, "SIGUSR1");
      } catch {
        process.stderr.write("ringmta: no running server found (no live pid in DATA/ringmta.pid).\n");
        return 1;
      }
      process.stdout.write(`asked server ${pid} to retry deferred mail now\n`);
      return 0;
    }
    default:
      throw new UsageError("usage: queue list|show|delete|flush.");
  }
}
