/**
 * nodemailer's smtp-server on Node, discarding each message as it streams in. It is installed with npm into a
 * temp dir at run time (announced; not a dependency of ringmta) and reused by later runs.
 */
import { existsSync, mkdirSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Peer, RunningPeer } from "./peer.ts";
import { exited, freePorts, runSync, startChild, stopChild, waitForSmtp, which } from "./proc.ts";

const DIR = join(tmpdir(), "ringmta-bench-smtp-server");

const SCRIPT = `// Written by ringmta's native-bench: smtp-server discarding every message.
const { SMTPServer } = require("smtp-server");
const server = new SMTPServer({
  logger: false,
  authOptional: true,
  disabledCommands: ["STARTTLS", "AUTH"],
  size: 52428800,
  onData(stream, _session, callback) {
    stream.on("data", () => {});
    stream.on("end", () => callback());
  },
});
server.listen(Number(process.argv[2]), "127.0.0.1");
`;

function install(): void {
  if (existsSync(join(DIR, "node_modules", "smtp-server", "package.json"))) {
    console.error(`bench: using smtp-server from ${DIR} (installed by an earlier run; not a dependency of ringmta)`);
    return;
  }
  console.error(`bench: installing smtp-server with npm into ${DIR} (not a dependency of ringmta)`);
  mkdirSync(DIR, { recursive: true });
  writeFileSync(join(DIR, "package.json"), '{ "private": true }\n');
  const r = runSync(which("npm")!, ["install", "--no-audit", "--no-fund", "--no-save", "smtp-server"], { cwd: DIR, timeoutMs: 300_000 });
  if (r.status !== 0) throw new Error(`npm install smtp-server failed: ${r.stderr.slice(-2000)}`);
}

export function smtpServerPeer(): Peer {
  return {
    name: "smtp-server",
    role: "Node, discards",
    missing() {
      if (!which("node")) return "skipped (install Node.js)";
      if (!which("npm")) return "skipped (install npm)";
      return null;
    },
    async start(): Promise<RunningPeer> {
      install();
      writeFileSync(join(DIR, "sink.cjs"), SCRIPT);
      const [port] = await freePorts(1);
      const c = startChild(which("node")!, [join(DIR, "sink.cjs"), String(port)], { cwd: DIR });
      await waitForSmtp(port!, 20_000, () => !exited(c.proc)).catch((e: Error) => {
        throw new Error(`smtp-server: ${e.message}\n${c.output()}`);
      });
      return { port: port!, command: c.command, pid: c.proc.pid!, maildir: () => null, stop: () => stopChild(c), remove: () => {} };
    },
  };
}
