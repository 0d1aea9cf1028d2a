/** Test helpers for the outside-in suites (test/e2e, test/dialogs). */
export { freePorts, canConnect, holdPorts } from "./ports.ts";
export {
  startServer,
  useServer,
  spawnRingmta,
  waitFor220,
  usersFile,
  deepMerge,
  tempDir,
  removeDir,
  REPO,
  BUN,
  MAIN,
  HOSTNAME,
  USERS,
  DEFAULT_LISTENERS,
} from "./server.ts";
export type { Srv, ServerOptions, ListenerOpt, TlsMode, AuthMode, Spawned } from "./server.ts";
export { maildirFiles, readDelivered, mailboxes, findDelivered, countMessageId } from "./maildir.ts";
export { uniqueId, simpleMessage, trickyMessage } from "./messages.ts";
export type { MessageOpts } from "./messages.ts";
export type { Delivered } from "./maildir.ts";
export { waitFor, sleep } from "./wait.ts";
export { SmtpClient, dotStuff, dataPayload, sendMail } from "./smtp-client.ts";
export type { Reply, ConnectOptions, SendResult } from "./smtp-client.ts";
export { havePeer, peerPath, peerTest, peerInstallHint, PEER_PACKAGE } from "./peers.ts";
export type { Peer } from "./peers.ts";
export { startDovecot } from "./dovecot.ts";
export type { Dovecot, DovecotOptions } from "./dovecot.ts";
export { startHaproxy } from "./haproxy.ts";
export type { Haproxy, HaproxyRoute } from "./haproxy.ts";
