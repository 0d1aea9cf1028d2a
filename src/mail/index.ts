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
