/**
 * Runs every test/dialogs/*.dialog transcript against the real server, one test per file.
 *
 * Format (one directive per line; blank lines and other "#" lines are comments):
 *   # config: TOML          per-file config override lines (joined; files with equal overrides share a server)
 *   # listener: NAME        connect to this listener (default: mx)
 *   C: text                 send text + CRLF
 *   C+ text                 send text without CRLF
 *   C*N: text               send text + CRLF, N times
 *   S: 250                  expect one reply with this code
 *   S: 250 2.1.0            ... and this RFC 3463 enhanced code
 *   S: 250 +KW -KW          ... whose lines include (+) / lack (-) the EHLO keyword KW ("_" stands for a space)
 *   S: 530 5.7.0 | 538 5.7.11   any of the alternatives
 *   S: closed               the server closes the connection (with no further reply)
 * Escapes in C lines: <CRLF> <CR> <LF> <TAB> <NUL>, <REP n text> (text repeated n times, no escapes inside).
 * Consecutive C lines go out in ONE write (pipelined), flushed before the next S line.
 */
import { readdirSync, readFileSync } from "node:fs";
import { basename, join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, describe, expect, test } from "vitest";
import { SmtpClient, startServer, type Reply, type Srv } from "../helpers/index.ts";

const DIR = fileURLToPath(new URL(".", import.meta.url));

type Expect = { code: number; enhanced: string | null; plus: string[]; minus: string[] };
type Step =
  | { kind: "send"; bytes: Buffer; line: number }
  | { kind: "expect"; alts: Expect[]; text: string; line: number }
  | { kind: "closed"; line: number };

interface Dialog {
  name: string;
  config: string;
  listener: string;
  steps: Step[];
}

function unescape(text: string): Buffer {
  const expanded = text.replace(/<REP (\d+) ([^>]*)>/g, (_m, n: string, s: string) => s.repeat(Number(n)));
  const parts: Buffer[] = [];
  const re = /<(CRLF|CR|LF|TAB|NUL)>/g;
  let last = 0;
  for (let m = re.exec(expanded); m; m = re.exec(expanded)) {
    parts.push(Buffer.from(expanded.slice(last, m.index), "utf8"));
    parts.push(Buffer.from({ CRLF: "\r\n", CR: "\r", LF: "\n", TAB: "\t", NUL: "\0" }[m[1] as "CR"], "latin1"));
    last = m.index + m[0].length;
  }
  parts.push(Buffer.from(expanded.slice(last), "utf8"));
  return Buffer.concat(parts);
}

function parseExpect(spec: string, where: string): Expect {
  const tokens = spec.trim().split(/\s+/);
  const code = Number(tokens.shift());
  if (!Number.isInteger(code) || code < 200 || code > 599) throw new Error(`${where}: bad reply code in "${spec}"`);
  let enhanced: string | null = null;
  if (tokens[0] && /^\d\.\d{1,3}\.\d{1,3}$/.test(tokens[0])) enhanced = tokens.shift()!;
  const plus: string[] = [];
  const minus: string[] = [];
  for (const t of tokens) {
    if (t.startsWith("+")) plus.push(t.slice(1).replace(/_/g, " "));
    else if (t.startsWith("-")) minus.push(t.slice(1).replace(/_/g, " "));
    else throw new Error(`${where}: unknown token "${t}"`);
  }
  return { code, enhanced, plus, minus };
}

function parseDialog(name: string, text: string): Dialog {
  const config: string[] = [];
  let listener = "mx";
  const steps: Step[] = [];
  text.split(/\r?\n/).forEach((raw, i) => {
    const line = i + 1;
    const where = `${name}:${line}`;
    let m: RegExpExecArray | null;
    if ((m = /^# config: ?(.*)$/.exec(raw))) config.push(m[1]);
    else if ((m = /^# listener: *(\S+)\s*$/.exec(raw))) listener = m[1];
    else if (raw.trim() === "" || raw.startsWith("#")) return;
    else if ((m = /^C(?:\*(\d+))?: ?(.*)$/.exec(raw))) {
      const one = Buffer.concat([unescape(m[2]), Buffer.from("\r\n")]);
      const bytes = m[1] ? Buffer.concat(Array.from({ length: Number(m[1]) }, () => one)) : one;
      steps.push({ kind: "send", bytes, line });
    } else if ((m = /^C\+ ?(.*)$/.exec(raw))) steps.push({ kind: "send", bytes: unescape(m[1]), line });
    else if ((m = /^S: *closed\s*$/.exec(raw))) steps.push({ kind: "closed", line });
    else if ((m = /^S: (.*)$/.exec(raw))) {
      steps.push({ kind: "expect", alts: m[1].split("|").map((a) => parseExpect(a, where)), text: m[1], line });
    } else throw new Error(`${where}: cannot parse ${JSON.stringify(raw)}`);
  });
  return { name, config: config.join("\n"), listener, steps };
}

function ehloHas(reply: Reply, kw: string): boolean {
  const k = kw.toUpperCase();
  return reply.lines.some((l) => {
    const u = l.toUpperCase();
    return u === k || u.startsWith(k + " ");
  });
}

function matches(reply: Reply, e: Expect): boolean {
  return (
    reply.code === e.code &&
    (e.enhanced === null || reply.enhanced === e.enhanced) &&
    e.plus.every((k) => ehloHas(reply, k)) &&
    !e.minus.some((k) => ehloHas(reply, k))
  );
}

async function run(d: Dialog, srv: Srv): Promise<void> {
  const port = srv.ports[d.listener];
  if (!port) throw new Error(`${d.name}: no listener named ${d.listener}`);
  const c = await SmtpClient.connect(port);
  const pending: Buffer[] = [];
  const flush = async (): Promise<void> => {
    if (pending.length) await c.send(Buffer.concat(pending.splice(0)));
  };
  try {
    for (const step of d.steps) {
      const where = `${d.name}.dialog:${step.line}`;
      if (step.kind === "send") {
        pending.push(step.bytes);
        continue;
      }
      await flush();
      if (step.kind === "closed") {
        await c.closed(10_000).catch(() => {
          throw new Error(`${where}: expected the server to close the connection; it stayed open`);
        });
        expect(c.pending.toString("latin1"), `${where}: data after the last expected reply`).toBe("");
        return;
      }
      let reply: Reply;
      try {
        reply = await c.readReply(20_000);
      } catch (err) {
        throw new Error(`${where}: expected "S: ${step.text}" but ${(err as Error).message}`);
      }
      expect(step.alts.some((a) => matches(reply, a)), `${where}: expected "S: ${step.text}", got:\n${reply.raw}`).toBe(true);
    }
    // No reply may be left unaccounted for at the end of a transcript.
    expect(c.pending.toString("latin1"), `${d.name}.dialog: reply not covered by the transcript`).toBe("");
  } finally {
    c.destroy();
  }
}

const files = readdirSync(DIR)
  .filter((f) => f.endsWith(".dialog"))
  .sort();
const dialogs = files.map((f) => parseDialog(basename(f, ".dialog"), readFileSync(join(DIR, f), "utf8")));

// One server per distinct config override, started when its first dialog runs and shared by the rest.
const servers = new Map<string, Promise<Srv>>();
function serverFor(config: string): Promise<Srv> {
  let s = servers.get(config);
  if (!s) {
    s = startServer({ config });
    servers.set(config, s);
  }
  return s;
}

afterAll(async () => {
  await Promise.all([...servers.values()].map(async (p) => (await p.catch(() => null))?.dispose()));
});

describe("dialogs", () => {
  test("there are dialog files", () => {
    expect(dialogs.length).toBeGreaterThan(0);
  });
  for (const d of dialogs) {
    test(d.name, async () => {
      await run(d, await serverFor(d.config));
    });
  }
});
