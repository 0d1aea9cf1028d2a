/**
 * The server side: one node:net listener per ListenerSpec (backlog from the spec: CONTRACT ≥ 1024), plaintext
 * connections straight to the session, implicit TLS (RFC 8314) and STARTTLS (RFC 3207) both by wrapping the
 * accepted socket in `new tls.TLSSocket(sock, { isServer: true, secureContext })` — Deno has no server-side
 * Deno.startTls, and a net listener lets every connection pick up the certificate current at its handshake
 * (SIGHUP reload) without rebinding.
 */
import { createServer, type AddressInfo, type Socket } from "node:net";
import { Duplex } from "node:stream";
import { TLSSocket } from "node:tls";
import type { Conn, Listener, ListenerSpec, SessionFactory, TlsInfo, TlsOptions, Transport } from "../types.ts";
import { SocketLink } from "./socket-link.ts";
import { ContextCache, tlsInfoOf } from "./tls-settings.ts";

/** A client that connects to an implicit-TLS port and never completes the handshake is dropped after this. */
const HANDSHAKE_TIMEOUT_MS = 30_000;

class DenoConn implements Conn {
  readonly remoteAddress: string;
  readonly remotePort: number;
  readonly localAddress: string;
  readonly localPort: number;

  constructor(
    readonly link: SocketLink,
    raw: Socket,
    private readonly tlsSource: () => TlsOptions | null,
    private readonly contexts: ContextCache,
    /** The client a preface (PROXY header) named, instead of the peer. */
    peer: Peer | null,
  ) {
    this.remoteAddress = peer?.address ?? unmapped(raw.remoteAddress ?? "");
    this.remotePort = peer?.port ?? raw.remotePort ?? 0;
    this.localAddress = unmapped(raw.localAddress ?? "");
    this.localPort = raw.localPort ?? 0;
  }

  get tls(): TlsInfo | null {
    return this.link.tls;
  }
  get pendingWrite(): number {
    return this.link.pendingWrite;
  }
  write(bytes: Uint8Array): void {
    this.link.write(bytes);
  }
  end(): void {
    this.link.end();
  }
  pause(): void {
    this.link.pause();
  }
  resume(): void {
    this.link.resume();
  }

  startTls(): Promise<TlsInfo> {
    const t = this.tlsSource();
    if (t === null) return Promise.reject(new Error("no TLS certificate configured"));
    const secureContext = this.contexts.get(t);
    return this.link.upgrade((raw) => new TLSSocket(raw, { isServer: true, secureContext }), "secure", tlsInfoOf);
  }
}

/** "::ffff:192.0.2.1" → "192.0.2.1", as the Bun adapter reports it (per-IP limits and relay networks). */
function unmapped(a: string): string {
  return a.startsWith("::ffff:") && a.includes(".") ? a.slice(7) : a;
}

type Peer = { address: string; port: number };

interface Accepted {
  spec: ListenerSpec;
  tlsSource: () => TlsOptions | null;
  contexts: ContextCache;
  factory: SessionFactory;
}

function accept(raw: Socket, a: Accepted): void {
  const preface = a.spec.preface;
  if (preface === undefined) {
    serve(raw, a, null, null);
    return;
  }
  // The preface (PROXY header) is read from the raw bytes before TLS and before the session.
  const reader = preface.open(unmapped(raw.remoteAddress ?? ""));
  if (reader === null) {
    raw.destroy();
    return;
  }
  const timer = setTimeout(() => {
    raw.removeListener("data", onData);
    reader.timedOut();
    raw.destroy();
  }, preface.timeoutMs);
  const onData = (chunk: Uint8Array): void => {
    const v = reader.push(chunk);
    if (v.kind === "more") return;
    clearTimeout(timer);
    raw.removeListener("data", onData);
    if (v.kind === "close") raw.destroy();
    else {
      raw.pause();
      serve(raw, a, v.peer, v.rest);
    }
  };
  raw.on("data", onData);
  raw.on("error", () => {});
  raw.once("close", () => clearTimeout(timer));
}

/**
 * A Duplex over the raw socket that first yields `rest` (bytes read with the preface: the start of the ClientHello
 * when the sender coalesced them), then the socket's bytes. TLSSocket cannot be handed bytes already read from a
 * socket (unshift is not seen by it, on Deno or Bun), but it runs over any Duplex.
 */
function replaying(raw: Socket, rest: Uint8Array): Duplex {
  const d = new Duplex({
    read() {
      raw.resume();
    },
    write(chunk: Uint8Array, _enc, cb) {
      raw.write(chunk, cb);
    },
    final(cb) {
      raw.end();
      cb();
    },
    destroy(err, cb) {
      raw.destroy();
      cb(err);
    },
  });
  raw.on("data", (c: Uint8Array) => {
    if (!d.push(c)) raw.pause();
  });
  raw.once("end", () => d.push(null));
  raw.once("close", () => d.destroy());
  if (rest.length > 0) d.push(rest);
  return d;
}

/** Start the session: at once in clear, or after the TLS handshake; `rest` (non-null) = bytes after a preface. */
function serve(raw: Socket, a: Accepted, peer: Peer | null, rest: Uint8Array | null): void {
  const { spec, tlsSource, contexts, factory } = a;
  if (!spec.implicitTls) {
    const link = new SocketLink(raw);
    if (rest !== null) {
      // Paused while the preface was read; the bytes after it wait in the link until the session is set.
      if (rest.length > 0) link.onData(rest);
      raw.resume();
    }
    link.setHandler(factory(new DenoConn(link, raw, tlsSource, contexts, peer), spec));
    return;
  }
  const t = tlsSource();
  if (t === null) {
    raw.destroy();
    return;
  }
  // Implicit TLS (RFC 8314 §3.3): the greeting comes after the handshake.
  const under = rest === null ? raw : (replaying(raw, rest) as unknown as Socket);
  const ts = new TLSSocket(under, { isServer: true, secureContext: contexts.get(t) });
  const timer = setTimeout(() => ts.destroy(), HANDSHAKE_TIMEOUT_MS);
  const fail = (): void => {
    clearTimeout(timer);
    ts.destroy();
    raw.destroy();
  };
  ts.on("error", fail);
  ts.once("secure", () => {
    clearTimeout(timer);
    ts.removeListener("error", fail);
    const link = new SocketLink(ts);
    link.tls = tlsInfoOf(ts);
    link.setHandler(factory(new DenoConn(link, raw, tlsSource, contexts, peer), spec));
  });
}

export function createDenoTransport(): Transport {
  return {
    tlsPerConnection: true,
    listen(spec: ListenerSpec, tlsSource: () => TlsOptions | null, factory: SessionFactory): Promise<Listener> {
      if (spec.implicitTls && tlsSource() === null) {
        return Promise.reject(new Error(`listener ${spec.name}: implicit TLS needs a certificate`));
      }
      const accepted: Accepted = { spec, tlsSource, contexts: new ContextCache(), factory };
      const server = createServer((raw) => accept(raw, accepted));
      return new Promise<Listener>((resolve, reject) => {
        server.once("error", reject);
        server.listen({ host: spec.host, port: spec.port, backlog: spec.backlog }, () => {
          server.removeListener("error", reject);
          // accept() errors (EMFILE, say) must not crash the process; the listener keeps going.
          server.on("error", () => {});
          resolve({
            spec,
            port: (server.address() as AddressInfo).port,
            stop() {
              server.close();
            },
          });
        });
      });
    },
  };
}
