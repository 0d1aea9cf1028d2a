/**
 * native-bench/RESULTS.md is written by three commands: `compare` owns the section between the compare markers,
 * `idle` and `dkim` the ones between theirs; each replaces only its own section.
 */
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { fileURLToPath } from "node:url";

export const RESULTS_PATH = fileURLToPath(new URL("./RESULTS.md", import.meta.url));

const HEADER = "# ringmta native-bench results\n\nWritten by `bun run bench -- compare` and `bun run bench -- idle`.\n";

export function writeSection(name: "compare" | "idle" | "dkim", body: string, path = RESULTS_PATH): void {
  const begin = `<!-- ${name}:begin -->`;
  const end = `<!-- ${name}:end -->`;
  const block = `${begin}\n${body.trim()}\n${end}`;
  let text = existsSync(path) ? readFileSync(path, "utf8") : HEADER;
  const a = text.indexOf(begin);
  const b = text.indexOf(end);
  if (a !== -1 && b > a) text = text.slice(0, a) + block + text.slice(b + end.length);
  else if (name === "compare") {
    // The comparison goes first, the idle section after it.
    const idle = text.indexOf("<!-- idle:begin -->");
    text = idle === -1 ? `${text.trimEnd()}\n\n${block}\n` : `${text.slice(0, idle)}${block}\n\n${text.slice(idle)}`;
  } else text = `${text.trimEnd()}\n\n${block}\n`;
  writeFileSync(path, text);
}
