export { ensureCertificate, generateCertificate, writePemPair, type CertOptions, type PemPair } from "./generate.ts";
