import { describe, expect, test } from "vitest";
import { fileDirectory } from "../directory/index.ts";
import { Policy } from "./policy.ts";

const ANON = { clientAddress: "203.0.113.5", authUser: undefined };

interface Over {
  domains?: string[];
  users?: string[];
  aliases?: Record<string, string[]>;
  catchAll?: boolean;
  relayNetworks?: string[];
}

function policy(over: Over = {}): Policy {
  const directory = fileDirectory({
    domains: over.domains ?? ["example.test", "Other.Test"],
    users: (over.users ?? ["alice@example.test", "Bob@Example.Test", "carol@other.test"]).map((address) => ({ address, hash: "" })),
    aliases: over.aliases ?? {},
  });
  return new Policy({ directory, catchAll: over.catchAll ?? false, relayNetworks: over.relayNetworks ?? [] });
}

/** The final addresses RCPT TO:<address> resolves to, or the refusal kind. */
function resolve(p: Policy, address: string, ctx: { clientAddress: string; authUser: string | undefined } = ANON): string[] | string {
  const at = address.lastIndexOf("@");
  const d = at < 0 ? p.recipient(address, "", ctx) : p.recipient(address.slice(0, at), address.slice(at + 1), ctx);
  return d.kind === "accept" ? d.targets.map((t) => `${t.route.kind}:${t.address}`) : d.kind;
}

describe("local recipients", () => {
  test("users of local domains are accepted case-insensitively, with lower-cased Maildir routes", () => {
    const p = policy();
    expect(resolve(p, "alice@example.test")).toEqual(["local:alice@example.test"]);
    expect(resolve(p, "ALICE@EXAMPLE.TEST")).toEqual(["local:alice@example.test"]);
    expect(resolve(p, "bob@example.test")).toEqual(["local:bob@example.test"]);
    expect(resolve(p, "carol@OTHER.test")).toEqual(["local:carol@other.test"]);
    const d = p.recipient("Alice", "Example.Test", ANON);
    expect(d.kind === "accept" && d.targets[0]!.route).toEqual({ kind: "local", domain: "example.test", localPart: "alice" });
  });

  test("unknown users of a local domain → unknownUser; catch_all accepts any safe local part", () => {
    expect(resolve(policy(), "nobody@example.test")).toBe("unknownUser");
    expect(resolve(policy({ catchAll: true }), "nobody@example.test")).toEqual(["local:nobody@example.test"]);
  });

  test("catch_all never accepts a local part that is not one safe directory name", () => {
    const p = policy({ catchAll: true });
    for (const lp of ["..", ".", "a/b", "a\\b", "x\x01y"]) expect(resolve(p, `${lp}@example.test`), lp).toBe("unknownUser");
  });

  test("RFC 5321 §4.5.1: <postmaster> without a domain means the first local domain's postmaster", () => {
    expect(resolve(policy({ catchAll: true }), "postmaster")).toEqual(["local:postmaster@example.test"]);
    expect(resolve(policy({ catchAll: true }), "PostMaster")).toEqual(["local:postmaster@example.test"]);
    expect(resolve(policy({ aliases: { "postmaster@example.test": ["alice@example.test"] } }), "postmaster")).toEqual([
      "local:alice@example.test",
    ]);
    // Any other local part without a domain is not an address.
    expect(resolve(policy({ catchAll: true }), "alice")).toBe("unknownUser");
  });
});

describe("aliases", () => {
  test("an alias expands to its targets; keys match case-insensitively", () => {
    const p = policy({ aliases: { "Team@Example.test": ["alice@example.test", "bob@example.test"] } });
    expect(resolve(p, "team@EXAMPLE.test")).toEqual(["local:alice@example.test", "local:bob@example.test"]);
  });

  test("chains are followed to the final addresses, across local domains and to remote ones", () => {
    const p = policy({
      aliases: {
        "a@example.test": ["b@example.test"],
        "b@example.test": ["c@other.test", "x@remote.test"],
        "c@other.test": ["carol@other.test"],
      },
    });
    expect(resolve(p, "a@example.test")).toEqual(["local:carol@other.test", "remote:x@remote.test"]);
  });

  test("an alias wins over a user of the same name", () => {
    const p = policy({ aliases: { "alice@example.test": ["bob@example.test"] } });
    expect(resolve(p, "alice@example.test")).toEqual(["local:bob@example.test"]);
  });

  test("an alias that names itself among its targets also delivers to itself", () => {
    const p = policy({ aliases: { "alice@example.test": ["alice@example.test", "bob@example.test"] } });
    expect(resolve(p, "alice@example.test")).toEqual(["local:alice@example.test", "local:bob@example.test"]);
  });

  test("a loop yields nothing on the looping branch, and terminates", () => {
    const loop = policy({ aliases: { "x@example.test": ["y@example.test"], "y@example.test": ["x@example.test"] } });
    expect(resolve(loop, "x@example.test")).toBe("unknownUser");
    const partial = policy({
      aliases: { "x@example.test": ["y@example.test", "alice@example.test"], "y@example.test": ["x@example.test"] },
    });
    expect(resolve(partial, "x@example.test")).toEqual(["local:alice@example.test"]);
  });

  test("a chain deeper than the depth limit is cut off instead of recursing forever", () => {
    const aliases: Record<string, string[]> = {};
    for (let i = 0; i < 100; i++) aliases[`l${i}@example.test`] = [`l${i + 1}@example.test`];
    aliases["l100@example.test"] = ["alice@example.test"];
    expect(resolve(policy({ aliases }), "l0@example.test")).toBe("unknownUser");
    expect(resolve(policy({ aliases }), "l95@example.test")).toEqual(["local:alice@example.test"]);
  });

  test("targets that are unknown local users are dropped; none left → unknownUser", () => {
    const p = policy({ aliases: { "t@example.test": ["ghost@example.test", "alice@example.test"], "g@example.test": ["ghost@example.test"] } });
    expect(resolve(p, "t@example.test")).toEqual(["local:alice@example.test"]);
    expect(resolve(p, "g@example.test")).toBe("unknownUser");
  });
});

describe("relay permission", () => {
  test("a remote recipient without AUTH and outside relay.networks → relayDenied", () => {
    expect(resolve(policy(), "x@remote.test")).toBe("relayDenied");
    expect(policy().mayRelay(ANON)).toBe(false);
  });

  test("an authenticated user may relay anywhere", () => {
    const ctx = { clientAddress: "203.0.113.5", authUser: "alice@example.test" };
    expect(resolve(policy(), "x@Remote.Test", ctx)).toEqual(["remote:x@Remote.Test"]);
    const d = policy().recipient("x", "Remote.Test", ctx);
    expect(d.kind === "accept" && d.targets[0]!.route).toEqual({ kind: "remote", domain: "remote.test" });
  });

  test("relay.networks: IPv4 CIDR, IPv6 CIDR and IPv4-mapped client addresses", () => {
    const p = policy({ relayNetworks: ["127.0.0.0/8", "2001:db8::/32", "192.0.2.1"] });
    const may = (ip: string): boolean => p.mayRelay({ clientAddress: ip, authUser: undefined });
    expect(may("127.0.0.1")).toBe(true);
    expect(may("::ffff:127.0.0.1")).toBe(true);
    expect(may("2001:db8:1::5")).toBe(true);
    expect(may("192.0.2.1")).toBe(true);
    expect(may("192.0.2.2")).toBe(false);
    expect(may("::1")).toBe(false);
    expect(may("2001:db9::1")).toBe(false);
    expect(may("")).toBe(false);
    expect(resolve(p, "x@remote.test", { clientAddress: "::ffff:127.0.0.1", authUser: undefined })).toEqual([
      "remote:x@remote.test",
    ]);
  });

  test("an unparsable relay.networks entry grants nothing", () => {
    const p = policy({ relayNetworks: ["not-a-network"] });
    expect(p.mayRelay({ clientAddress: "127.0.0.1", authUser: undefined })).toBe(false);
  });
});

describe("senderAllowed", () => {
  const p = policy({
    aliases: {
      "postmaster@example.test": ["alice@example.test"],
      "team@example.test": ["alice@example.test", "Bob@Example.Test"],
      "sales@example.test": ["team@example.test"],
    },
  });

  test("the user's own address, with the domain in any case", () => {
    expect(p.senderAllowed("alice@example.test", "alice@example.test")).toBe(true);
    expect(p.senderAllowed("alice@example.test", "alice@EXAMPLE.test")).toBe(true);
    expect(p.senderAllowed("Bob@Example.Test", "Bob@example.test")).toBe(true);
  });

  test("another user's address, the null sender and a foreign domain are refused", () => {
    expect(p.senderAllowed("alice@example.test", "bob@example.test")).toBe(false);
    expect(p.senderAllowed("alice@example.test", "")).toBe(false);
    expect(p.senderAllowed("alice@example.test", "alice@remote.test")).toBe(false);
  });

  test("an alias whose targets include the user is allowed, in any case; one that does not is refused", () => {
    expect(p.senderAllowed("alice@example.test", "postmaster@example.test")).toBe(true);
    expect(p.senderAllowed("alice@example.test", "Postmaster@Example.Test")).toBe(true);
    expect(p.senderAllowed("Bob@Example.Test", "team@example.test")).toBe(true);
    expect(p.senderAllowed("Bob@Example.Test", "postmaster@example.test")).toBe(false);
  });

  test("only direct alias targets count (sales → team → alice does not make sales alice's)", () => {
    expect(p.senderAllowed("alice@example.test", "sales@example.test")).toBe(false);
  });
});

describe("routeOwn (our own mail: DSNs to envelope senders)", () => {
  test("remote senders are routed without relay permission, and without any login", () => {
    const p = policy();
    expect(p.routeOwn("x@Remote.Test")).toEqual({ kind: "accept", targets: [{ address: "x@Remote.Test", route: { kind: "remote", domain: "remote.test" } }] });
    // The same address from an anonymous client is still refused: routeOwn changes nothing for clients.
    expect(resolve(p, "x@remote.test")).toBe("relayDenied");
  });

  test("local senders go through aliases like any recipient; an unknown local address leads nowhere", () => {
    const p = policy({ aliases: { "list@example.test": ["alice@example.test", "far@remote.test"] } });
    expect(p.routeOwn("Bob@example.test")).toEqual({ kind: "accept", targets: [{ address: "bob@example.test", route: { kind: "local", domain: "example.test", localPart: "bob" } }] });
    const list = p.routeOwn("list@example.test");
    expect(list.kind === "accept" && list.targets.map((t) => `${t.route.kind}:${t.address}`)).toEqual(["local:alice@example.test", "remote:far@remote.test"]);
    expect(p.routeOwn("nobody@example.test")).toEqual({ kind: "nowhere" });
  });

  test("with the directory unavailable our own mail waits (later), it is never dropped as undeliverable", () => {
    const dir = fileDirectory({ domains: ["example.test"], users: [{ address: "bob@example.test", hash: "" }], aliases: {} });
    let up = false;
    const p = new Policy({ directory: { snapshot: () => (up ? dir.snapshot() : null) }, catchAll: false, relayNetworks: [] });
    expect(p.routeOwn("bob@example.test")).toEqual({ kind: "later" });
    expect(p.routeOwn("x@remote.test")).toEqual({ kind: "later" });
    up = true;
    expect(p.routeOwn("bob@example.test").kind).toBe("accept");
  });
});

describe("issue 15: addresses in RFC 5321 form, one folding rule, mailbox names that fit the file system", () => {
  const authed = { clientAddress: "203.0.113.5", authUser: "alice@example.test" };
  test("relayed and local addresses keep a quoted local part quoted", () => {
    const p = policy({ catchAll: true });
    for (const lp of ["x@evil.test", "a b", "y>", 'q"z', "x>y", "(c)", "a..b"]) {
      const remote = p.recipient(lp, "remote.test", authed);
      expect(remote.kind === "accept" && remote.targets[0]!.address).toBe(`"${lp.replace(/["\\]/g, "\\$&")}"@remote.test`);
      const local = p.recipient(lp, "example.test", ANON);
      expect(local.kind === "accept" && local.targets[0]!.address).toBe(`"${lp.replace(/["\\]/g, "\\$&")}"@example.test`);
      // The Maildir name is the value itself (no quotes), folded.
      expect(local.kind === "accept" && local.targets[0]!.route).toEqual({ kind: "local", domain: "example.test", localPart: lp.toLowerCase() });
    }
  });
  test("NFC then lower case: José (NFC, NFD) is one mailbox, the Kelvin sign is k", () => {
    const p = policy({ users: ["josé@example.test", "kim@example.test"] });
    for (const lp of ["Jos\u00e9", "Jose\u0301", "JOSE\u0301"]) {
      const d = p.recipient(lp, "example.test", ANON);
      expect(d.kind === "accept" && d.targets[0]!.route, lp).toEqual({ kind: "local", domain: "example.test", localPart: "jos\u00e9" });
    }
    const k = p.recipient("\u212Aim", "example.test", ANON);
    expect(k.kind === "accept" && k.targets[0]!.address).toBe("kim@example.test");
  });
  test("a name over 255 octets after folding is unwritable; at 255 it is accepted", () => {
    const p = policy({ catchAll: true });
    // İ is 2 octets, its lower case i̇ is 3: 120 of them fold to 360 octets (the example).
    expect(p.recipient("İ".repeat(120), "example.test", ANON).kind).toBe("unwritable");
    expect(p.recipient("İ".repeat(85), "example.test", ANON).kind).toBe("accept"); // 255 octets folded
    expect(p.recipient("İ".repeat(86), "example.test", ANON).kind).toBe("unwritable"); // 258
    expect(p.recipient("a".repeat(255), "example.test", ANON).kind).toBe("accept");
    expect(p.recipient("a".repeat(256), "example.test", ANON).kind).toBe("unwritable");
    expect(p.recipient("é".repeat(128), "example.test", ANON).kind).toBe("unwritable"); // 256 octets
    expect(p.recipient("é".repeat(127), "example.test", ANON).kind).toBe("accept");
    // Remote mailboxes are not ours to judge.
    expect(p.recipient("İ".repeat(120), "remote.test", authed).kind).toBe("accept");
  });
  test("an alias target that cannot be written refuses the recipient too", () => {
    const p = policy({ aliases: { "list@example.test": ["alice@example.test", `${"x".repeat(300)}@example.test`] }, catchAll: true });
    expect(p.recipient("list", "example.test", ANON).kind).toBe("unwritable");
  });
});

describe("directory unavailable", () => {
  test("every recipient, local or not, is a tempfail (451), never unknownUser or relayDenied", () => {
    let up = true;
    const dir = fileDirectory({ domains: ["example.test"], users: [{ address: "alice@example.test", hash: "" }], aliases: {} });
    const p = new Policy({ directory: { snapshot: () => (up ? dir.snapshot() : null) }, catchAll: false, relayNetworks: [] });
    expect(resolve(p, "alice@example.test")).toEqual(["local:alice@example.test"]);
    up = false;
    expect(resolve(p, "alice@example.test")).toBe("tempfail");
    expect(resolve(p, "ghost@example.test")).toBe("tempfail");
    expect(resolve(p, "someone@remote.test")).toBe("tempfail");
    expect(resolve(p, "postmaster")).toBe("tempfail");
    up = true;
    expect(resolve(p, "ghost@example.test")).toBe("unknownUser");
  });

  test("a directory change is seen by the next decision (no rebuild of the policy)", () => {
    const dir = fileDirectory({ domains: ["example.test"], users: [], aliases: {} });
    const p = new Policy({ directory: dir, catchAll: false, relayNetworks: [] });
    expect(resolve(p, "alice@example.test")).toBe("unknownUser");
    dir.replace({ domains: ["example.test"], users: [{ address: "alice@example.test", hash: "" }], aliases: [] });
    expect(resolve(p, "alice@example.test")).toEqual(["local:alice@example.test"]);
  });
});

describe("SRS (CONTRACT Forwarding)", () => {
  const NOW = Date.UTC(2026, 4, 1);
  const srsPolicy = (domains: string[], srsDomain: string, up = true): Policy =>
    new Policy({
      directory: { snapshot: () => (up ? fileDirectory({ domains, users: [], aliases: { "fwd@a.test": ["x@remote.test"] } }).snapshot() : null) },
      catchAll: false,
      relayNetworks: [],
      srs: { secret: "k", domain: srsDomain },
      now: () => NOW,
    });
  const fwdSender = (p: Policy): string | undefined => {
    const d = p.recipient("fwd", "a.test", { ...ANON, sender: "s@elsewhere.test" });
    return d.kind === "accept" ? d.targets[0]!.sender : d.kind;
  };

  test("domain \"\" is the first local domain; a configured one is used in lower case", () => {
    expect(fwdSender(srsPolicy(["a.test", "b.test"], ""))).toMatch(/@a\.test$/);
    expect(fwdSender(srsPolicy(["a.test", "b.test"], "B.Test"))).toMatch(/@b\.test$/);
  });

  test("an SRS domain that is not local (a PostgreSQL directory without it) turns SRS off", () => {
    const p = srsPolicy(["a.test"], "gone.test");
    expect(fwdSender(p)).toBeUndefined();
    const made = srsPolicy(["a.test", "gone.test"], "gone.test").recipient("fwd", "a.test", { ...ANON, sender: "s@elsewhere.test" });
    const address = made.kind === "accept" ? made.targets[0]!.sender! : "";
    // gone.test is not local to p: a remote address, and an anonymous client may not relay there.
    expect(resolve(p, address)).toBe("relayDenied");
  });

  test("a bounce to our SRS0 address is routed for DSNs too (routeOwn), and the directory being down is 451, not 550", () => {
    const p = srsPolicy(["a.test"], "");
    const address = (p.recipient("fwd", "a.test", { ...ANON, sender: "s@elsewhere.test" }) as { targets: Array<{ sender?: string }> }).targets[0]!.sender!;
    expect(p.routeOwn(address)).toEqual({ kind: "accept", targets: [{ address: "s@elsewhere.test", route: { kind: "remote", domain: "elsewhere.test" } }] });
    expect(srsPolicy(["a.test"], "", false).recipient("SRS0=AAAA=AA=x.test=y", "a.test", ANON).kind).toBe("tempfail");
  });
});
