export { MaildirCourier, maildirName, maildirHostname, validFolder } from "./maildir.ts";
export type { MaildirOptions } from "./maildir.ts";
