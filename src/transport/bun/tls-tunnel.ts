/**
 * Implicit TLS after a preface (the PROXY header arrives in clear before the ClientHello). Bun's listener TLS
 * starts at the first byte, and socket.upgradeTLS() cannot be handed the ClientHello bytes that came in the same
 * read as the header (a sender may coalesce them: HAProxy writes its header with MSG_MORE), so the TLS server
 * here is node:tls's TLSSocket over a Duplex: it is fed the bytes after the header, then every raw chunk; its
 * ciphertext goes out through the raw Bun socket with the same never-drop write queue as every connection.
 * Backpressure both ways: the raw socket is paused while the Duplex's read buffer is full, and a write's
 * callback waits for the raw queue to drain.
 */
import { Duplex } from "node:stream";
import { createSecureContext, TLSSocket } from "node:tls";
import { TLS12_CIPHERS, TLS_MIN_VERSION, type Conn, type ConnHandler, type TlsInfo, type TlsOptions } from "../types.ts";
import { WriteQueue } from "./write-queue.ts";

type BunSocket = any;

/** A client that never completes the handshake is dropped after this (as the Deno adapter does). */
const HANDSHAKE_TIMEOUT_MS = 30_000;

export interface TunnelPeer {
  remoteAddress: string;
  remotePort: number;
  localAddress: string;
  localPort: number;
}

export class TlsTunnelConn implements Conn {
  handler: ConnHandler | null = null;
  tls: TlsInfo | null = null;
  readonly remoteAddress: string;
  readonly remotePort: number;
  readonly localAddress: string;
  readonly localPort: number;
  private readonly out = new WriteQueue();
  private readonly duplex: Duplex;
  private readonly ts: TLSSocket;
  private closed = false;
  private rawPaused = false;
  private waitingDrain = false;
  /** The Duplex write whose bytes wait in `out`; its callback runs when they have gone to the kernel. */
  private writeDone: (() => void) | null = null;
  private early: Uint8Array[] | null = null;
  private readonly timer: ReturnType<typeof setTimeout>;

  constructor(
    private readonly raw: BunSocket,
    peer: TunnelPeer,
    tls: TlsOptions,
    rest: Uint8Array,
    onSecure: (c: TlsTunnelConn) => void,
  ) {
    this.remoteAddress = peer.remoteAddress;
    this.remotePort = peer.remotePort;
    this.localAddress = peer.localAddress;
    this.localPort = peer.localPort;
    this.duplex = new Duplex({
      read: () => {
        if (this.rawPaused) {
          this.rawPaused = false;
          this.raw.resume?.();
        }
      },
      write: (chunk: Uint8Array, _enc, cb) => {
        this.out.send(this.raw, chunk);
        if (this.out.queued === 0) cb();
        else this.writeDone = cb;
      },
      final: (cb) => {
        this.raw.end();
        cb();
      },
    });
    this.duplex.on("error", () => {});
    if (rest.length > 0) this.duplex.push(rest);
    const secureContext = createSecureContext({
      cert: tls.cert,
      key: tls.key,
      minVersion: TLS_MIN_VERSION as "TLSv1.2",
      ciphers: TLS12_CIPHERS,
      honorCipherOrder: true,
    });
    this.ts = new TLSSocket(this.duplex as never, { isServer: true, secureContext });
    this.timer = setTimeout(() => this.destroy(), HANDSHAKE_TIMEOUT_MS);
    this.ts.on("data", (c: Uint8Array) => {
      if (this.handler !== null) this.handler.onData(c);
      else (this.early ??= []).push(c);
    });
    this.ts.on("error", () => this.destroy());
    this.ts.on("close", () => this.gone());
    this.ts.once("secure", () => {
      clearTimeout(this.timer);
      const cipher = this.ts.getCipher();
      this.tls = { version: String(this.ts.getProtocol() ?? "TLS"), cipher: String(cipher?.standardName ?? cipher?.name ?? "") };
      onSecure(this);
      const early = this.early;
      this.early = null;
      if (early !== null) for (const c of early) this.handler?.onData(c);
    });
  }

  // ---- the raw Bun socket's events, routed here by the listener ----

  /** Ciphertext from the client. */
  feed(chunk: Uint8Array): void {
    if (this.closed) return;
    if (!this.duplex.push(chunk) && !this.rawPaused) {
      this.rawPaused = true;
      this.raw.pause?.();
    }
  }

  rawDrain(): void {
    if (!this.out.flush(this.raw)) return;
    const cb = this.writeDone;
    this.writeDone = null;
    cb?.();
  }

  rawClosed(): void {
    this.destroy();
    this.gone();
  }

  // ---- Conn ----

  get pendingWrite(): number {
    return this.closed ? 0 : this.ts.writableLength;
  }

  private readonly onWritten = (): void => {
    if (this.closed || this.ts.writableLength !== 0 || !this.waitingDrain) return;
    this.waitingDrain = false;
    this.handler?.onDrain();
  };

  write(bytes: Uint8Array): void {
    if (this.closed || bytes.length === 0 || this.ts.writableEnded) return;
    this.ts.write(bytes, this.onWritten);
    if (this.ts.writableLength > 0) this.waitingDrain = true;
  }

  end(): void {
    if (!this.closed && !this.ts.writableEnded) this.ts.end();
  }

  pause(): void {
    this.ts.pause();
  }

  resume(): void {
    this.ts.resume();
  }

  startTls(): Promise<TlsInfo> {
    return Promise.reject(new Error("TLS is already active"));
  }

  private destroy(): void {
    clearTimeout(this.timer);
    this.ts.destroy();
    this.duplex.destroy();
    this.raw.end();
  }

  private gone(): void {
    if (this.closed) return;
    this.closed = true;
    clearTimeout(this.timer);
    this.out.clear();
    this.writeDone = null;
    this.handler?.onClose();
  }
}
