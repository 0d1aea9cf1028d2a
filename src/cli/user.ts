/**
 * `user add ADDRESS [--password-stdin]`, `user del ADDRESS`, `user list`: the users file of the config,
 * rewritten atomically. A running server picks changes up on SIGHUP.
 */
import { loadUsers, saveUsers } from "../auth/index.ts";
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
      if (address === undefined || !ADDRESS.test(address)) throw new UsageError("usage: user add ADDRESS (local@domain).");
      const password = await readPassword(a.flags.has("password-stdin"));
      if (password === "") throw new UsageError("the password is empty.");
      const hash = await passwordHasher().hash(password);
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
