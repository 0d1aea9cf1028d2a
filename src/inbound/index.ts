export { hopCounterStage } from "./hop-counter.ts";
