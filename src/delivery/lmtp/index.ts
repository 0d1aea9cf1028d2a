export { LmtpCourier, parseLmtpTarget } from "./courier.ts";
export type { LmtpSettings } from "./courier.ts";
