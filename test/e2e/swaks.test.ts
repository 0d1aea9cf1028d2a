/**
 * swaks, the SMTP Swiss army knife, as a real client to a catch-all domain.
 */
import { execFile } from "node:child_process";
import { expect } from "vitest";
import { findDelivered, peerPath, peerTest, readDelivered, uniqueId, useServer, waitFor } from "../helpers/index.ts";

const srv = useServer({ config: "[local]\ncatch_all = true\n" });

peerTest("swaks", "swaks --to me@example.test: accepted and delivered with trace fields", async () => {
  const mid = uniqueId("swaks");
  const out = await new Promise<string>((resolve, reject) =>
    execFile(
      peerPath("swaks")!,
      [
        "--server", `127.0.0.1:${srv().ports.mx}`,
        "--from", "sender@remote.test",
        "--to", "me@example.test",
        "--helo", "swaks.client.test",
        "--header", `Message-Id: <${mid}>`,
        "--body", "hello from swaks",
      ],
      { timeout: 60_000 },
      (err, stdout, stderr) => (err ? reject(new Error(`swaks: ${err.message}\n${stdout}\n${stderr}`)) : resolve(stdout)),
    ),
  );
  expect(out).toMatch(/<- {2}250/);
  const files = await waitFor(() => {
    const f = findDelivered(srv().dataDir, "me@example.test", mid);
    return f.length ? f : null;
  }, 15_000);
  expect(files).toHaveLength(1);
  const d = readDelivered(files[0]);
  expect(d.trace.returnPath).toBe("<sender@remote.test>");
  expect(d.trace.deliveredTo).toBe("me@example.test");
  expect(d.body.toString("latin1")).toContain("hello from swaks");
});
