export { Policy, mailboxFits, type PolicySettings } from "./policy.ts";
export { cidrContains, parseCidr, parseIp, type Cidr } from "./cidr.ts";
export { ConnectionRateLimiter, MAX_TRACKED } from "./connection-rate.ts";
