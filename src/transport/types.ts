/**
 * The seam between the runtime's sockets and the SMTP session. The core owns these contracts; transport/bun and
 * transport/deno implement them. Adapters import only this file.
 */

export interface TlsOptions {
  cert: string; // PEM
  key: string; // PEM
}

export interface TlsInfo {
  version: string; // "TLSv1.3"
  cipher: string; // "TLS_AES_256_GCM_SHA384"
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

export interface ListenerSpec {
  name: string;
  host: string;
  port: number;
  /** "implicit": TLS from the first byte (RFC 8314). */
  implicitTls: boolean;
  backlog: number;
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
  listen(spec: ListenerSpec, tls: () => TlsOptions | null, factory: SessionFactory): Listener;
}
