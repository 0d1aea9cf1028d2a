/**
 * The one table of replies: basic code (RFC 5321 §4.2), enhanced status code (RFC 3463, RFC 5248 registry) and a
 * plain, stable text. Codes follow the Replies table of CONTRACT.md; strings carry no CRLF.
 */

export const Reply = {
  ok: "250 2.0.0 OK",
  okSender: "250 2.1.0 Sender OK",
  okRecipient: "250 2.1.5 Recipient OK",
  reset: "250 2.0.0 Reset OK",
  noop: "250 2.0.0 OK",
  dataGo: "354 End data with <CR><LF>.<CR><LF>",
  quit: "221 2.0.0 Bye",
  help: "214 2.0.0 See RFC 5321",
  vrfy: "252 2.1.5 Cannot VRFY user, but will accept message",
  readyTls: "220 2.0.0 Ready to start TLS",
  authOk: "235 2.7.0 Authentication successful",

  // 4xx: transient (RFC 5321 §4.2.1)
  idle: "421 4.4.2 Idle timeout, closing",
  tooManyConns: "421 4.7.0 Too many connections, try later",
  tooManyAuthFailures: "421 4.7.0 Too many failed authentications, closing",
  tooManyErrors: "421 4.7.0 Too many errors, closing",
  connectionRate: "421 4.7.0 Too many connections from your address, try later",
  shutdown: "421 4.3.2 Server shutting down",
  localError: "451 4.3.0 Local error in processing, try again later",
  tooManyRecipients: "452 4.5.3 Too many recipients",
  storageError: "452 4.3.1 Insufficient system storage",
  authBlocked: "454 4.7.0 Temporary authentication failure",
  tlsNotAvailable: "454 4.7.0 TLS not available",

  // 5xx: permanent
  unknownCommand: "500 5.5.2 Command not recognized",
  lineTooLong: "500 5.5.2 Line too long",
  syntax: "501 5.5.4 Syntax error in parameters or arguments",
  badSender: "501 5.1.7 Bad sender address syntax",
  badRecipient: "501 5.1.3 Bad recipient address syntax",
  badDsnParam: "501 5.5.4 Malformed DSN parameter (ENVID or ORCPT)",
  authBadBase64: "501 5.5.2 Cannot decode response",
  authCancelled: "501 5.0.0 Authentication cancelled",
  badSequence: "503 5.5.1 Bad sequence of commands",
  needHelo: "503 5.5.1 Send EHLO or HELO first",
  needMail: "503 5.5.1 Need MAIL command",
  needRcpt: "503 5.5.1 Need RCPT command",
  nestedMail: "503 5.5.1 Sender already specified",
  alreadyAuthenticated: "503 5.5.1 Already authenticated",
  tlsActive: "503 5.5.1 TLS already active",
  binaryNeedsBdat: "503 5.5.1 BINARYMIME requires BDAT",
  mixedDataBdat: "503 5.5.1 DATA and BDAT cannot be mixed in one transaction",
  authUnknownMech: "504 5.5.4 Unrecognized authentication type",
  bareNewline: "521 5.5.2 Bare CR or LF not allowed, closing",
  authRequired: "530 5.7.0 Authentication required",
  authNeedsTls: "530 5.7.0 Must issue a STARTTLS command first",
  requireTlsNeedsTls: "530 5.7.10 REQUIRETLS needs a TLS connection",
  authFailed: "535 5.7.8 Authentication credentials invalid",
  encryptionRequired: "538 5.7.11 Encryption required for requested authentication mechanism",
  unknownUser: "550 5.1.1 Mailbox unavailable",
  // CONTRACT "Forwarding": a bounce to an SRS0 address of the SRS domain that we did not make, or made too long ago.
  srsForged: "550 5.1.1 Invalid SRS address",
  srsExpired: "550 5.1.1 Expired SRS address",
  tooBig: "552 5.3.4 Message size exceeds fixed limit",
  senderMismatch: "553 5.7.1 Sender address not owned by authenticated user",
  mailboxUnwritable: "553 5.1.3 Mailbox name not allowed on this system",
  smtputf8Required: "553 5.6.7 Non-ASCII address requires SMTPUTF8",
  relayDenied: "554 5.7.1 Relay access denied",
  loop: "554 5.4.6 Too many Received headers: mail loop",
  badParam: "555 5.5.4 Unsupported or malformed parameter",
} as const;

export type ReplyName = keyof typeof Reply;

/** 220 greeting (RFC 5321 §4.2, §3.1). */
export function greeting(hostname: string): string {
  return `220 ${hostname} ESMTP ringmta`;
}

/** Reply to end of data / BDAT LAST once the message is durable. */
export function okQueued(id: string): string {
  return `250 2.0.0 Ok: queued as ${id}`;
}

/** Reply to a non-final BDAT chunk (RFC 3030 §2). */
export function bdatOk(octets: number): string {
  return `250 2.0.0 ${octets} octets received`;
}

/** SASL challenge (RFC 4954 §4): "334 " then base64, "" for an empty challenge. */
export function authChallenge(base64: string): string {
  return `334 ${base64}`;
}

/**
 * Multiline reply (RFC 5321 §4.2.1): every line but the last has "-" after the code: "250-a\r\n250-b\r\n250 c".
 * No final CRLF.
 */
export function multiline(code: string, lines: string[]): string {
  if (lines.length === 0) return code;
  let s = "";
  const last = lines.length - 1;
  for (let k = 0; k < last; k++) s += `${code}-${lines[k]}\r\n`;
  return s + `${code} ${lines[last]}`;
}

const encoder = new TextEncoder();

/** The reply's bytes with CRLF appended (ASCII; non-ASCII text, e.g. an IDN hostname, goes as UTF-8). */
export function replyLine(s: string): Uint8Array {
  const n = s.length;
  const out = new Uint8Array(n + 2);
  for (let i = 0; i < n; i++) {
    const c = s.charCodeAt(i);
    if (c > 127) return encoder.encode(s + "\r\n");
    out[i] = c;
  }
  out[n] = 13;
  out[n + 1] = 10;
  return out;
}

/** The fixed replies of the table as bytes, encoded on first use (nothing runs at import time). */
let fixed: Map<string, Uint8Array> | null = null;

/**
 * replyLine(s), but the replies of the table are encoded once and shared: a session writes several per message,
 * and an encoder call plus an allocation for each showed in the event loop's profile. The bytes returned must
 * never be modified (transports only read them).
 */
export function replyBytes(s: string): Uint8Array {
  if (fixed === null) {
    fixed = new Map();
    for (const r of Object.values(Reply)) fixed.set(r, replyLine(r));
  }
  return fixed.get(s) ?? replyLine(s);
}
