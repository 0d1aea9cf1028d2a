/**
 * The layer rules of ARCHITECTURE.md, checked on the import lines of src/**\/*.ts (test files excluded: they may
 * import vitest and fixtures). Each violation is reported as `src/file.ts:LINE: what is wrong`.
 */
import { existsSync, readdirSync, readFileSync, statSync } from "node:fs";
import { dirname, join, normalize, relative } from "node:path";
import { fileURLToPath } from "node:url";
import { describe, expect, test } from "vitest";

const SRC = fileURLToPath(new URL("../../src/", import.meta.url));

interface Import {
  from: string; // src-relative file, e.g. "session/session.ts"
  line: number;
  spec: string;
  /** src-relative target for relative specs, null for node: and packages. */
  target: string | null;
  typeOnly: boolean;
}

function walk(dir: string, out: string[] = []): string[] {
  if (!existsSync(dir)) return out;
  for (const name of readdirSync(dir).sort()) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) walk(p, out);
    else if (name.endsWith(".ts") && !name.endsWith(".d.ts")) out.push(p);
  }
  return out;
}

/** Blanks out comments, keeping offsets and newlines, so line numbers stay right. */
function stripComments(src: string): string {
  return src
    .replace(/\/\*[\s\S]*?\*\//g, (m) => m.replace(/[^\n]/g, " "))
    .replace(/(^|[^:"'`\\])\/\/[^\n]*/g, (m, pre: string) => pre + " ".repeat(m.length - pre.length));
}

function lineAt(text: string, index: number): number {
  let n = 1;
  for (let i = 0; i < index; i++) if (text.charCodeAt(i) === 10) n++;
  return n;
}

const STATIC = /(^|[\n;])\s*(import|export)\s+(type\s+)?(?:[\w*{}\s,$]*?\s+from\s+)?["']([^"']+)["']/g;
const DYNAMIC = /\bimport\s*\(\s*["']([^"']+)["']\s*\)/g;

const all = walk(SRC).map((p) => relative(SRC, p).split("\\").join("/"));
const code = all.filter((f) => !f.endsWith(".test.ts"));

function importsOf(file: string): Import[] {
  const text = stripComments(readFileSync(join(SRC, file), "utf8"));
  const out: Import[] = [];
  const add = (spec: string, index: number, typeOnly: boolean): void => {
    const target = spec.startsWith(".") ? normalize(join(dirname(file), spec)).split("\\").join("/") : null;
    out.push({ from: file, line: lineAt(text, index), spec, target, typeOnly });
  };
  for (const m of text.matchAll(STATIC)) add(m[4], m.index! + m[0].search(/import|export/), m[3] !== undefined);
  for (const m of text.matchAll(DYNAMIC)) add(m[1], m.index!, false);
  return out;
}

const imports = code.flatMap(importsOf);
const where = (i: Import): string => `src/${i.from}:${i.line}: "${i.spec}"`;
const within = (t: string | null, folder: string): boolean => t !== null && t.startsWith(folder + "/");
const isNode = (i: Import): boolean => i.spec.startsWith("node:");

function report(violations: string[]): void {
  if (violations.length) console.log(violations.join("\n"));
  expect(violations).toEqual([]);
}

/** Violations of `allowed` among the imports of files under `folder`. */
function rule(folder: string, allowed: (i: Import) => boolean, why: string): string[] {
  return imports.filter((i) => i.from.startsWith(folder + "/") && !allowed(i)).map((i) => `${where(i)} ${why}`);
}

describe("architecture: import rules", () => {
  test("src/ has code to check", () => {
    expect(code.length).toBeGreaterThan(0);
  });

  test("relative imports use .ts and name an existing file", () => {
    report(
      imports
        .filter((i) => i.target !== null && (!i.spec.endsWith(".ts") || !existsSync(join(SRC, i.target))))
        .map((i) => `${where(i)} does not name an existing .ts file`),
    );
  });

  test("protocol/ imports nothing outside protocol/", () => {
    report(rule("protocol", (i) => within(i.target, "protocol"), "protocol/ must be pure: imports only protocol/"));
  });

  test("nothing imports main.ts, cli/ or app/ (except main.ts → cli, cli → app)", () => {
    const v: string[] = [];
    for (const i of imports) {
      if (i.target === "main.ts") v.push(`${where(i)} nothing may import main.ts`);
      if (within(i.target, "cli") && i.from !== "main.ts" && !i.from.startsWith("cli/")) {
        v.push(`${where(i)} only main.ts may import cli/`);
      }
      if (within(i.target, "app") && !i.from.startsWith("cli/") && !i.from.startsWith("app/")) {
        v.push(`${where(i)} only cli/ may import app/`);
      }
    }
    report(v);
  });

  test("mail/ (the shared kernel) imports nothing outside mail/", () => {
    report(rule("mail", (i) => within(i.target, "mail"), "mail/ is the shared kernel: pure, imports only mail/"));
  });

  test("session/ imports only protocol/, session/, mail/ and types from transport/types.ts", () => {
    report(
      rule(
        "session",
        (i) =>
          within(i.target, "protocol") ||
          within(i.target, "session") ||
          within(i.target, "mail") ||
          (i.typeOnly && i.target === "transport/types.ts"),
        "session/ may import only protocol/, session/, mail/, and `import type` from transport/types.ts",
      ),
    );
  });

  test("inbound/ (the message stages) imports only inbound/, mail/, dns/, dkim/, checks/, protocol/ and node: modules", () => {
    report(
      rule(
        "inbound",
        (i) =>
          isNode(i) ||
          within(i.target, "inbound") ||
          within(i.target, "mail") ||
          within(i.target, "dns") ||
          within(i.target, "dkim") ||
          within(i.target, "checks") ||
          within(i.target, "protocol"),
        "inbound/ may import only mail/, dns/, dkim/, checks/, protocol/ (stages reach anything else through ports)",
      ),
    );
  });

  test("checks/ (SPF, DKIM/ARC verify, DMARC) imports only checks/, dns/, dkim/, mail/, node: modules, mailauth and tldts", () => {
    report(
      rule(
        "checks",
        (i) =>
          isNode(i) ||
          i.spec === "mailauth" ||
          i.spec.startsWith("mailauth/") ||
          // The Public Suffix List (RFC 7489 §3.2 organizational domain), pinned to the version mailauth pins.
          i.spec === "tldts" ||
          within(i.target, "checks") ||
          within(i.target, "dns") ||
          within(i.target, "dkim") ||
          within(i.target, "mail"),
        "checks/ may import only dns/, dkim/, mail/, node: modules, mailauth and tldts (no sessions, no I/O of its own)",
      ),
    );
  });

  test("dkim/ (signing and keys) imports only dkim/ and node: modules", () => {
    report(rule("dkim", (i) => isNode(i) || within(i.target, "dkim"), "dkim/ is a leaf: imports only node: modules"));
  });

  test("transport/bun and transport/deno import only transport/types.ts, their own folder and node: (bun:) modules", () => {
    const v: string[] = [];
    for (const sub of ["transport/bun", "transport/deno"]) {
      v.push(
        ...rule(
          sub,
          (i) => isNode(i) || (sub === "transport/bun" && i.spec.startsWith("bun:")) || i.target === "transport/types.ts" || within(i.target, sub),
          "an adapter imports only transport/types.ts (+ node:, and bun: in the Bun adapter)",
        ),
      );
    }
    report(v);
  });

  test("ring/ imports nothing outside ring/", () => {
    report(rule("ring", (i) => within(i.target, "ring"), "ring/ is pure and knows nothing of mail"));
  });

  test("queue/ imports only queue/, fsio/, mail/ and node: modules", () => {
    report(
      rule(
        "queue",
        (i) => isNode(i) || within(i.target, "queue") || within(i.target, "fsio") || within(i.target, "mail"),
        "queue/ may import only fsio/ and mail/",
      ),
    );
  });

  test("delivery/local/ imports only delivery/local/, fsio/, mail/ and node: modules", () => {
    report(
      rule(
        "delivery/local",
        (i) => isNode(i) || within(i.target, "delivery/local") || within(i.target, "fsio") || within(i.target, "mail"),
        "delivery/local/ may import only fsio/ and mail/",
      ),
    );
  });

  test("delivery/lmtp/ imports only delivery/lmtp/, delivery/remote/ (its SMTP client), mail/ and transport types", () => {
    report(
      rule(
        "delivery/lmtp",
        (i) =>
          within(i.target, "delivery/lmtp") ||
          within(i.target, "delivery/remote") ||
          within(i.target, "mail") ||
          (i.typeOnly && i.target === "transport/types.ts"),
        "delivery/lmtp/ may import only delivery/remote/, mail/ and `import type` from transport/types.ts",
      ),
    );
  });

  test("cross-folder imports target the folder's index.ts or a types.ts", () => {
    report(
      imports
        .filter((i) => i.target !== null && dirname(i.target) !== dirname(i.from))
        .filter((i) => !/(^|\/)(index|types)\.ts$/.test(i.target!))
        .map((i) => `${where(i)} crosses into ${dirname(i.target!)}/ but not through its index.ts or types.ts`),
    );
  });

  test("no import cycles", () => {
    const graph = new Map<string, Import[]>();
    for (const i of imports) if (i.target !== null) graph.set(i.from, [...(graph.get(i.from) ?? []), i]);
    const state = new Map<string, 1 | 2>(); // 1 = on the DFS stack, 2 = done
    const stack: Import[] = [];
    const cycles: string[] = [];
    const visit = (file: string): void => {
      state.set(file, 1);
      for (const edge of graph.get(file) ?? []) {
        const t = edge.target!;
        if (state.get(t) === 1) {
          const start = stack.findIndex((e) => e.from === t);
          const loop = [...stack.slice(start < 0 ? stack.length : start), edge];
          cycles.push(`cycle: ${loop.map((e) => `src/${e.from}:${e.line}`).join(" → ")} → src/${t}`);
        } else if (state.get(t) === undefined) {
          stack.push(edge);
          visit(t);
          stack.pop();
        }
      }
      state.set(file, 2);
    };
    for (const f of code) if (!state.has(f)) visit(f);
    report(cycles);
  });

  test("Bun. and Deno. appear only in transport/bun, transport/deno and runtime/", () => {
    const v: string[] = [];
    for (const f of code) {
      if (/^(transport\/bun|transport\/deno|runtime)\//.test(f)) continue;
      const noComments = stripComments(readFileSync(join(SRC, f), "utf8"));
      // String contents (log texts, say) may name Bun; only code may not. Offsets are kept for line numbers.
      const noStrings = noComments.replace(/(["'`])(?:\\.|(?!\1)[^\\\n])*\1/g, (m) => " ".repeat(m.length));
      const hits = [
        ...[...noStrings.matchAll(/\b(Bun|Deno)\s*\./g)].map((m) => [lineAt(noComments, m.index!), `the ${m[1]} global`]),
        ...[...noComments.matchAll(/globalThis\s*(?:\.|\[\s*["'])\s*(Bun|Deno)\b/g)].map((m) => [lineAt(noComments, m.index!), `the ${m[1]} global`]),
        ...imports.filter((i) => i.from === f && i.spec.startsWith("bun:")).map((i) => [i.line, `the ${i.spec} module`]),
      ];
      for (const [line, what] of hits) v.push(`src/${f}:${line}: uses ${what} outside transport/bun, transport/deno, runtime/`);
    }
    report(v);
  });

  test("dns/ imports only dns/, types from mail/, node: modules and dns-packet", () => {
    report(
      rule(
        "dns",
        (i) => isNode(i) || i.spec === "dns-packet" || within(i.target, "dns") || (i.typeOnly && within(i.target, "mail")),
        "dns/ may import only dns/, `import type` from mail/, node: modules and dns-packet",
      ),
    );
  });

  test("directory/ imports only directory/, mail/, node: modules and the postgres package", () => {
    report(
      rule(
        "directory",
        (i) => isNode(i) || i.spec === "postgres" || within(i.target, "directory") || within(i.target, "mail"),
        "directory/ may import only directory/, mail/, node: modules and postgres",
      ),
    );
  });

  test("policy/ and auth/ import directory/ only as types, through its index.ts; only directory/ imports postgres", () => {
    const v: string[] = [];
    for (const i of imports) {
      if ((i.from.startsWith("policy/") || i.from.startsWith("auth/")) && within(i.target, "directory")) {
        if (!i.typeOnly || i.target !== "directory/index.ts") {
          v.push(`${where(i)} policy/ and auth/ read the directory through \`import type\` from directory/index.ts only`);
        }
      }
      if (i.spec === "postgres" && !i.from.startsWith("directory/")) v.push(`${where(i)} only directory/ talks to PostgreSQL`);
    }
    report(v);
  });

  test("nothing outside transport/ imports node:dns or node:dns/promises (DNS goes through dns/)", () => {
    report(
      imports
        .filter((i) => /^(node:)?dns(\/promises)?$/.test(i.spec) && !i.from.startsWith("transport/"))
        .map((i) => `${where(i)} DNS goes through dns/ (our resolver), not node:dns`),
    );
  });
});
