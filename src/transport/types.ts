/**
 * The seam between the runtime's sockets and the SMTP session. The core owns these contracts; transport/bun and
 * transport/deno implement them. Adapters import only this file.
 */

/**
 * The one TLS policy of every listener and of the client (CONTRACT: TLS 1.2 and 1.3 only): for TLS 1.2, forward-
 * secret AEAD suites only, in the server's order (TLS 1.3 suites are all AEAD). Both adapters apply it.
 */
export const TLS_MIN_VERSION = "TLSv1.2";
export const TLS12_CIPHERS = [
  "ECDHE-ECDSA-AES128-GCM-SHA256",
  "ECDHE-RSA-AES128-GCM-SHA256",
  "ECDHE-ECDSA-AES256-GCM-SHA384",
  "ECDHE-RSA-AES256-GCM-SHA384",
  "ECDHE-ECDSA-CHACHA20-POLY1305",
  "ECDHE-RSA-CHACHA20-POLY1305",
].join(":");

/**
 * The chain a TLS peer sent, leaf first, from its certificate as node:tls and Bun both give it (DER in `raw`, the
 * issuer in `issuerCertificate`, a self-signed one pointing at itself): what DANE matches (RFC 7672, RFC 7671
 * §5.2.2). At most 10 certificates. Both adapters fill TlsInfo.peerChain with it.
 */
export function peerChainOf(leaf: unknown): Uint8Array[] {
  const chain: Uint8Array[] = [];
  let cert = (leaf ?? null) as { raw?: Uint8Array; issuerCertificate?: unknown } | null;
  while (cert !== null && cert.raw instanceof Uint8Array && chain.length < 10) {
    chain.push(new Uint8Array(cert.raw));
    const next = cert.issuerCertificate as typeof cert | undefined;
    if (next === undefined || next === cert) break;
    cert = next;
  }
  return chain;
}

export interface TlsOptions {
  cert: string; // PEM
  key: string; // PEM
}

export interface TlsInfo {
  version: string; // "TLSv1.3"
  cipher: string; // "TLS_AES_256_GCM_SHA384"
  /**
   * Client side only: the certificates the server presented, DER, leaf first (DANE, RFC 7672, matches them).
   */
  peerChain?: Uint8Array[];
}

/** One accepted connection, as the session sees it. */
export interface Conn {
  readonly remoteAddress: string;
  readonly remotePort: number;
  readonly localAddress: string;
  readonly localPort: number;
  /** Non-null once TLS is up (implicit TLS from the start, STARTTLS after the handshake). */
  readonly tls: TlsInfo | null;
  /** Send bytes. Never drops: what the kernel does not take is queued and flushed on drain. */
  write(bytes: Uint8Array): void;
  /** Bytes queued but not yet taken by the kernel (a client that does not read its replies). */
  readonly pendingWrite: number;
  /** Flush what is queued, then close. */
  end(): void;
  /** Stop / restart delivering data events (backpressure towards the client). */
  pause(): void;
  resume(): void;
  /**
   * Upgrade to TLS (STARTTLS, RFC 3207). The caller has already written and flushed the 220 reply. Bytes that
   * arrived before the handshake are dropped by the caller; data events resume with decrypted bytes.
   */
  startTls(): Promise<TlsInfo>;
}

/** What the transport calls; produced by the session factory per connection. */
export interface ConnHandler {
  onData(chunk: Uint8Array): void;
  /** The queued writes have drained (pendingWrite is 0 again). */
  onDrain(): void;
  /** The socket is gone (either side). Called once. */
  onClose(): void;
}

/**
 * What a listener reads from each connection before anything else — before the TLS handshake of an implicit-TLS
 * listener, before the session exists and before any banner: the PROXY protocol header. The core builds it (app/);
 * an adapter only feeds the raw bytes and acts on the verdict.
 */
export interface Preface {
  /** Asked at accept: a reader for this peer, or null to close the connection at once, without a byte. */
  open(peerAddress: string): PrefaceReader | null;
  /** A preface not complete this long after accept closes the connection (a header sent byte by byte too). */
  readonly timeoutMs: number;
}

export interface PrefaceReader {
  /** The next raw bytes (never more than one verdict other than "more"). */
  push(chunk: Uint8Array): PrefaceVerdict;
  /** The adapter closed the connection at timeoutMs. */
  timedOut(): void;
}

export type PrefaceVerdict =
  | { kind: "more" }
  /** Close without writing anything. */
  | { kind: "close" }
  /**
   * Go on: `peer` (when not null) is the client's address for every purpose from now on (Conn.remoteAddress);
   * `rest` = the bytes after the preface, handed to TLS (implicit) or the session first.
   */
  | { kind: "done"; peer: { address: string; port: number } | null; rest: Uint8Array };

export interface ListenerSpec {
  name: string;
  host: string;
  port: number;
  /** "implicit": TLS from the first byte (RFC 8314); with a preface, from the first byte after it. */
  implicitTls: boolean;
  backlog: number;
  /** Absent: the session starts at accept (after the handshake on an implicit-TLS listener). */
  preface?: Preface;
}

export type SessionFactory = (conn: Conn, listener: ListenerSpec) => ConnHandler;

export interface Listener {
  readonly spec: ListenerSpec;
  /** The bound port (useful with port 0). */
  readonly port: number;
  /** Stop accepting; open connections stay. */
  stop(): void;
}

export interface Transport {
  /**
   * Bind and start accepting. Bun binds synchronously (and throws); node:net, which the Deno adapter uses, binds
   * asynchronously and reports the bound port and any bind error (EADDRINUSE) only later, hence the promise.
   */
  listen(spec: ListenerSpec, tls: () => TlsOptions | null, factory: SessionFactory): Listener | Promise<Listener>;
  /**
   * True when every TLS handshake (implicit or STARTTLS) takes its certificate from tls() at that moment, so a
   * certificate reload needs no new listener (Deno). Absent/false: implicit-TLS listeners keep the certificate
   * they were created with and are replaced on reload (Bun).
   */
  readonly tlsPerConnection?: boolean;
}

// ---- outbound (the SMTP client of delivery/remote) --------------------------------------------------------

export interface ClientTlsOptions {
  /** SNI and the name the certificate must match. */
  servername: string;
  /** Verify the peer's certificate chain and name (smart host: yes by default; opportunistic MX: no). */
  verify: boolean;
  /** Extra CA certificates (PEM) to trust besides the system's. */
  ca?: string;
}

export interface DialOptions {
  host: string;
  port: number;
  /**
   * A Unix-domain socket path to connect to instead of host:port (a local LMTP server, RFC 2033); `host` then only
   * names the peer in messages and `tls` does not apply.
   */
  unix?: string;
  /** Give up connecting after this long (RFC 5321 §4.5.3.2 "initial 220" is the caller's own timer). */
  timeoutMs: number;
  /** Implicit TLS from the first byte (RFC 8314), e.g. a smart host on 465. */
  tls?: ClientTlsOptions;
}

/** An outbound connection. Bytes arrive at the handler set with setHandler (set it before awaiting anything). */
export interface ClientConn {
  readonly remoteAddress: string;
  readonly tls: TlsInfo | null;
  /** Never drops: what the kernel does not take is queued and flushed on drain. */
  write(bytes: Uint8Array): void;
  readonly pendingWrite: number;
  setHandler(h: ConnHandler): void;
  /** STARTTLS (RFC 3207) from the client side, after the server's 220. Rejects when verification fails. */
  startTls(opts: ClientTlsOptions): Promise<TlsInfo>;
  /** Flush, then close. */
  end(): void;
  /** Close now. */
  destroy(): void;
}

export interface Dialer {
  /** Rejects on refusal, timeout or a TLS failure (implicit TLS). */
  connect(o: DialOptions): Promise<ClientConn>;
}
