export { Session, type SessionDeps, type SessionSettings } from "./session.ts";
export type * from "./ports.ts";
