export { createRing, Ring, SLOT_BYTES, MAX_ID_LENGTH } from "./ring.ts";
export type { RingItem } from "./ring.ts";
