export { DeliveryPool } from "./pool.ts";
export type { DeliveryPoolOptions, DeliveryResult, PoolLog } from "./pool.ts";
export { MaildirCourier, maildirName, maildirHostname } from "./local/index.ts";
export type { LocalMessage, MaildirOptions } from "./local/index.ts";
export type { Courier, Envelope, EnvelopeRecipient, Outcome, Route, StoredMessage } from "./types.ts";
