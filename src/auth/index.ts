export { Authenticator, type AuthLimits, type PasswordVerifier } from "./authenticator.ts";
export { loadUsers, parseUsers, saveUsers, type UserEntry, type UsersParse } from "./users-file.ts";
