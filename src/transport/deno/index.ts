/**
 * The Deno adapter: node:net + node:tls behind the seams of transport/types.ts (server Transport and outbound
 * Dialer). It uses node: modules only, so it also runs on Bun and Node.
 */
export { createDenoTransport } from "./server.ts";
export { createDenoDialer } from "./dialer.ts";
