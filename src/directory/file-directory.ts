/**
 * The file/config source: local.domains, [local.aliases] and the users file, as ringmta has always read them.
 * Always available; SIGHUP replaces the view (app/ re-reads the files and calls replace()).
 */
import { buildSnapshot, type DirectoryLists } from "./snapshot.ts";
import type { Directory, DirectorySnapshot } from "./types.ts";

export class FileDirectory implements Directory {
  readonly kind = "file";
  private view: DirectorySnapshot;
  private readonly listeners = new Set<() => void>();

  constructor(lists: DirectoryLists) {
    this.view = buildSnapshot(lists);
  }

  snapshot(): DirectorySnapshot {
    return this.view;
  }

  replace(lists: DirectoryLists): void {
    this.view = buildSnapshot(lists);
    for (const l of this.listeners) l();
  }

  onChange(listener: () => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  async close(): Promise<void> {
    this.listeners.clear();
  }
}

/** config-shaped input: domains list, users, aliases as the TOML table holds them. */
export function fileDirectory(s: {
  domains: Iterable<string>;
  users: Iterable<{ address: string; hash: string }>;
  aliases: Record<string, readonly string[]>;
}): FileDirectory {
  return new FileDirectory({ domains: s.domains, users: s.users, aliases: Object.entries(s.aliases) });
}
