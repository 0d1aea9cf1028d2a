/**
 * `user add ADDRESS [--password-stdin]`, `user del ADDRESS`, `user list`: the users file of the config,
 * rewritten atomically (a running server picks changes up on SIGHUP); or, with [directory] kind = "postgres",
 * the ringmta_users table (every node sees the change within 2 s).
 */
import type { Config } from "../config/index.ts";
import { loadUsers, saveUsers } from "../auth/index.ts";
import { connect, deleteUser, listUsers, upsertUser } from "../directory/index.ts";
import { passwordHasher } from "../runtime/index.ts";
import { parseArgs, UsageError } from "./args.ts";
import { loadConfigOrReport } from "./load.ts";
import { readPassword } from "./password.ts";

const ADDRESS = /^[^@\s:]+@[A-Za-z0-9.-]+$/;

export async function userCommand(argv: string[]): Promise<number> {
  const a = parseArgs(argv, ["config"], ["password-stdin"]);
  const [sub, address, ...extra] = a.positionals;
  if (extra.length > 0) throw new UsageError(`unexpected argument "${extra[0]}".`);
  const config = loadConfigOrReport(a);
  if (!config) return 2;
  if (config.directory.kind === "postgres") return await userInDatabase(config, sub, address, a.flags.has("password-stdin"));
  const file = config.local.usersFile;
  if (file === "") throw new UsageError("local.users_file is empty in the config: there is no users file to edit.");
  const { users, errors } = loadUsers(file);
  if (errors.length > 0) {
    for (const e of errors) process.stderr.write(`${file}: ${e}\n`);
    return 1;
  }
  switch (sub) {
    case "list":
      if (address !== undefined) throw new UsageError("usage: user list.");
      for (const u of users.values()) process.stdout.write(`${u.address}\n`);
      return 0;
    case "add": {
      const hash = await newHash(address, a.flags.has("password-stdin"));
      users.set(address.toLowerCase(), { address, hash });
      saveUsers(file, users.values());
      process.stdout.write(`user ${address} saved in ${file}\n`);
      return 0;
    }
    case "del": {
      if (address === undefined) throw new UsageError("usage: user del ADDRESS.");
      if (!users.delete(address.toLowerCase())) {
        process.stderr.write(`ringmta: no user ${address} in ${file}.\n`);
        return 1;
      }
      saveUsers(file, users.values());
      process.stdout.write(`user ${address} removed from ${file}\n`);
      return 0;
    }
    default:
      throw new UsageError("usage: user add|del|list.");
  }
}

/** The argon2id PHC string of the password read for `user add` (Dovecot verifies it as {ARGON2ID}). */
async function newHash(address: string | undefined, fromStdin: boolean): Promise<string> {
  if (address === undefined || !ADDRESS.test(address)) throw new UsageError("usage: user add ADDRESS (local@domain).");
  const password = await readPassword(fromStdin);
  if (password === "") throw new UsageError("the password is empty.");
  return await passwordHasher().hash(password);
}

async function userInDatabase(config: Config, sub: string | undefined, address: string | undefined, fromStdin: boolean): Promise<number> {
  if (sub !== "add" && sub !== "del" && sub !== "list") throw new UsageError("usage: user add|del|list.");
  if (sub === "list" && address !== undefined) throw new UsageError("usage: user list.");
  if (sub === "del" && address === undefined) throw new UsageError("usage: user del ADDRESS.");
  // Read the password before connecting: a prompt must not hold a database connection open.
  const hash = sub === "add" ? await newHash(address, fromStdin) : "";
  const sql = connect(config.directory.url, { max: 1 });
  try {
    switch (sub) {
      case "list":
        for (const u of await listUsers(sql)) process.stdout.write(`${u}\n`);
        return 0;
      case "add":
        await upsertUser(sql, address!, hash);
        process.stdout.write(`user ${address} saved in the directory database\n`);
        return 0;
      case "del":
        if (!(await deleteUser(sql, address!))) {
          process.stderr.write(`ringmta: no user ${address} in the directory database.\n`);
          return 1;
        }
        process.stdout.write(`user ${address} removed from the directory database\n`);
        return 0;
    }
  } finally {
    await sql.end({ timeout: 1 });
  }
}
