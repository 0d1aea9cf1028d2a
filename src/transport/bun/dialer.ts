/**
 * The Bun adapter for outbound connections: Bun.connect sockets behind the ClientConn seam of transport/types.ts.
 *
 * Same platform facts as the listener (ARCHITECTURE.md): `write()` returns what the kernel took, so the rest is
 * queued here and flushed on `drain`. Client STARTTLS (RFC 3207) is `socket.upgradeTLS()`: decrypted bytes then
 * arrive at the new handlers, and the raw socket's handler, which keeps seeing ciphertext, is ignored by a flag.
 * Bun reports the chain check in `handshake(socket, success, authorizationError)`; with verification asked for we
 * accept only a handshake without an authorization error (Bun checks the chain and the host name against
 * `serverName`), so a wrong or self-signed certificate without its CA is refused.
 */
import { constants as cryptoConstants } from "node:crypto";
import { rootCertificates } from "node:tls";
import { WriteQueue } from "./write-queue.ts";
import { peerChainOf, type ClientConn, type ClientTlsOptions, type ConnHandler, type DialOptions, type Dialer, type TlsInfo } from "../types.ts";

declare const Bun: any;
type BunSocket = any;

/** CONTRACT: the client too speaks TLS 1.2 and 1.3 only. */
const SECURE_OPTIONS = cryptoConstants.SSL_OP_NO_SSLv3 | cryptoConstants.SSL_OP_NO_TLSv1 | cryptoConstants.SSL_OP_NO_TLSv1_1;

function bunClientTls(o: ClientTlsOptions): object {
  return {
    serverName: o.servername,
    rejectUnauthorized: o.verify,
    // ClientTlsOptions.ca is extra CAs "besides the system's" (relay.smarthost_ca, relay.tls_ca): a `ca` given to
    // Bun replaces its root store, so the system roots go along (as the Deno adapter does).
    ...(o.ca ? { ca: [...rootCertificates, o.ca] } : {}),
    secureOptions: SECURE_OPTIONS,
  };
}

function tlsInfoOf(s: BunSocket): TlsInfo {
  const cipher = s.getCipher?.();
  const info: TlsInfo = { version: String(s.getTLSVersion?.() ?? "TLS"), cipher: String(cipher?.standardName ?? cipher?.name ?? "") };
  // The native socket's argument is "abbreviated" (node:tls's `detailed` negated): false gives the chain as the
  // server sent it, through issuerCertificate, leaf first (DANE-TA needs it, RFC 7671 §5.2.2).
  const chain = peerChainOf(s.getPeerCertificate?.(false));
  if (chain.length > 0) info.peerChain = chain;
  return info;
}

/**
 * An X.509 verification result (OpenSSL's names: UNABLE_TO_VERIFY_LEAF_SIGNATURE, DEPTH_ZERO_SELF_SIGNED_CERT,
 * CERT_HAS_EXPIRED, …, and Node's ERR_TLS_CERT_ALTNAME_INVALID), as opposed to a transport failure (ECONNRESET).
 */
function isCertificateError(err: Error | null): boolean {
  const code = (err as { code?: unknown } | null)?.code;
  if (typeof code !== "string") return false;
  return code === "ERR_TLS_CERT_ALTNAME_INVALID" || (!code.startsWith("ERR_") && !/^E[A-Z]+$/.test(code));
}

class BunClientConn implements ClientConn {
  tls: TlsInfo | null = null;
  remoteAddress = "";
  private handler: ConnHandler | null = null;
  /** Bytes that arrived before a handler was set (the 220 greeting races the caller's await). */
  private early: Uint8Array[] = [];
  private closedEarly = false;
  private readonly out = new WriteQueue();
  private ending = false;
  closed = false;
  /** Set once upgradeTLS ran: the raw socket's handlers then see ciphertext only. */
  upgraded = false;
  /** Verification demanded for the current handshake. */
  verify = false;
  tlsWaiter: { resolve(i: TlsInfo): void; reject(e: Error): void } | null = null;
  sock: BunSocket = null;

  get pendingWrite(): number {
    return this.out.queued;
  }

  setHandler(h: ConnHandler): void {
    this.handler = h;
    const early = this.early;
    this.early = [];
    for (const c of early) h.onData(c);
    if (this.closedEarly) h.onClose();
  }

  onData(chunk: Uint8Array): void {
    if (this.handler) this.handler.onData(chunk);
    else this.early.push(chunk);
  }

  write(bytes: Uint8Array): void {
    if (!this.closed) this.out.send(this.sock, bytes);
  }

  flushQueue(): void {
    if (this.closed || !this.out.flush(this.sock)) return;
    if (this.ending) this.sock.end();
    else this.handler?.onDrain();
  }

  startTls(opts: ClientTlsOptions): Promise<TlsInfo> {
    if (this.closed) return Promise.reject(new Error("connection closed"));
    return new Promise<TlsInfo>((resolve, reject) => {
      this.tlsWaiter = { resolve, reject };
      this.verify = opts.verify;
      this.upgraded = true;
      // Anything queued but unsent would go out in clear after the handshake started: the caller writes STARTTLS
      // and waits for the 220, so nothing is queued here.
      this.out.clear();
      const [, tlsSock] = this.sock.upgradeTLS({ tls: bunClientTls(opts), socket: TLS_HANDLERS, data: this });
      this.sock = tlsSock;
    });
  }

  handshakeDone(s: BunSocket, success: boolean, err: Error | null): void {
    const w = this.tlsWaiter;
    this.tlsWaiter = null;
    if (!w) return;
    // Bun reports success=false for any authorization error, whatever rejectUnauthorized says; an unverified
    // (opportunistic) session accepts a completed handshake whose only fault is the certificate.
    if (success ? !this.verify || err === null : !this.verify && isCertificateError(err)) {
      this.tls = tlsInfoOf(s);
      w.resolve(this.tls);
    } else {
      w.reject(new Error(`TLS handshake failed: ${err?.message ?? (err as { code?: string } | null)?.code ?? "refused"}`));
      this.destroy();
    }
  }

  end(): void {
    if (this.ending || this.closed) return;
    this.ending = true;
    if (this.out.queued === 0) this.sock.end();
  }

  destroy(): void {
    if (this.closed) return;
    try {
      if (this.sock !== null) {
        if (typeof this.sock.terminate === "function") this.sock.terminate();
        else this.sock.end();
      }
    } catch {
      // already gone
    }
    this.gone();
  }

  gone(): void {
    if (this.closed) return;
    this.closed = true;
    this.out.clear();
    const w = this.tlsWaiter;
    this.tlsWaiter = null;
    w?.reject(new Error("connection closed"));
    if (this.handler) this.handler.onClose();
    else this.closedEarly = true;
  }
}

const TLS_HANDLERS = {
  binaryType: "uint8array",
  handshake(s: BunSocket, success: boolean, err: Error | null) {
    const c = s.data as BunClientConn;
    c.sock ??= s;
    c.handshakeDone(s, success, err);
  },
  data(s: BunSocket, chunk: Uint8Array) {
    (s.data as BunClientConn).onData(chunk);
  },
  drain(s: BunSocket) {
    (s.data as BunClientConn).flushQueue();
  },
  close(s: BunSocket) {
    (s.data as BunClientConn).gone();
  },
  error(s: BunSocket) {
    (s.data as BunClientConn).gone();
  },
};

const RAW_HANDLERS = {
  binaryType: "uint8array",
  data(s: BunSocket, chunk: Uint8Array) {
    const c = s.data as BunClientConn;
    if (!c.upgraded) c.onData(chunk);
  },
  drain(s: BunSocket) {
    const c = s.data as BunClientConn;
    if (!c.upgraded) c.flushQueue();
  },
  close(s: BunSocket) {
    const c = s.data as BunClientConn;
    if (!c.upgraded) c.gone();
  },
  error(s: BunSocket) {
    const c = s.data as BunClientConn;
    if (!c.upgraded) c.gone();
  },
  connectError() {
    // Bun.connect rejects as well; the dialer reports it there.
  },
};

export function createBunDialer(): Dialer {
  return {
    connect(o: DialOptions): Promise<ClientConn> {
      const conn = new BunClientConn();
      const implicit = o.tls !== undefined && o.unix === undefined;
      if (implicit) conn.verify = o.tls!.verify;
      return new Promise<ClientConn>((resolve, reject) => {
        let settled = false;
        const fail = (err: Error): void => {
          if (settled) return;
          settled = true;
          clearTimeout(timer);
          conn.destroy();
          reject(err);
        };
        const where = o.unix !== undefined ? `unix:${o.unix}` : `${o.host}:${o.port}`;
        const timer = setTimeout(() => fail(new Error(`connect to ${where} timed out`)), o.timeoutMs);
        const ready = (): void => {
          if (settled) return;
          settled = true;
          clearTimeout(timer);
          resolve(conn);
        };
        if (implicit) {
          // RFC 8314: the session starts after the handshake; its outcome decides.
          conn.tlsWaiter = { resolve: () => ready(), reject: fail };
        }
        Bun.connect({
          ...(o.unix !== undefined ? { unix: o.unix } : { hostname: o.host, port: o.port }),
          data: conn,
          ...(implicit ? { tls: bunClientTls(o.tls!) } : {}),
          socket: implicit ? { ...TLS_HANDLERS, connectError: RAW_HANDLERS.connectError } : RAW_HANDLERS,
        }).then(
          (s: BunSocket) => {
            conn.sock = s;
            conn.remoteAddress = o.unix ?? s.remoteAddress ?? o.host;
            if (settled) {
              conn.destroy();
              return;
            }
            if (conn.closed) fail(new Error(`connection to ${where} closed`));
            else if (!implicit) ready();
          },
          (err: Error) => fail(err instanceof Error ? err : new Error(String(err))),
        );
      });
    },
  };
}
