export type {
  Courier,
  DeliveryAttempt,
  Envelope,
  EnvelopeRecipient,
  MessageSink,
  Outcome,
  OutcomeReport,
  Route,
  SpoolPort,
  StoredMessage,
} from "./types.ts";
export { kindOfCode, localOutcome, replyLine } from "./outcome.ts";
