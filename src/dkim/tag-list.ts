/**
 * The tag=value lists of RFC 6376 §3.2, which DKIM-Signature fields and key records are made of. Read the way
 * mailauth's strict mode reads them, so the two verifiers agree on what is a syntax error: tag-specs are split on
 * ";" (no tag value can hold one), the first "=" ends the name, names are case-sensitive, and a list with a
 * duplicate name, a bad name, a part without "=", or an empty tag-spec other than one trailing ";" is invalid.
 */

export interface TagList {
  /** Name → value: FWS around the value removed, runs of whitespace inside it made one SP. */
  readonly tags: ReadonlyMap<string, string>;
  /** The names, in order of appearance. */
  readonly names: ReadonlyArray<string>;
  /** The list breaks §3.2's syntax (then `tags` holds what could be read, for reporting d= and s=). */
  readonly invalid: boolean;
}

const WHITESPACE = /\s/;

/** FWS around a tag-spec: SP, HTAB and the CRLF of a fold. */
const isFws = (c: number): boolean => c === 32 || c === 9 || c === 13 || c === 10;
/** What /\s/ matches below 0x80: HTAB, LF, VT, FF, CR, SP (the rest of its set is all above 0x9f). */
const isAsciiSpace = (c: number): boolean => c === 32 || (c >= 9 && c <= 13);

/**
 * `text` from `start` to `end` with the FWS at both edges removed. A loop over char codes, not a regex replace:
 * this runs for every tag of every signature.
 */
function trimFws(text: string, start: number, end: number): string {
  while (start < end && isFws(text.charCodeAt(start))) start++;
  while (end > start && isFws(text.charCodeAt(end - 1))) end--;
  return start === 0 && end === text.length ? text : text.slice(start, end);
}

/**
 * The value of a tag-spec (`text` from `start` to `end`, after its "="): runs of whitespace made one SP, whitespace
 * at the edges removed. An ASCII value's runs are collapsed by one regex (this runs for every tag of every
 * signature, and b= is folded); any other goes through \s, whose Unicode spaces define the result.
 */
function tagValue(text: string, start: number, end: number): string {
  while (start < end && isAsciiSpace(text.charCodeAt(start))) start++;
  while (end > start && isAsciiSpace(text.charCodeAt(end - 1))) end--;
  const value = text.slice(start, end);
  if (NON_ASCII.test(value)) return WHITESPACE.test(value) ? value.replace(/\s+/g, " ").trim() : value;
  return ASCII_SPACE.test(value) ? value.replace(ASCII_SPACE_RUNS, " ") : value;
}

const NON_ASCII = /[^\x00-\x7f]/;
/** What /\s/ matches below 0x80 (isAsciiSpace): HTAB, LF, VT, FF, CR, SP. */
const ASCII_SPACE = /[\t-\r ]/;
const ASCII_SPACE_RUNS = /[\t-\r ]+/g;

/** tag-name = ALPHA *ALNUMPUNC (§3.2), by char code. */
function isTagName(name: string): boolean {
  const n = name.length;
  if (n === 0) return false;
  const first = name.charCodeAt(0) | 32;
  if (first < 97 || first > 122) return false;
  for (let i = 1; i < n; i++) {
    const c = name.charCodeAt(i);
    const lower = c | 32;
    if (!((lower >= 97 && lower <= 122) || (c >= 48 && c <= 57) || c === 95)) return false;
  }
  return true;
}

/**
 * One pass over the list: tag-specs found with indexOf, not split off (this runs for every signature and key
 * record; tag-list.test.ts compares it with the split-based reading on random lists).
 */
export function parseTagList(text: string): TagList {
  const tags = new Map<string, string>();
  const names: string[] = [];
  let invalid = false;
  const n = text.length;
  let start = 0;
  let first = true;
  // The next "=" at or after `start` (-1: none left), found once and reused while the tag-specs before it have none:
  // a list of many empty tag-specs is read in linear time.
  let nextEq = text.indexOf("=");
  for (;;) {
    let semi = text.indexOf(";", start);
    const last = semi < 0;
    if (last) semi = n;
    if (nextEq >= 0 && nextEq < start) nextEq = text.indexOf("=", start);
    if (nextEq < 0 || nextEq >= semi) {
      // §3.2 allows one trailing ";"; an empty tag-spec elsewhere, or a part without "=", is no tag-spec.
      if (!last || first || trimFws(text, start, semi) !== "") invalid = true;
    } else {
      const name = trimFws(text, start, nextEq);
      if (!isTagName(name) || tags.has(name)) invalid = true;
      tags.set(name, tagValue(text, nextEq + 1, semi));
      names.push(name);
    }
    if (last) break;
    first = false;
    start = semi + 1;
  }
  return { tags, names, invalid };
}

/** A value with every whitespace character removed (§3.5: FWS in b=, bh= and h= is not part of them; §3.6.1 p=). */
export function compact(value: string | undefined): string {
  return value === undefined ? "" : WHITESPACE.test(value) ? value.replace(/\s+/g, "") : value;
}
