/**
 * dkim/: DKIM signing and verification (RFC 6376, RFC 8463) and its keys. Pure apart from reading and writing key
 * files; used by the signing stage in inbound/, by app/ for our DSNs, by checks/ to verify, and by the CLI
 * (`dkim keygen`, `dns-records`).
 */
export { RelaxedBodyHash, SimpleBodyHash, type BodyHashAlgorithm, type BodyHasher } from "./body-hash.ts";
export {
  HeaderSectionReader,
  MAX_HEADER_BYTES,
  MAX_HEADER_FIELDS,
  splitFields,
  type HeaderField,
  type HeaderLimits,
} from "./header-section.ts";
export { compact, parseTagList, type TagList } from "./tag-list.ts";
export {
  bPrefix,
  DkimVerification,
  KEY_TOO_LARGE_REASON,
  KEY_TOO_SMALL_REASON,
  keyRecordTooLarge,
  MAX_RSA_BITS,
  MAX_SIGNATURES,
  MIN_RSA_BITS,
  OVER_LIMIT,
  unverifiedVerdict,
  type DkimVerifyOptions,
  type KeyAnswer,
  type KeyLookup,
  type SignatureVerdict,
  type VerdictResult,
} from "./verify.ts";
export {
  DkimKeyring,
  DkimSigning,
  fromDomain,
  relaxedHeader,
  signatureField,
  signedNames,
  signMessage,
  SIGNED_FIELDS,
  type DkimAlgorithm,
  type DkimKey,
  type SignOutcome,
} from "./signer.ts";
export {
  dkimRecordLine,
  generateKeyFile,
  keyFile,
  loadKeyring,
  publicRecord,
  readKey,
  RSA_BITS,
  txtStrings,
  type KeyAlgorithm,
  type KeyringResult,
} from "./keys.ts";
