/**
 * The Authentication-Results field (RFC 8601) that reports the checks, and the test for a field carrying our
 * authserv-id (§5: such fields arriving from outside are forgeries and are removed).
 */
import { memoize } from "./memo.ts";
import { OVER_LIMIT } from "./message.ts";
import type { ArcOutcome, DkimOutcome, DmarcOutcome, SpfOutcome } from "./types.ts";

/** RFC 5322 §2.1.1: lines SHOULD stay within 78 characters. */
const FOLD_AT = 78;
/** Comments carry a reason for people; longer ones are cut, never a reason to grow the header. */
const MAX_COMMENT = 160;

/** RFC 2045 §5.1 token characters (RFC 8601 §2.2 value = token / quoted-string). */
const TOKEN = /^[!#$%&'*+\-.0-9A-Z^_`a-z{|}~]+$/;
/** pvalue's "[local-part "@"] domain-name" form (local-part a dot-atom or a quoted-string), for smtp.mailfrom (RFC 8601 §2.2). */
const ADDRESS = /^(?:(?:[!#$%&'*+\-.0-9A-Z^_`a-z{|}~]+|"(?:[^"\\\x00-\x1f\x7f]|\\[^\x00-\x1f\x7f])*")@)?[0-9A-Za-z](?:[0-9A-Za-z.\-]*[0-9A-Za-z])?$/;

/** RFC 8601 §2.2 pvalue: as it is when it is a token or an address, else a quoted-string (RFC 5322 §3.2.4). */
function pvalue(v: string): string {
  if (v !== "" && (TOKEN.test(v) || ADDRESS.test(v))) return v;
  // Control characters (a CR or LF would end the field) cannot be in a quoted-string at all.
  return `"${v.replace(/[\x00-\x1f\x7f]/g, "?").replace(/(["\\])/g, "\\$1")}"`;
}

/** Words of an RFC 5322 §3.2.2 comment, with "(", ")" and "\" quoted; whitespace becomes the folding points. */
function wordsOf(text: string): ReadonlyArray<string> {
  const clean = text
    .replace(/[\x00-\x1f\x7f]+/g, " ")
    .replace(/\s+/g, " ")
    .trim()
    .slice(0, MAX_COMMENT)
    .replace(/([()\\])/g, "\\$1");
  if (clean === "") return [];
  const words = clean.split(" ");
  words[0] = `(${words[0]}`;
  words[words.length - 1] = `${words[words.length - 1]})`;
  return words;
}

/**
 * wordsOf, remembered (checks/memo.ts) for reasons of a reasonable length: the same few come with every message,
 * and five regex passes over each cost the event loop more than the rest of the field.
 */
const commentWords = memoize(wordsOf, { entries: 1024, keyLength: 256 });

function prop(name: string, value: string): string[] {
  return value === "" ? [] : [`${name}=${pvalue(value)}`];
}

function spfInfo(spf: SpfOutcome): string[] {
  const eq = spf.property.indexOf("=");
  const props = eq > 0 ? prop(spf.property.slice(0, eq), spf.property.slice(eq + 1)) : [];
  return [`spf=${spf.result}`, ...commentWords(spf.reason ?? ""), ...props];
}

function dkimInfos(dkim: ReadonlyArray<DkimOutcome>): string[][] {
  if (dkim.length === 0) return [["dkim=none"]];
  const out: string[][] = [];
  const over = dkim.filter((d) => d.reason === OVER_LIMIT).length;
  for (const d of dkim) {
    if (d.reason === OVER_LIMIT) continue;
    out.push([
      `dkim=${d.result}`,
      ...commentWords(d.reason ?? ""),
      ...prop("header.d", d.domain),
      ...prop("header.s", d.selector),
      ...prop("header.b", d.b),
    ]);
  }
  // Signatures past the verification limit, one resinfo for all of them: 10,000 of them must not make a
  // 10,000-line field.
  if (over > 0) out.push(["dkim=policy", ...commentWords(`${over} more signatures ${OVER_LIMIT}`)]);
  return out;
}

function arcInfo(arc: ArcOutcome): string[] {
  return [`arc=${arc.result}`, ...commentWords(arc.reason ?? (arc.instance > 0 ? `i=${arc.instance}` : ""))];
}

function dmarcInfo(d: DmarcOutcome): string[] {
  const policy = d.result === "none" || d.result === "temperror" || d.result === "permerror" ? "" : `p=${d.policy}`;
  const reason = d.reason ?? "";
  const why = policy !== "" && reason !== "" ? `${policy}, ${reason}` : policy || reason;
  return [`dmarc=${d.result}`, ...commentWords(why), ...prop("header.from", d.fromDomain)];
}

/** Joins words with spaces, starting a continuation line (CRLF + WSP, RFC 5322 §2.2.3) before 78 columns. */
function fold(first: string, resinfos: string[][]): string {
  let out = first;
  let col = first.length;
  for (let i = 0; i < resinfos.length; i++) {
    const words = resinfos[i]!;
    const last = i === resinfos.length - 1;
    out += "\r\n ";
    col = 1;
    for (let j = 0; j < words.length; j++) {
      const word = j === words.length - 1 && !last ? `${words[j]};` : words[j]!;
      if (j > 0) {
        if (col + 1 + word.length > FOLD_AT) {
          out += "\r\n   ";
          col = 3;
        } else {
          out += " ";
          col++;
        }
      }
      out += word;
      col += word.length;
    }
  }
  return `${out}\r\n`;
}

/**
 * One Authentication-Results field (RFC 8601), "Authentication-Results: <authservId>; ..." folded at 78 columns
 * where possible, ending CRLF: spf= with smtp.mailfrom (or smtp.helo), one dkim= per signature with header.d,
 * header.s, header.b (dkim=none when unsigned), arc=, dmarc= with header.from. A check that is null is left out;
 * with none at all, the field says "none" (§2.2 no-result).
 */
export function authenticationResults(
  authservId: string,
  r: { spf: SpfOutcome | null; dkim: ReadonlyArray<DkimOutcome> | null; arc: ArcOutcome | null; dmarc: DmarcOutcome | null },
): string {
  const resinfos: string[][] = [];
  if (r.spf !== null) resinfos.push(spfInfo(r.spf));
  if (r.dkim !== null) resinfos.push(...dkimInfos(r.dkim));
  if (r.arc !== null) resinfos.push(arcInfo(r.arc));
  if (r.dmarc !== null) resinfos.push(dmarcInfo(r.dmarc));
  const head = `Authentication-Results: ${pvalue(authservId)};`;
  if (resinfos.length === 0) return `${head} none\r\n`;
  return fold(head, resinfos);
}

/** Skips CFWS (RFC 5322 §3.2.2: whitespace and nested comments) from i; the index after it. */
function skipCfws(s: string, i: number): number {
  for (;;) {
    while (i < s.length && /[ \t\r\n]/.test(s[i]!)) i++;
    if (s[i] !== "(") return i;
    let depth = 0;
    for (; i < s.length; i++) {
      const c = s[i];
      if (c === "\\") i++;
      else if (c === "(") depth++;
      else if (c === ")" && --depth === 0) {
        i++;
        break;
      }
    }
    if (depth > 0) return s.length;
  }
}

/**
 * RFC 8601 §5: does this Authentication-Results field value carry `authservId` (compared case-insensitively,
 * CFWS and a version after it allowed)? A field whose authserv-id only starts with ours does not.
 */
export function hasAuthservId(fieldValue: string, authservId: string): boolean {
  let i = skipCfws(fieldValue, 0);
  let id: string;
  if (fieldValue[i] === '"') {
    let j = i + 1;
    id = "";
    for (; j < fieldValue.length && fieldValue[j] !== '"'; j++) {
      if (fieldValue[j] === "\\") j++;
      id += fieldValue[j] ?? "";
    }
    if (j >= fieldValue.length) return false;
    i = j + 1;
  } else {
    const m = /^[^\s()<>@,;:\\"/[\]?=]+/.exec(fieldValue.slice(i, i + 1024));
    if (!m) return false;
    id = m[0];
    i += id.length;
  }
  if (id.toLowerCase() !== authservId.toLowerCase()) return false;
  i = skipCfws(fieldValue, i);
  const version = /^\d+/.exec(fieldValue.slice(i, i + 16));
  if (version) i = skipCfws(fieldValue, i + version[0].length);
  return i >= fieldValue.length || fieldValue[i] === ";";
}
