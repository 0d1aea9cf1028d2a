/**
 * The client side (delivery/remote): node:net, node:tls for implicit TLS (RFC 8314), and STARTTLS (RFC 3207)
 * by `tls.connect({ socket })` over the connected socket. TLS 1.2 minimum (CONTRACT); a certificate is checked
 * against `servername` when `verify` is set.
 */
import { connect as netConnect, isIP, type Socket } from "node:net";
import { connect as tlsConnect, type ConnectionOptions, type TLSSocket } from "node:tls";
import type { ClientConn, ClientTlsOptions, ConnHandler, DialOptions, Dialer, TlsInfo } from "../types.ts";
import { SocketLink } from "./socket-link.ts";
import { caList, MIN_VERSION, tlsInfoOf } from "./tls-settings.ts";

function tlsOptions(o: ClientTlsOptions): ConnectionOptions {
  const ca = caList(o.ca);
  return {
    // RFC 6066 §3: SNI carries host names only, never an address literal.
    ...(isIP(o.servername) ? {} : { servername: o.servername }),
    ...(ca ? { ca } : {}),
    rejectUnauthorized: o.verify,
    minVersion: MIN_VERSION,
  };
}

class DenoClientConn implements ClientConn {
  private readonly link: SocketLink;
  readonly remoteAddress: string;

  constructor(sock: Socket, tls: TlsInfo | null, unix?: string) {
    this.link = new SocketLink(sock);
    this.link.tls = tls;
    this.remoteAddress = unix ?? sock.remoteAddress ?? "";
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
  setHandler(h: ConnHandler): void {
    this.link.setHandler(h);
  }
  startTls(opts: ClientTlsOptions): Promise<TlsInfo> {
    const o = tlsOptions(opts);
    // checkServerIdentity needs the name when the peer was dialled by address.
    return this.link.upgrade((raw) => tlsConnect({ ...o, socket: raw, host: opts.servername }), "secureConnect", tlsInfoOf);
  }
  end(): void {
    this.link.end();
  }
  destroy(): void {
    this.link.destroy();
  }
}

export function createDenoDialer(): Dialer {
  return {
    connect(o: DialOptions): Promise<ClientConn> {
      return new Promise<ClientConn>((resolve, reject) => {
        const implicit = o.tls !== undefined && o.unix === undefined;
        const sock: Socket =
          o.unix !== undefined
            ? netConnect({ path: o.unix })
            : implicit
              ? tlsConnect({ ...tlsOptions(o.tls!), host: o.host, port: o.port })
              : netConnect({ host: o.host, port: o.port });
        const where = o.unix !== undefined ? `unix:${o.unix}` : `${o.host}:${o.port}`;
        const timer = setTimeout(() => {
          sock.destroy();
          reject(new Error(`connect to ${where} timed out after ${o.timeoutMs} ms`));
        }, o.timeoutMs);
        const fail = (e: Error): void => {
          clearTimeout(timer);
          reject(e);
        };
        sock.on("error", fail);
        sock.once(implicit ? "secureConnect" : "connect", () => {
          clearTimeout(timer);
          sock.removeListener("error", fail);
          resolve(new DenoClientConn(sock, implicit ? tlsInfoOf(sock as TLSSocket) : null, o.unix));
        });
      });
    },
  };
}
