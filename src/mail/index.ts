export type {
  Courier,
  DeliveryAttempt,
  Envelope,
  EnvelopeRecipient,
  MessageSink,
  Outcome,
  OwnRoute,
  OutcomeReport,
  Route,
  SpoolPort,
  StoredMessage,
} from "./types.ts";
export type {
  EndVerdict,
  MaybePromise,
  MessageObserver,
  SessionView,
  Stage,
  StageRecipient,
  StageSession,
  StageTransaction,
  Verdict,
} from "./stage.ts";
export { kindOfCode, localOutcome, replyLine } from "./outcome.ts";
export { NAME_MAX, addressKey, foldLocalPart, formatPath, isDotString, mailboxText, quoteLocalPart, splitAddress, utf8Length } from "./address.ts";
