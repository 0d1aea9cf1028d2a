/**
 * [directory] as the composition root opens it: the file/config source (local.domains, [local.aliases], the users
 * file) or PostgreSQL (then those keys are ignored, said once at start). A database that is down at start does
 * not stop the server: RCPT and AUTH answer 451/454 until it answers. Wiring only.
 */
import { loadUsers } from "../auth/index.ts";
import type { Config } from "../config/index.ts";
import { FileDirectory, PostgresDirectory, type Directory, type DirectoryLists } from "../directory/index.ts";
import type { Logger } from "../observe/index.ts";

/** The file/config source's lists. */
function fileLists(c: Config, users: Iterable<{ address: string; hash: string }>): DirectoryLists {
  return { domains: c.local.domains, users, aliases: Object.entries(c.local.aliases) };
}

function readFileSource(c: Config, log: Logger): DirectoryLists {
  const users = loadUsers(c.local.usersFile);
  for (const e of users.errors) log.warn("users.bad_line", { file: c.local.usersFile, problem: e });
  return fileLists(c, users.users.values());
}

export async function openDirectory(c: Config, log: Logger): Promise<Directory> {
  if (c.directory.kind === "postgres") {
    const ignored = [
      ...(c.local.domains.length > 0 ? ["local.domains"] : []),
      ...(c.local.usersFile !== "" ? ["local.users_file"] : []),
      ...(Object.keys(c.local.aliases).length > 0 ? ["local.aliases"] : []),
    ];
    if (ignored.length > 0) log.warn("directory.ignored_keys", { keys: ignored, note: 'ignored: [directory] kind = "postgres"' });
    const d = await PostgresDirectory.open({ url: c.directory.url, log });
    if (d.snapshot() === null) log.warn("directory.not_loaded", { note: "RCPT answers 451 and AUTH 454 until the database answers" });
    return d;
  }
  return new FileDirectory(readFileSource(c, log));
}

/**
 * SIGHUP: the file source re-reads the users file, local.domains and aliases (PostgreSQL follows its own
 * notifications); a change of [directory] itself applies at the next restart.
 */
export function reloadDirectory(directory: Directory, current: Config, next: Config, log: Logger): void {
  if (next.directory.kind !== directory.kind || next.directory.url !== current.directory.url) {
    log.warn("config.directory_changed", { note: "[directory] applies at the next restart" });
  }
  if (directory instanceof FileDirectory) directory.replace(readFileSource(next, log));
}
