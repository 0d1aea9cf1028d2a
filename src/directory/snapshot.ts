/**
 * Building a DirectorySnapshot from plain lists, with keys made once by the one lookup rule (mail/ addressKey: the
 * local part NFC-normalised and lower-cased, the domain lower-cased), so lookups need no normalising copy.
 */
import { addressKey } from "../mail/index.ts";
import type { DirectorySnapshot, DirectoryUser } from "./types.ts";

export interface DirectoryLists {
  domains: Iterable<string>;
  users: Iterable<DirectoryUser>;
  /** alias → targets; one alias may appear several times (one row per target): the targets are joined. */
  aliases: Iterable<readonly [string, readonly string[]]>;
}

export function buildSnapshot(lists: DirectoryLists): DirectorySnapshot {
  const domains = new Set<string>();
  for (const d of lists.domains) domains.add(d.toLowerCase());
  const users = new Map<string, DirectoryUser>();
  for (const u of lists.users) users.set(addressKey(u.address), u);
  const aliases = new Map<string, string[]>();
  for (const [address, targets] of lists.aliases) {
    const k = addressKey(address);
    const list = aliases.get(k);
    if (list === undefined) aliases.set(k, [...targets]);
    else list.push(...targets);
  }
  return { domains, users, aliases };
}
