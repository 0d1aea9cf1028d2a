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

/** tag-name = ALPHA *ALNUMPUNC (§3.2). */
const TAG_NAME = /^[A-Za-z][A-Za-z0-9_]*$/;
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
 * The value of a tag-spec (`segment` after its "="): runs of whitespace made one SP, whitespace at the edges
 * removed. An ASCII value is read by char code (this runs for every tag of every signature, and b= is folded);
 * any other goes through the regexes, whose \s (with its Unicode spaces) defines the result.
 */
function tagValue(segment: string, start: number): string {
  let end = segment.length;
  while (start < end && isAsciiSpace(segment.charCodeAt(start))) start++;
  while (end > start && isAsciiSpace(segment.charCodeAt(end - 1))) end--;
  let out = "";
  let from = start;
  for (let i = start; i < end; i++) {
    const c = segment.charCodeAt(i);
    if (c >= 0x80) {
      const value = segment.slice(start, end);
      return WHITESPACE.test(value) ? value.replace(/\s+/g, " ").trim() : value;
    }
    if (isAsciiSpace(c)) {
      out += segment.slice(from, i) + " ";
      // The value ends in no whitespace: the run ends before `end`.
      while (isAsciiSpace(segment.charCodeAt(i + 1))) i++;
      from = i + 1;
    }
  }
  return from === start ? segment.slice(start, end) : out + segment.slice(from, end);
}

export function parseTagList(text: string): TagList {
  const tags = new Map<string, string>();
  const names: string[] = [];
  let invalid = false;
  const segments = text.split(";");
  for (let i = 0; i < segments.length; i++) {
    const segment = segments[i]!;
    const eq = segment.indexOf("=");
    if (eq < 0) {
      // §3.2 allows one trailing ";"; an empty tag-spec elsewhere, or a part without "=", is no tag-spec.
      if (trimFws(segment, 0, segment.length) !== "" || i < segments.length - 1 || segments.length === 1) invalid = true;
      continue;
    }
    const name = trimFws(segment, 0, eq);
    if (!TAG_NAME.test(name) || tags.has(name)) invalid = true;
    tags.set(name, tagValue(segment, eq + 1));
    names.push(name);
  }
  return { tags, names, invalid };
}

/** A value with every whitespace character removed (§3.5: FWS in b=, bh= and h= is not part of them; §3.6.1 p=). */
export function compact(value: string | undefined): string {
  return value === undefined ? "" : WHITESPACE.test(value) ? value.replace(/\s+/g, "") : value;
}
