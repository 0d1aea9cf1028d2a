/**
 * The server side: one node:net listener per ListenerSpec (backlog from the spec: CONTRACT ≥ 1024), plaintext
 * connections straight to the session, implicit TLS (RFC 8314) and STARTTLS (RFC 3207) both by wrapping the
 * accepted socket in `new tls.TLSSocket(sock, { isServer: true, secureContext })` — Deno has no server-side
 * Deno.startTls, and a net listener lets every connection pick up the certificate current at its handshake
 * (SIGHUP reload) without rebinding.
 */
import { createServer, type AddressInfo, type Socket } from "node:net";
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
  ) {
    this.remoteAddress = unmapped(raw.remoteAddress ?? "");
    this.remotePort = raw.remotePort ?? 0;
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

function accept(
  raw: Socket,
  spec: ListenerSpec,
  tlsSource: () => TlsOptions | null,
  contexts: ContextCache,
  factory: SessionFactory,
): void {
  if (!spec.implicitTls) {
    const link = new SocketLink(raw);
    link.setHandler(factory(new DenoConn(link, raw, tlsSource, contexts), spec));
    return;
  }
  const t = tlsSource();
  if (t === null) {
    raw.destroy();
    return;
  }
  // Implicit TLS (RFC 8314 §3.3): the greeting comes after the handshake.
  const ts = new TLSSocket(raw, { isServer: true, secureContext: contexts.get(t) });
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
    link.setHandler(factory(new DenoConn(link, raw, tlsSource, contexts), spec));
  });
}

export function createDenoTransport(): Transport {
  return {
    tlsPerConnection: true,
    listen(spec: ListenerSpec, tlsSource: () => TlsOptions | null, factory: SessionFactory): Promise<Listener> {
      if (spec.implicitTls && tlsSource() === null) {
        return Promise.reject(new Error(`listener ${spec.name}: implicit TLS needs a certificate`));
      }
      const contexts = new ContextCache();
      const server = createServer((raw) => accept(raw, spec, tlsSource, contexts, factory));
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
