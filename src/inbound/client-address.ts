/**
 * Client addresses as the defences key them: an IPv4-mapped IPv6 address (::ffff:192.0.2.1, what a dual-stack
 * socket reports for an IPv4 peer; RFC 4291 §2.5.5.2) is the IPv4 address it carries, and an IPv6 address is
 * written out in full (eight groups of four hex digits) so that one host has one spelling.
 */
import { isIP } from "node:net";

/** The address a defence should see: the IPv4 one inside a mapped address, else `ip` unchanged. */
export function plainAddress(ip: string): string {
  const lower = ip.toLowerCase();
  if (lower.startsWith("::ffff:") && isIP(lower.slice(7)) === 4) return lower.slice(7);
  return ip;
}

/** Eight groups of four lower-case hex digits; null when `ip` is not an IPv6 address. */
export function expandIpv6(ip: string): string[] | null {
  if (isIP(ip) !== 6) return null;
  const [head = "", tail] = ip.toLowerCase().split("::");
  const groups = (part: string): string[] =>
    part === ""
      ? []
      : part.split(":").flatMap((g) => {
          if (!g.includes(".")) return [g];
          // An embedded IPv4 tail is two groups (RFC 4291 §2.2, form 3).
          const b = g.split(".").map(Number);
          return [((b[0]! << 8) | b[1]!).toString(16), ((b[2]! << 8) | b[3]!).toString(16)];
        });
  const h = groups(head);
  const t = tail === undefined ? [] : groups(tail);
  const all = [...h, ...Array<string>(8 - h.length - t.length).fill("0"), ...t];
  return all.map((g) => g.padStart(4, "0"));
}

/**
 * The network a greylisting triple names (CONTRACT: the client's /24 for IPv4, /64 for IPv6), so that a sender
 * whose retries leave from another host of the same pool still passes: "192.0.2.0/24", "2001:0db8:0000:0001::/64".
 */
export function clientNetwork(ip: string): string {
  const a = plainAddress(ip);
  if (isIP(a) === 4) return `${a.slice(0, a.lastIndexOf("."))}.0/24`;
  const g = expandIpv6(a);
  return g === null ? a : `${g.slice(0, 4).join(":")}::/64`;
}
