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
} from "./durable.ts";
export { SyncBatcher } from "./sync-batcher.ts";
