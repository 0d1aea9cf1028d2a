/** native-bench/: ringmta's load generator, peer comparison and idle-connection probe (a Bun tool). */
export { run } from "./cli.ts";
export { LOAD_USAGE, parseLoadArgs, parseSizeDist, UsageError } from "./args.ts";
export { runLoad, waitMaildir } from "./load.ts";
export type { LoadResult, MaildirResult } from "./load.ts";
export { defaultLoadOptions } from "./options.ts";
export type { LoadOptions, SizeClass } from "./options.ts";
export { runCompare } from "./compare.ts";
export type { Cell, Client, CompareReport, Load } from "./compare.ts";
export { runIdle } from "./idle.ts";
export type { IdleResult } from "./idle.ts";
export { LatencyHistogram } from "./histogram.ts";
export type { Percentiles } from "./histogram.ts";
export { MessageTemplate } from "./message.ts";
export { ReplyScanner } from "./reply-scanner.ts";
export { countMaildir } from "./maildir-count.ts";
export { formatSummary } from "./report.ts";
