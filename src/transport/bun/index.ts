/**
 * The Bun adapter: Bun.listen sockets behind the Conn seam of transport/types.ts.
 *
 * Platform facts (ARCHITECTURE.md): `write()` returns what the kernel took and buffers nothing, so the rest is
 * queued here and flushed on `drain`; each `data` chunk is a fresh buffer that the session may keep;
 * STARTTLS is `socket.upgradeTLS()`, after which decrypted bytes arrive at the new handlers and the old
 * handler keeps seeing ciphertext, which is ignored by a flag.
 */
import { constants as cryptoConstants } from "node:crypto";
import {
  TLS12_CIPHERS,
  type Conn,
  type ConnHandler,
  type Listener,
  type ListenerSpec,
  type PrefaceReader,
  type SessionFactory,
  type TlsInfo,
  type TlsOptions,
  type Transport,
} from "../types.ts";
import { raiseBacklog } from "./backlog.ts";
import { TlsTunnelConn } from "./tls-tunnel.ts";
import { WriteQueue } from "./write-queue.ts";

declare const Bun: any;
type BunSocket = any;

/** CONTRACT: TLS 1.2 and 1.3 only. */
const SECURE_OPTIONS = cryptoConstants.SSL_OP_NO_TLSv1 | cryptoConstants.SSL_OP_NO_TLSv1_1 | 0;

function bunTls(t: TlsOptions): object {
  return {
    cert: t.cert,
    key: t.key,
    secureOptions: SECURE_OPTIONS | cryptoConstants.SSL_OP_CIPHER_SERVER_PREFERENCE,
    ciphers: TLS12_CIPHERS,
  };
}

function tlsInfoOf(s: BunSocket): TlsInfo {
  const cipher = s.getCipher?.();
  return { version: String(s.getTLSVersion?.() ?? "TLS"), cipher: String(cipher?.standardName ?? cipher?.name ?? "") };
}

/** After end(): how long a client that goes on sending is read (and its bytes dropped) before the socket closes. */
const LINGER_MS = 2000;

class BunConn implements Conn {
  handler: ConnHandler | null = null;
  tls: TlsInfo | null = null;
  /** Writes the kernel did not take yet, oldest first. */
  private readonly out = new WriteQueue();
  private ending = false;
  private closed = false;
  private linger: ReturnType<typeof setTimeout> | null = null;
  /** Set once upgradeTLS ran: the raw socket's data handler then sees ciphertext only. */
  upgraded = false;
  private tlsWaiter: { resolve(i: TlsInfo): void; reject(e: Error): void } | null = null;
  /** Reading the listener's preface (PROXY header): the reader and its deadline. */
  preface: { reader: PrefaceReader; timer: ReturnType<typeof setTimeout> } | null = null;
  /** Implicit TLS after a preface: every raw event goes to this connection instead. */
  tunnel: TlsTunnelConn | null = null;
  /** The peer; a preface may replace it with the client it names. */
  remoteAddress: string;
  remotePort: number;
  readonly localAddress: string;
  readonly localPort: number;

  constructor(
    private sock: BunSocket,
    private readonly tlsSource: () => TlsOptions | null,
  ) {
    this.remoteAddress = sock.remoteAddress ?? "";
    this.remotePort = sock.remotePort ?? 0;
    this.localAddress = sock.localAddress ?? "";
    this.localPort = sock.localPort ?? 0;
  }

  get pendingWrite(): number {
    return this.out.queued;
  }

  write(bytes: Uint8Array): void {
    if (!this.closed) this.out.send(this.sock, bytes);
  }

  /** drain: push queued bytes until the kernel stops taking them. */
  flushQueue(): void {
    if (this.closed || !this.out.flush(this.sock)) return;
    if (this.ending) this.finish();
    else this.handler?.onDrain();
  }

  end(): void {
    if (this.ending || this.closed) return;
    this.ending = true;
    if (this.out.queued === 0) this.finish();
  }

  /** Input for the session; nothing once we are closing (a lingering close reads only to drop). */
  receive(chunk: Uint8Array): void {
    if (!this.ending) this.handler?.onData(chunk);
  }

  /**
   * A lingering close: FIN after our last reply, then what the client still sends is read and dropped until it
   * closes too, or LINGER_MS. Closing with unread input would reset the connection, and the reset can destroy our
   * last reply (a 421 after max_errors, say) before the client reads it.
   */
  private finish(): void {
    if (typeof this.sock.shutdown !== "function") {
      this.sock.end();
      return;
    }
    this.sock.shutdown();
    this.sock.resume?.();
    this.linger = setTimeout(() => this.sock.end(), LINGER_MS);
  }

  pause(): void {
    this.sock.pause?.();
  }

  resume(): void {
    this.sock.resume?.();
  }

  startTls(): Promise<TlsInfo> {
    const tls = this.tlsSource();
    if (tls === null) return Promise.reject(new Error("no TLS certificate configured"));
    return new Promise<TlsInfo>((resolve, reject) => {
      this.tlsWaiter = { resolve, reject };
      const upgrade = (): void => {
        this.upgraded = true;
        const [, tlsSock] = this.sock.upgradeTLS({ tls: bunTls(tls), socket: TLS_HANDLERS, data: this });
        this.sock = tlsSock;
      };
      // The 220 must be on the wire before the handshake starts.
      if (this.out.queued === 0) upgrade();
      else this.afterFlush = upgrade;
    });
  }

  afterFlush: (() => void) | null = null;

  handshakeDone(success: boolean, err: Error | null): void {
    const w = this.tlsWaiter;
    this.tlsWaiter = null;
    if (!w) return;
    if (success) {
      this.tls = tlsInfoOf(this.sock);
      w.resolve(this.tls);
    } else {
      w.reject(err ?? new Error("TLS handshake failed"));
      this.sock.end();
    }
  }

  gone(): void {
    if (this.preface !== null) clearTimeout(this.preface.timer);
    this.preface = null;
    if (this.closed) return;
    this.closed = true;
    if (this.linger !== null) clearTimeout(this.linger);
    this.out.clear();
    const w = this.tlsWaiter;
    this.tlsWaiter = null;
    w?.reject(new Error("connection closed"));
    this.handler?.onClose();
  }
}

/** Handlers of a socket after STARTTLS: decrypted data, TLS drain/close. */
const TLS_HANDLERS = {
  binaryType: "uint8array",
  handshake(s: BunSocket, success: boolean, err: Error | null) {
    (s.data as BunConn).handshakeDone(success, err);
  },
  data(s: BunSocket, chunk: Uint8Array) {
    (s.data as BunConn).receive(chunk);
  },
  drain(s: BunSocket) {
    (s.data as BunConn).flushQueue();
  },
  close(s: BunSocket) {
    (s.data as BunConn).gone();
  },
  error(s: BunSocket) {
    (s.data as BunConn).gone();
  },
};

export function createBunTransport(): Transport {
  return {
    listen(spec: ListenerSpec, tlsSource: () => TlsOptions | null, factory: SessionFactory): Listener {
      const implicit = spec.implicitTls;
      const preface = spec.preface ?? null;
      if (implicit && tlsSource() === null) throw new Error(`listener ${spec.name}: implicit TLS needs a certificate`);
      // With a preface the header comes in clear before the handshake: the listener accepts plain TCP and
      // TLS starts after the header (tls-tunnel.ts).
      const tls = implicit && preface === null ? tlsSource() : null;

      /** The preface is read: go on as the client it names, in clear or through TLS. */
      const afterPreface = (s: BunSocket, conn: BunConn, peer: { address: string; port: number } | null, rest: Uint8Array): void => {
        if (peer !== null) {
          conn.remoteAddress = peer.address;
          conn.remotePort = peer.port;
        }
        if (!implicit) {
          const h = factory(conn, spec);
          conn.handler = h;
          if (rest.length > 0) h.onData(rest);
          return;
        }
        const t = tlsSource();
        if (t === null) {
          s.end();
          return;
        }
        conn.tunnel = new TlsTunnelConn(s, conn, t, rest, (tc) => {
          tc.handler = factory(tc, spec);
        });
      };

      const readPreface = (s: BunSocket, conn: BunConn, chunk: Uint8Array): void => {
        const p = conn.preface!;
        const v = p.reader.push(chunk);
        if (v.kind === "more") return;
        clearTimeout(p.timer);
        conn.preface = null;
        if (v.kind === "close") s.end();
        else afterPreface(s, conn, v.peer, v.rest);
      };
      const server = Bun.listen({
        hostname: spec.host,
        port: spec.port,
        // Implicit-TLS listeners are replaced on a certificate reload by a second listener on the same port
        // (Bun keeps one certificate per listener); plain ones stay exclusive so a second instance fails loudly.
        reusePort: implicit,
        ...(tls ? { tls: bunTls(tls) } : {}),
        socket: {
          binaryType: "uint8array",
          open(s: BunSocket) {
            const conn = new BunConn(s, tlsSource);
            s.data = conn;
            if (preface !== null) {
              const reader = preface.open(conn.remoteAddress);
              if (reader === null) {
                s.end();
                return;
              }
              const timer = setTimeout(() => {
                if (conn.preface === null) return;
                conn.preface = null;
                reader.timedOut();
                s.end();
              }, preface.timeoutMs);
              conn.preface = { reader, timer };
              return;
            }
            // Implicit TLS (RFC 8314): the greeting comes after the handshake.
            if (!implicit) conn.handler = factory(conn, spec);
          },
          handshake(s: BunSocket, success: boolean) {
            const conn = s.data as BunConn;
            if (!implicit || preface !== null || conn.handler) return;
            if (!success) {
              s.end();
              return;
            }
            conn.tls = tlsInfoOf(s);
            conn.handler = factory(conn, spec);
          },
          data(s: BunSocket, chunk: Uint8Array) {
            const conn = s.data as BunConn;
            if (conn.tunnel !== null) conn.tunnel.feed(chunk);
            else if (conn.upgraded) return; // ciphertext of the upgraded socket
            else if (conn.preface !== null) readPreface(s, conn, chunk);
            else conn.receive(chunk);
          },
          drain(s: BunSocket) {
            const conn = s.data as BunConn;
            if (conn.tunnel !== null) {
              conn.tunnel.rawDrain();
              return;
            }
            if (conn.upgraded) return;
            if (conn.afterFlush) {
              conn.flushQueue();
              if (conn.pendingWrite === 0) {
                const f = conn.afterFlush;
                conn.afterFlush = null;
                f();
              }
              return;
            }
            conn.flushQueue();
          },
          close(s: BunSocket) {
            const conn = s.data as BunConn | undefined;
            if (conn?.tunnel) conn.tunnel.rawClosed();
            if (conn && !conn.upgraded) conn.gone();
          },
          error(s: BunSocket) {
            const conn = s.data as BunConn | undefined;
            if (conn?.tunnel) conn.tunnel.rawClosed();
            if (conn && !conn.upgraded) conn.gone();
          },
        },
      });
      if (!raiseBacklog(server.fd, spec.backlog)) {
        throw new Error(`listener ${spec.name}: could not set the listen backlog to ${spec.backlog}`);
      }
      return {
        spec,
        port: server.port,
        stop() {
          server.stop(false);
        },
      };
    },
  };
}
export { createBunDialer } from "./dialer.ts";
