/**
 * Addresses as text, the one way every layer writes them out (CONTRACT "Guarantees": RFC 5321 form wherever an
 * address leaves ringmta — relay MAIL/RCPT, Return-Path, Delivered-To, DSNs, logs) and the one case-folding rule
 * of local mailbox names (policy decides with it at RCPT, the Maildir courier writes what it produced).
 *
 * Here in mail/, not in protocol/, because queue/ (DSNs) and delivery/local/ (Maildir) may import only mail/ and
 * fsio/ (ARCHITECTURE arrows; test/arch/imports.test.ts). Pure: no I/O, no runtime globals.
 */

/** atext of RFC 5322 §3.2.3 (which RFC 5321 §4.1.2 Atom uses), ASCII part. */
const ATEXT_PUNCT = "!#$%&'*+-/=?^_`{|}~";

function isAtext(c: number): boolean {
  return (
    (c >= 48 && c <= 57) ||
    (c >= 65 && c <= 90) ||
    (c >= 97 && c <= 122) ||
    // RFC 6531 §3.3: UTF8-non-ascii is atext too.
    c >= 128 ||
    ATEXT_PUNCT.includes(String.fromCharCode(c))
  );
}

/** RFC 5321 §4.1.2 Dot-string = Atom *("." Atom): non-empty atoms, no leading, trailing or double dot. */
export function isDotString(s: string): boolean {
  if (s.length === 0) return false;
  let atom = 0;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c === 46) {
      if (atom === 0) return false;
      atom = 0;
    } else if (isAtext(c)) {
      atom++;
    } else {
      return false;
    }
  }
  return atom > 0;
}

/**
 * A local part's value in RFC 5321 §4.1.2 form: as a Dot-string when it is one (§4.1.2: "SHOULD NOT" quote what
 * needs no quoting), else as a Quoted-string in which only `"` and `\` are escaped (quoted-pairSMTP; every other
 * printable character is qtextSMTP). Control characters never reach here: the parser refuses them at MAIL/RCPT.
 */
export function quoteLocalPart(localPart: string): string {
  if (isDotString(localPart)) return localPart;
  return `"${localPart.replace(/["\\]/g, "\\$&")}"`;
}

/**
 * The mailbox `localPart@domain` in RFC 5321 form; `localPart` is the value (unquoted, unescaped). An empty domain
 * gives the local part alone (`<postmaster>`, RFC 5321 §4.5.1); both empty give "" (the null path).
 */
export function formatPath(localPart: string, domain: string): string {
  if (domain === "") return localPart === "" ? "" : quoteLocalPart(localPart);
  return `${quoteLocalPart(localPart)}@${domain}`;
}

/**
 * Split a stored address into its local part's value and its domain: a leading Quoted-string is read to its
 * closing quote (escapes undone), anything else splits at the last "@". So an address in RFC 5321 form comes back
 * as its parts, and a legacy one written without quotes (`x@evil.test@remote.test`) still splits where its domain
 * starts.
 */
export function splitAddress(address: string): { localPart: string; domain: string } {
  if (address.charCodeAt(0) === 34) {
    let value = "";
    for (let i = 1; i < address.length; i++) {
      const c = address[i];
      if (c === "\\" && i + 1 < address.length) {
        value += address[++i];
      } else if (c === '"') {
        const rest = address.slice(i + 1);
        if (rest === "") return { localPart: value, domain: "" };
        if (rest[0] === "@") return { localPart: value, domain: rest.slice(1) };
        break;
      } else {
        value += c;
      }
    }
  }
  const at = address.lastIndexOf("@");
  return at < 0 ? { localPart: address, domain: "" } : { localPart: address.slice(0, at), domain: address.slice(at + 1) };
}

/**
 * An address as it is written out (SMTP commands, trace fields, DSNs): formatPath of its parts. Idempotent on
 * RFC 5321 form, so writers can call it on whatever the envelope holds.
 */
export function mailboxText(address: string): string {
  if (address === "") return "";
  const { localPart, domain } = splitAddress(address);
  return formatPath(localPart, domain);
}

/**
 * The one case-folding rule of local parts (README "Mailbox names"): Unicode NFC first, so that a name typed in
 * composed (NFC) or decomposed (NFD) form is the same mailbox (RFC 6531 §3.3 expects UTF-8 in NFC; RFC 5198),
 * then String.prototype.toLowerCase (Unicode default lower-casing, locale-independent). So "José" in NFC and NFD
 * both become "josé" (U+00E9), and the Kelvin sign U+212A becomes "k" (NFC already maps it to "K"). Lower-casing
 * can lengthen a name ("İ", 2 octets, becomes "i̇", 3): limits are checked on the folded name. The result is put
 * through NFC once more, so that folding a folded name changes nothing.
 */
export function foldLocalPart(localPart: string): string {
  // ASCII needs no normalisation: skip it on the common path.
  for (let i = 0; i < localPart.length; i++) {
    // NFC once more after lower-casing, which can leave a sequence that composes (so folding is idempotent).
    if (localPart.charCodeAt(i) >= 128) return localPart.normalize("NFC").toLowerCase().normalize("NFC");
  }
  return localPart.toLowerCase();
}

/** NAME_MAX of Linux file systems (ext4, xfs, btrfs, tmpfs): octets in one path component. */
export const NAME_MAX = 255;

/** UTF-8 length of a string, without encoding it. */
export function utf8Length(s: string): number {
  let n = 0;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c < 0x80) n += 1;
    else if (c < 0x800) n += 2;
    else if (c >= 0xd800 && c <= 0xdbff && i + 1 < s.length) {
      n += 4;
      i++;
    } else n += 3;
  }
  return n;
}

/**
 * The lookup key of an address in the users and alias tables: the local part folded with the one rule above, the
 * domain lower-cased (a name without "@", an AUTH login say, is folded whole). Policy, the directory and AUTH all
 * use it, so José in NFC and NFD, or K and the Kelvin sign, find the same entry.
 */
export function addressKey(address: string): string {
  if (address.lastIndexOf("@") < 0) return foldLocalPart(address);
  const p = splitAddress(address);
  return `${foldLocalPart(p.localPart)}@${p.domain.toLowerCase()}`;
}
