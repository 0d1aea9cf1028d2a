export type {
  Courier,
  Envelope,
  EnvelopeRecipient,
  MessageSink,
  Outcome,
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
