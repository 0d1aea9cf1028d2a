/**
 * dkim/: DKIM signing (RFC 6376, RFC 8463) and its keys. Pure apart from reading and writing key files; used by the
 * signing stage in inbound/, by app/ for our DSNs, and by the CLI (`dkim keygen`, `dns-records`).
 */
export { RelaxedBodyHash } from "./body-hash.ts";
export { HeaderSectionReader, MAX_HEADER_BYTES, MAX_HEADER_FIELDS, splitFields, type HeaderField } from "./header-section.ts";
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
