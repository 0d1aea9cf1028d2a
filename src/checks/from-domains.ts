/**
 * The author domains of a message (DMARC's RFC5322.From domains, RFC 7489 §3.1 / §6.6.1): the domain of every
 * mailbox in the From fields' address lists (RFC 5322 §3.4 and §3.6.2; a group's mailboxes too, RFC 6854).
 *
 * A small scanner of our own rather than a general address parser: DMARC needs only the domains, and the scan must
 * be cheap (it runs on every message on the event loop) and bounded (one pass, no backtracking). Comments are
 * skipped (nested, with quoted-pairs), quoted strings and domain literals are kept whole, so that a display name
 * like "a@b, c" <x@y> yields only y; `<…>` wins over bare addresses; group names (`name:` … `;`) are dropped.
 * The domain follows the address's last "@" (a quoted local part may hold one, RFC 5321 §4.1.2).
 */

/** The mailboxes' addr-specs of one address-list value, in order (empty for a list with none). */
export function addrSpecs(value: string): string[] {
  const out: string[] = [];
  let cur = ""; // the current mailbox, comments removed
  let angle: string | null = null; // the addr-spec inside <...>, once one was read
  let depth = 0; // comment nesting
  const end = (): void => {
    const spec = (angle ?? cur).trim();
    // An obs-route (<@a,@b:user@host>, RFC 5322 §4.4) goes before the last ':' outside quotes.
    const routeEnd = angle !== null ? lastOutsideQuotes(spec, ":") : -1;
    const s = routeEnd >= 0 ? spec.slice(routeEnd + 1) : spec;
    if (s.includes("@")) out.push(s.replace(/\s+/g, ""));
    cur = "";
    angle = null;
  };
  for (let i = 0; i < value.length; i++) {
    const c = value[i]!;
    if (depth > 0) {
      if (c === "\\") i++;
      else if (c === "(") depth++;
      else if (c === ")") depth--;
      continue;
    }
    switch (c) {
      case "(":
        depth = 1;
        cur += " ";
        break;
      case '"': {
        const close = closing(value, i, '"');
        cur += value.slice(i, close + 1);
        i = close;
        break;
      }
      case "[": {
        const close = closing(value, i, "]");
        cur += value.slice(i, close + 1);
        i = close;
        break;
      }
      case "<": {
        const close = closing(value, i, ">");
        angle = value.slice(i + 1, close);
        i = close;
        break;
      }
      case ",":
      case ";":
        end();
        break;
      case ":":
        // A group's display name ends here (RFC 5322 §3.4 group); what came before is no mailbox.
        cur = "";
        angle = null;
        break;
      default:
        cur += c;
    }
  }
  end();
  return out;
}

/** The index of the character that closes what opens at `open` (a quoted-pair skips one), or the end. */
function closing(s: string, open: number, close: string): number {
  for (let i = open + 1; i < s.length; i++) {
    if (s[i] === "\\") i++;
    else if (s[i] === close) return i;
  }
  return s.length - 1;
}

function lastOutsideQuotes(s: string, ch: string): number {
  let last = -1;
  let quoted = false;
  for (let i = 0; i < s.length; i++) {
    if (s[i] === "\\") i++;
    else if (s[i] === '"') quoted = !quoted;
    else if (!quoted && s[i] === ch) last = i;
  }
  return last;
}

/** The distinct author domains of these From field values, lower-case, without a trailing dot. */
export function authorDomains(fromValues: ReadonlyArray<string>): string[] {
  return domainsOf(fromValues.flatMap(addrSpecs));
}

/** The distinct domains (after the last "@") of these addresses, lower-case, without a trailing dot. */
export function domainsOf(addresses: ReadonlyArray<string>): string[] {
  const out = new Set<string>();
  for (const a of addresses) {
    const at = a.lastIndexOf("@");
    if (at < 0) continue;
    const d = a.slice(at + 1).trim().toLowerCase().replace(/\.$/, "");
    if (d !== "") out.add(d);
  }
  return [...out];
}
