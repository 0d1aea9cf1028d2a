/**
 * Postfix's smtp-sink: accepts and discards, the protocol ceiling (`smtp-sink 127.0.0.1:PORT 1000`). Without -c:
 * its running counter, written to stdout per message, slowed the ceiling by about a third here (issue 10).
 */
import type { Peer, RunningPeer } from "./peer.ts";
import { exited, freePorts, startChild, stopChild, waitForSmtp, which } from "./proc.ts";

export function smtpSinkPeer(): Peer {
  return {
    name: "smtp-sink",
    role: "discards (protocol ceiling)",
    missing: () => (which("smtp-sink") ? null : "skipped (install: apt-get install -y postfix)"),
    async start(): Promise<RunningPeer> {
      const [port] = await freePorts(1);
      // smtp-sink refuses to run as root without a user to switch to.
      const user = process.getuid?.() === 0 ? ["-u", "nobody"] : [];
      const c = startChild(which("smtp-sink")!, [...user, `127.0.0.1:${port}`, "1000"]);
      await waitForSmtp(port!, 10_000, () => !exited(c.proc)).catch((e: Error) => {
        throw new Error(`smtp-sink: ${e.message}\n${c.output()}`);
      });
      return { port: port!, command: c.command, pid: c.proc.pid!, maildir: () => null, stop: () => stopChild(c), remove: () => {} };
    },
  };
}
