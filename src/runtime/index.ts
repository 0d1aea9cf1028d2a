/**
 * The one small runtime port: what differs between Bun and Deno besides sockets (ARCHITECTURE.md).
 * Password hashing uses Bun.password (argon2id by default, bcrypt accepted), which runs on a thread pool so a
 * verify (~120 ms) never stalls the event loop.
 */

declare const Bun: any;
declare const Deno: any;

export type RuntimeName = "bun" | "deno" | "node";

export function runtimeName(): RuntimeName {
  if (typeof Bun !== "undefined") return "bun";
  if (typeof Deno !== "undefined") return "deno";
  return "node";
}

export interface PasswordHasher {
  hash(password: string): Promise<string>;
  verify(password: string, hash: string): Promise<boolean>;
}

export function passwordHasher(): PasswordHasher {
  if (typeof Bun === "undefined") {
    throw new Error(`password hashing needs Bun (Bun.password); this runtime is ${runtimeName()}`);
  }
  return {
    hash: (password) => Bun.password.hash(password),
    verify: async (password, hash) => {
      try {
        return await Bun.password.verify(password, hash);
      } catch {
        return false; // a malformed hash in the users file verifies nothing
      }
    },
  };
}
