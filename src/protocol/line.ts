/**
 * Command-line framing. A command line ends only with CR LF (RFC 5321 §2.3.8): a bare LF is not a line end,
 * so a client cannot smuggle a second command past a proxy that splits on CRLF.
 */

/** Longest command line, CRLF included (RFC 5321 §4.5.3.1.4). */
export const MAX_COMMAND_LINE = 1000;
/** Longest AUTH line, CRLF included (RFC 4954 §4: at least 12288 octets for SASL responses). */
export const MAX_AUTH_LINE = 12288;

const CR = 13;
const LF = 10;

/**
 * Index i of the LF of the first CR LF pair with from <= i-1 and i < end (buf[i-1] = CR, buf[i] = LF), or -1.
 * LFs not preceded by CR are skipped: they end no line.
 */
export function findCrlf(buf: Uint8Array, from: number, end: number): number {
  let i = from + 1;
  while (i < end) {
    const lf = buf.indexOf(LF, i);
    if (lf === -1 || lf >= end) return -1;
    if (buf[lf - 1] === CR) return lf;
    i = lf + 1;
  }
  return -1;
}
