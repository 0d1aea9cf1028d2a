export { newQueueId, isQueueId } from "./queue-id.ts";
export { Spool, SpoolSink, SINK_BUFFER, MEMORY_MESSAGE_MAX, MEMORY_BUDGET } from "./spool.ts";
export type { CommittedItem, SpoolOptions } from "./spool.ts";
export { CorruptItemError, TRAILER_LEN } from "./item-format.ts";
export { openStored, storedFromItem, msgPath, statePath, READ_CHUNK } from "./stored.ts";
export { SegmentReader, parseToken, itemToken } from "./segment.ts";
export type { StoredItem } from "./stored.ts";
export { appendStateRecords, readStateLog, isFinal, stateOf } from "./state-log.ts";
export type { RecipientState, RecipientStatus, StateRecord } from "./state-log.ts";
export { recover, recoverSegments } from "./recover.ts";
export type { RecoveredItem, RecoverResult, RecoverLog } from "./recover.ts";
export { listQueue, showItem, deleteItem } from "./list.ts";
export type { QueueListEntry } from "./list.ts";
export { retrySchedule } from "./retry.ts";
export { recordOutcomes, finishItem, materializeItem } from "./finish.ts";
// The spool's group commit, shared with the delivery side so that all fsyncs of a thread batch together.
export { loadSyncFs, SyncBatcher } from "../fsio/index.ts";
export { diagnosticOf, dsnChunks, mailDate, statusOf } from "./dsn.ts";
export type { DsnActionName, DsnInput, DsnRecipient } from "./dsn.ts";
