/**
 * Password hashes as Bun.password writes them, computed with hash-wasm (pure WebAssembly) where Bun.password is
 * absent (Deno has no argon2 in node:crypto). Formats:
 *  - argon2id PHC strings, `$argon2id$v=19$m=65536,t=2,p=1$<salt>$<hash>` (Bun's defaults: 64 MiB, 2 passes,
 *    1 lane, 32-byte salt and hash); argon2i/argon2d strings verify too.
 *  - bcrypt `$2a$`/`$2b$`/`$2y$`. bcrypt reads at most 72 bytes; Bun hashes a longer password with SHA-512 first
 *    and gives bcrypt the 64 raw digest bytes, so the same is done here.
 */
import { createHash, randomBytes } from "node:crypto";
import { argon2id, argon2Verify, bcryptVerify } from "hash-wasm";

const BCRYPT_MAX = 72;

export function hashPhc(password: string): Promise<string> {
  return argon2id({
    password,
    salt: randomBytes(32),
    parallelism: 1,
    iterations: 2,
    memorySize: 65536,
    hashLength: 32,
    outputType: "encoded",
  });
}

/** False for a wrong password and for a hash in no format this knows (a bad users-file line verifies nothing). */
export async function verifyPhc(password: string, hash: string): Promise<boolean> {
  try {
    if (hash.startsWith("$argon2")) return await argon2Verify({ password, hash });
    if (/^\$2[aby]\$\d\d\$/.test(hash)) {
      const bytes = new TextEncoder().encode(password);
      const input = bytes.length > BCRYPT_MAX ? createHash("sha512").update(bytes).digest() : bytes;
      return await bcryptVerify({ password: input, hash });
    }
    return false;
  } catch {
    return false;
  }
}
