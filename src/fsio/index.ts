export {
  DIR_MODE,
  FILE_MODE,
  fsyncDirSync,
  mkdirDurableSync,
  renameDurableSync,
  uniqueTempName,
  unlinkQuiet,
  writeAllSync,
  writeFileDurable,
  openAsync,
  writeAllAsync,
  renameAsync,
  closeQuiet,
} from "./durable.ts";
export { SyncBatcher } from "./sync-batcher.ts";
