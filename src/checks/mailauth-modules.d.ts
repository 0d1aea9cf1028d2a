// mailauth 7.1.0 ships no types for these lib/ modules; mailauth-lib.ts and spf.ts give them the narrow shapes we
// rely on (read from its source), so here they are only declared to exist.
declare module "mailauth/lib/dkim/dkim-verifier.js" {
  const m: unknown;
  export default m;
}
declare module "mailauth/lib/arc/index.js" {
  const m: unknown;
  export default m;
}
declare module "mailauth/lib/dmarc/get-dmarc-record.js" {
  const m: unknown;
  export default m;
}
declare module "mailauth/lib/spf/index.js" {
  const m: unknown;
  export default m;
}
