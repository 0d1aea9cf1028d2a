export { hopCounterStage } from "./hop-counter.ts";
export { dkimSignStage, type DkimSignSettings } from "./dkim-sign.ts";
