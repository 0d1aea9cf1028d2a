/**
 * The write and event bookkeeping of one node:net / node:tls socket, shared by the server Conn and the client
 * ClientConn. A node socket never drops a write (it buffers what the kernel does not take), so "never drops" is
 * the socket's own; what this adds is the seam's drain signal: onDrain fires when the buffer is empty again after
 * it was not (node's own 'drain' fires only past the 16 KiB high-water mark, below which a session that paused
 * for its replies would wait forever). One callback object per link, none per write.
 */
import type { Socket } from "node:net";
import type { TLSSocket } from "node:tls";
import { setImmediate } from "node:timers";
import type { ConnHandler, TlsInfo } from "../types.ts";

export class SocketLink {
  handler: ConnHandler | null = null;
  tls: TlsInfo | null = null;
  closed = false;
  /** Chunks that arrived before a client set its handler. */
  private early: Uint8Array[] | null = null;
  private waitingDrain = false;
  private afterFlush: (() => void) | null = null;
  private tlsWaiter: { resolve(i: TlsInfo): void; reject(e: Error): void } | null = null;
  private lastError: Error | null = null;

  constructor(public sock: Socket) {
    this.attach(sock);
  }

  readonly onData = (chunk: Uint8Array): void => {
    if (this.handler !== null) this.handler.onData(chunk);
    else (this.early ??= []).push(chunk);
  };

  private readonly onWritten = (): void => {
    if (this.closed || this.sock.writableLength !== 0) return;
    const f = this.afterFlush;
    if (f !== null) {
      this.afterFlush = null;
      f();
    } else if (this.waitingDrain) {
      this.waitingDrain = false;
      this.handler?.onDrain();
    }
  };

  private readonly onClose = (): void => this.gone();
  // 'close' follows every 'error'; the error is kept to explain a failed handshake.
  private readonly onError = (e: Error): void => {
    this.lastError = e;
  };

  attach(s: Socket, withData = true): void {
    s.setNoDelay?.(true); // replies are small and pipelined (RFC 2920): no Nagle delay on them
    if (withData) s.on("data", this.onData);
    s.on("close", this.onClose);
    s.on("error", this.onError);
  }

  setHandler(h: ConnHandler): void {
    this.handler = h;
    const early = this.early;
    this.early = null;
    if (early !== null) for (const c of early) h.onData(c);
  }

  get pendingWrite(): number {
    return this.closed ? 0 : this.sock.writableLength;
  }

  write(bytes: Uint8Array): void {
    if (this.closed || bytes.length === 0 || this.sock.writableEnded) return;
    this.sock.write(bytes, this.onWritten);
    if (this.sock.writableLength > 0) this.waitingDrain = true;
  }

  /** Run f once everything written so far has gone to the kernel. */
  flushThen(f: () => void): void {
    if (this.sock.writableLength === 0) f();
    else this.afterFlush = f;
  }

  end(): void {
    if (!this.closed && !this.sock.writableEnded) this.sock.end();
  }

  pause(): void {
    this.sock.pause();
  }

  resume(): void {
    this.sock.resume();
  }

  /**
   * Hand the raw socket over to a TLS socket (STARTTLS, RFC 3207). The raw socket is paused first, in the same
   * tick as the 220 was written, so that no byte of the peer's handshake is read as plaintext; the wrap waits
   * until the 220 has left. `wrap` builds the TLS socket; `secureEvent` is the event that ends its handshake.
   */
  upgrade(wrap: (raw: Socket) => TLSSocket, secureEvent: "secure" | "secureConnect", info: (s: TLSSocket) => TlsInfo): Promise<TlsInfo> {
    const raw = this.sock;
    raw.pause();
    return new Promise<TlsInfo>((resolve, reject) => {
      this.tlsWaiter = { resolve, reject };
      this.flushThen(() => {
        if (this.closed) return;
        // Plaintext after the STARTTLS line is never delivered (CVE-2011-0411).
        raw.removeListener("data", this.onData);
        const ts = wrap(raw);
        this.sock = ts;
        // Deno's TLSSocket can emit the peer's first decrypted bytes before its handshake event. Reading starts
        // only once the handshake is done and the promise's holders have run (next macrotask), so those bytes
        // wait in the stream instead of reaching a session still in its STARTTLS state, which drops input.
        this.attach(ts, false);
        ts.once(secureEvent, () => {
          const w = this.tlsWaiter;
          this.tlsWaiter = null;
          this.tls = info(ts);
          w?.resolve(this.tls);
          setImmediate(() => {
            if (!this.closed) ts.on("data", this.onData);
          });
        });
      });
    });
  }

  destroy(): void {
    this.sock.destroy();
  }

  gone(): void {
    if (this.closed) return;
    this.closed = true;
    this.afterFlush = null;
    const w = this.tlsWaiter;
    this.tlsWaiter = null;
    w?.reject(this.lastError ?? new Error("connection closed"));
    this.handler?.onClose();
  }
}
