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
/** FWS around a tag-spec: SP, HTAB and the CRLF of a fold. */
const FWS_EDGES = /^[ \t\r\n]+|[ \t\r\n]+$/g;
const WHITESPACE = /\s/;

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
      if (segment.replace(FWS_EDGES, "") !== "" || i < segments.length - 1 || segments.length === 1) invalid = true;
      continue;
    }
    const name = segment.slice(0, eq).replace(FWS_EDGES, "");
    if (!TAG_NAME.test(name) || tags.has(name)) invalid = true;
    const value = segment.slice(eq + 1);
    tags.set(name, WHITESPACE.test(value) ? value.replace(/\s+/g, " ").trim() : value);
    names.push(name);
  }
  return { tags, names, invalid };
}

/** A value with every whitespace character removed (§3.5: FWS in b=, bh= and h= is not part of them; §3.6.1 p=). */
export function compact(value: string | undefined): string {
  return value === undefined ? "" : WHITESPACE.test(value) ? value.replace(/\s+/g, "") : value;
}
