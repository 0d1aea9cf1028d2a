export type { Directory, DirectoryLog, DirectorySnapshot, DirectoryUser, DirectoryView } from "./types.ts";
export { buildSnapshot, type DirectoryLists } from "./snapshot.ts";
export { FileDirectory, fileDirectory } from "./file-directory.ts";
export { PostgresDirectory, connect, stripScheme, type PostgresDirectoryOptions } from "./postgres-directory.ts";
export { migrate, NOTIFY_CHANNEL, SCHEMA_VERSION, type MigrateResult } from "./schema.ts";
export { deleteUser, listUsers, upsertUser } from "./admin.ts";
export { SharedAuthFailures, type SharedAuthFailuresOptions } from "./auth-failures.ts";
export { SharedLimits, type FleetRateCharge, type SharedLimitsOptions } from "./shared-limits.ts";
