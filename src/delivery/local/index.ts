export { MaildirCourier, maildirName, maildirHostname } from "./maildir.ts";
export type { LocalMessage, MaildirOptions } from "./maildir.ts";
