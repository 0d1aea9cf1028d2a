/**
 * The one small runtime port: what differs between Bun and Deno besides sockets (ARCHITECTURE.md).
 * Password hashing: Bun.password on Bun (argon2id by default, bcrypt accepted; it runs on Bun's thread pool so a
 * verify (~120 ms) never stalls the event loop); elsewhere the same formats through hash-wasm on worker threads.
 */
import { WasmPasswordHasher } from "./wasm-hasher.ts";

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

export { WasmPasswordHasher } from "./wasm-hasher.ts";

let wasm: WasmPasswordHasher | null = null;

export function passwordHasher(): PasswordHasher {
  if (typeof Bun === "undefined") return (wasm ??= new WasmPasswordHasher());
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

/**
 * What this runtime does differently from Bun, one plain sentence each, for the server to log at start and the
 * README to list. Empty on Bun.
 */
export function runtimeLimitations(): string[] {
  if (runtimeName() === "bun") return [];
  return [
    "password checks run in WebAssembly (hash-wasm) on two worker threads: an argon2id verify costs about 200 ms " +
      "of CPU instead of Bun's native 120 ms, so AUTH throughput is lower",
    "V8 frees socket buffers late: a 100 MB message can grow the process's memory by about 100 MB " +
      "(on Bun: under 64 MB)",
    "[server] user: the supplementary groups of that user cannot be set (this runtime has no process.initgroups)",
  ];
}

export { loadSyncFs, type SyncFs } from "./syncfs.ts";
