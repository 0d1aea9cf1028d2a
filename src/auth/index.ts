export { Authenticator, type AuthLimits, type PasswordVerifier, type SharedFailures } from "./authenticator.ts";
export { loadUsers, parseUsers, saveUsers, type UserEntry, type UsersParse } from "./users-file.ts";
