export {
  DIR_MODE,
  FILE_MODE,
  fsyncDirSync,
  mkdirDurableSync,
  renameDurableSync,
  uniqueTempName,
  unlinkQuiet,
  writeAllSync,
  writevAllSync,
  writeFileDurable,
  openAsync,
  writeAllAsync,
  renameAsync,
  closeQuiet,
} from "./durable.ts";
export { SyncBatcher } from "./sync-batcher.ts";
export { flushSync } from "./flush.ts";
// The platform's syncfs (runtime port), for threads that flush batches with flushSync.
export { loadSyncFs, type SyncFs } from "../runtime/index.ts";
