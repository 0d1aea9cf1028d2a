/**
 * TLS settings shared by the server and the client side: TLS 1.2 and 1.3 only (CONTRACT), and for TLS 1.2 the
 * same AEAD-only suites as the Bun adapter, server order first (TLS 1.3 suites are all AEAD).
 */
import { rootCertificates, createSecureContext, type SecureContext, type TLSSocket } from "node:tls";
import { peerChainOf, TLS_MIN_VERSION, TLS12_CIPHERS, type TlsInfo, type TlsOptions } from "../types.ts";

export const MIN_VERSION = TLS_MIN_VERSION;
export const CIPHERS = TLS12_CIPHERS;

/**
 * One secure context per certificate pair, rebuilt only when the source hands out a new pair (SIGHUP reload):
 * building a context parses the PEM, which is too slow to do per connection.
 */
export class ContextCache {
  private last: TlsOptions | null = null;
  private ctx: SecureContext | null = null;

  get(t: TlsOptions): SecureContext {
    if (this.ctx === null || this.last === null || this.last.cert !== t.cert || this.last.key !== t.key) {
      this.ctx = createSecureContext({
        cert: t.cert,
        key: t.key,
        minVersion: MIN_VERSION,
        ciphers: CIPHERS,
        honorCipherOrder: true,
      });
      this.last = t;
    }
    return this.ctx;
  }
}

/** The CA list for a client: the system's roots plus the extra PEM, as node:tls `ca` replaces the defaults. */
export function caList(extra: string | undefined): string[] | undefined {
  return extra === undefined || extra === "" ? undefined : [...rootCertificates, extra];
}

export function tlsInfoOf(s: TLSSocket): TlsInfo {
  const c = s.getCipher?.() as { standardName?: string; name?: string } | undefined;
  const info: TlsInfo = { version: String(s.getProtocol?.() ?? "TLS"), cipher: String(c?.standardName ?? c?.name ?? "") };
  // The chain as the server sent it, leaf first (DANE, RFC 7672).
  const chain = peerChainOf(s.getPeerCertificate?.(true));
  if (chain.length > 0) info.peerChain = chain;
  return info;
}
