/**
 * Postfix's smtp-source as a load client: 5 parallel sessions, 500 messages of 1 KiB, all must arrive.
 */
import { execFile } from "node:child_process";
import { expect } from "vitest";
import { maildirFiles, peerPath, peerTest, useServer, waitFor } from "../helpers/index.ts";

const srv = useServer({ config: "[local]\ncatch_all = true\n[limits]\nmax_connections_per_ip = 50\n" });

peerTest("smtp-source", "smtp-source -s 5 -m 500 -l 1024: 500 messages arrive", async () => {
  const t0 = Date.now();
  await new Promise<void>((resolve, reject) =>
    execFile(
      peerPath("smtp-source")!,
      ["-s", "5", "-m", "500", "-l", "1024", "-f", "a@x.test", "-t", "u@example.test", `127.0.0.1:${srv().ports.mx}`],
      { timeout: 120_000 },
      (err, _out, stderr) => (err ? reject(new Error(`smtp-source: ${err.message}\n${stderr}`)) : resolve()),
    ),
  );
  const sent = Date.now() - t0;
  await waitFor(() => maildirFiles(srv().dataDir, "example.test", "u").length >= 500, 60_000, 100);
  console.log(`smtp-source: 500 messages accepted in ${sent} ms, delivered in ${Date.now() - t0} ms`);
  expect(maildirFiles(srv().dataDir, "example.test", "u")).toHaveLength(500);
}, 180_000);
