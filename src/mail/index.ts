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
export { NAME_MAX, foldLocalPart, formatPath, isDotString, mailboxText, quoteLocalPart, splitAddress, utf8Length } from "./address.ts";
