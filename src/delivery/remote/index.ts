export { defaultRemoteSettings, RemoteCourier } from "./courier.ts";
export type { RemoteSettings } from "./courier.ts";
export { Router, orderMx, splitHostPort } from "./route.ts";
export type { Destination, Hop, RouteSettings } from "./route.ts";
export { RFC5321_TIMEOUTS, SessionError, SmtpSession, StaleConnectionError, hasControl } from "./smtp-client.ts";
export type { ClientTlsPolicy, RemoteTimeouts, SessionOptions, SessionTarget } from "./smtp-client.ts";
export { ReplyReader, replyText } from "./reply-reader.ts";
export type { SmtpReply } from "./reply-reader.ts";
