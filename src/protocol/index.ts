/** protocol/: the pure SMTP byte layer. No I/O, no timers, no runtime globals. */
export { findCrlf, MAX_AUTH_LINE, MAX_COMMAND_LINE } from "./line.ts";
export { parseCommand } from "./command.ts";
export type { Command, MailParams, ParseError, ParsedCommand, Path, RcptParams } from "./command.ts";
export { DATA_BARE_NEWLINE, DATA_MORE, DotReader } from "./dot-reader.ts";
export { BareNewlineCheck } from "./bdat.ts";
export { ReceivedCounter } from "./header-counter.ts";
export { carriesAuthservId, OwnAuthResultsFilter } from "./auth-results-filter.ts";
export { authChallenge, bdatOk, greeting, multiline, okQueued, Reply, replyBytes, replyLine } from "./reply.ts";
export type { ReplyName } from "./reply.ts";
export { DotStuffer } from "./dot-stuff.ts";
export { decodeXtext, encodeXtext, isXtext } from "./xtext.ts";
export {
  decodeBase64,
  decodePlain,
  decodeText,
  encodeBase64,
  LOGIN_PASS_PROMPT,
  LOGIN_USER_PROMPT,
  SASL_MECHANISMS,
} from "./sasl.ts";
export type { Credentials, SaslMechanism } from "./sasl.ts";
export { formatIp, PROXY_HEADER_MAX, PROXY_V1_MAX, PROXY_V2_MAX_LENGTH, ProxyHeaderReader } from "./proxy-header.ts";
export type { ProxyHeaderResult } from "./proxy-header.ts";
