export { MaildirCourier, maildirName, maildirHostname } from "./maildir.ts";
export type { MaildirOptions } from "./maildir.ts";
