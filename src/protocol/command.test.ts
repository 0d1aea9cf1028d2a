import { describe, expect, test } from "vitest";
import { parseCommand, type Command, type ParseError } from "./command.ts";

const enc = new TextEncoder();
const parse = (s: string) => parseCommand(enc.encode(s));
function cmd(s: string): Command {
  const r = parse(s);
  if (!r.ok) throw new Error(`${s}: ${r.error}`);
  return r.command;
}
function err(s: string): ParseError | undefined {
  const r = parse(s);
  return r.ok ? undefined : r.error;
}

describe("verbs", () => {
  test("case-insensitive verbs without arguments", () => {
    for (const v of ["DATA", "RSET", "QUIT", "STARTTLS", "NOOP"]) {
      expect(cmd(v).verb).toBe(v);
      expect(cmd(v.toLowerCase()).verb).toBe(v);
    }
    expect(cmd("StartTls").verb).toBe("STARTTLS");
  });
  test("unknown verbs", () => {
    for (const s of ["", "EXPN x", "HELLO", "DAT", "DATAX", "STARTTLX", "MAILFROM:<a@b>", " NOOP", "NOOP\tx"]) {
      expect(err(s), s).toBe("unknown");
    }
  });
  test("DATA, RSET, QUIT, STARTTLS refuse arguments; trailing spaces are tolerated", () => {
    for (const v of ["DATA", "RSET", "QUIT", "STARTTLS"]) {
      expect(err(`${v} x`)).toBe("syntax");
      expect(cmd(`${v}  `).verb).toBe(v);
    }
  });
  test("NOOP ignores an argument, HELP keeps it, VRFY needs one", () => {
    expect(cmd("NOOP hello")).toEqual({ verb: "NOOP" });
    expect(cmd("HELP")).toEqual({ verb: "HELP", arg: "" });
    expect(cmd("HELP mail")).toEqual({ verb: "HELP", arg: "mail" });
    expect(cmd("VRFY alice")).toEqual({ verb: "VRFY", arg: "alice" });
    expect(err("VRFY")).toBe("syntax");
    expect(err("VRFY   ")).toBe("syntax");
  });
  test("EHLO/HELO keep the first token as given, refuse an empty one", () => {
    expect(cmd("EHLO mx.example.com")).toEqual({ verb: "EHLO", domain: "mx.example.com" });
    expect(cmd("helo [192.0.2.1]")).toEqual({ verb: "HELO", domain: "[192.0.2.1]" });
    expect(cmd("EHLO  odd_name extra")).toEqual({ verb: "EHLO", domain: "odd_name" });
    expect(err("EHLO")).toBe("syntax");
    expect(err("EHLO ")).toBe("syntax");
  });
  test("control characters and invalid UTF-8 in arguments are syntax errors", () => {
    expect(err("EHLO a\rb")).toBe("syntax");
    expect(err("EHLO a\nb")).toBe("syntax");
    expect(err("EHLO a\0")).toBe("syntax");
    expect(parseCommand(Uint8Array.of(69, 72, 76, 79, 32, 0xc3, 0x28)).ok).toBe(false);
    expect(parseCommand(Uint8Array.of(69, 72, 76, 79, 32, 0xff))).toEqual({ ok: false, error: "syntax" });
    expect(cmd("EHLO bücher.example")).toEqual({ verb: "EHLO", domain: "bücher.example" });
  });
  test("BDAT size [LAST]", () => {
    expect(cmd("BDAT 100")).toEqual({ verb: "BDAT", size: 100, last: false });
    expect(cmd("bdat 0 last")).toEqual({ verb: "BDAT", size: 0, last: true });
    expect(cmd("BDAT 999999999999999 LAST")).toEqual({ verb: "BDAT", size: 999999999999999, last: true });
    for (const s of ["BDAT", "BDAT x", "BDAT -1", "BDAT 1 NOTLAST", "BDAT 1 LAST x", "BDAT 1000000000000000"]) {
      expect(err(s), s).toBe("syntax");
    }
  });
  test("AUTH mechanism [initial]", () => {
    expect(cmd("AUTH plain")).toEqual({ verb: "AUTH", mechanism: "PLAIN" });
    expect(cmd("AUTH PLAIN AGFsaWNlAHNlY3JldA==")).toEqual({
      verb: "AUTH",
      mechanism: "PLAIN",
      initial: "AGFsaWNlAHNlY3JldA==",
    });
    expect(cmd("AUTH PLAIN =")).toEqual({ verb: "AUTH", mechanism: "PLAIN", initial: "=" });
    expect(cmd("AUTH CRAM-MD5").verb).toBe("AUTH");
    for (const s of ["AUTH", "AUTH PLAIN a b", "AUTH PL@IN", "AUTH ABCDEFGHIJKLMNOPQRSTU"]) {
      expect(err(s), s).toBe("syntax");
    }
  });
});

describe("MAIL FROM", () => {
  const path = (s: string) => {
    const c = cmd(s);
    if (c.verb !== "MAIL") throw new Error("not MAIL");
    return c;
  };
  test("plain address, case-insensitive keyword", () => {
    const c = path("mail from:<Alice@Example.COM>");
    expect(c.path).toEqual({ address: "Alice@Example.COM", localPart: "Alice", domain: "Example.COM", utf8: false });
    expect(c.params).toEqual({ smtputf8: false });
  });
  test("one space after the colon is tolerated, two are not", () => {
    expect(path("MAIL FROM: <a@b.c>").path.address).toBe("a@b.c");
    expect(err("MAIL FROM:  <a@b.c>")).toBe("badSender");
  });
  test("null reverse-path", () => {
    expect(path("MAIL FROM:<>").path).toEqual({ address: "", localPart: "", domain: "", utf8: false });
    expect(path("MAIL FROM:<> SIZE=10").params.size).toBe(10);
  });
  test("wrong keyword is a syntax error", () => {
    for (const s of ["MAIL", "MAIL TO:<a@b>", "MAIL FROM <a@b>", "MAIL FRM:<a@b>"]) expect(err(s), s).toBe("syntax");
  });
  test("malformed paths are badSender", () => {
    for (const s of [
      "MAIL FROM:",
      "MAIL FROM:a@b.c",
      "MAIL FROM:<a@b.c",
      "MAIL FROM:<a>",
      "MAIL FROM:<postmaster>",
      "MAIL FROM:<@b.c>",
      "MAIL FROM:<a@>",
      "MAIL FROM:<a@b..c>",
      "MAIL FROM:<a@b.c.>",
      "MAIL FROM:<a@-b.c>",
      "MAIL FROM:<a@b-.c>",
      "MAIL FROM:<a..b@c.d>",
      "MAIL FROM:<.a@c.d>",
      "MAIL FROM:<a.@c.d>",
      "MAIL FROM:<a b@c.d>",
      "MAIL FROM:<a@b.c>x",
      "MAIL FROM:<a@b_c.d>",
      'MAIL FROM:<"a@c.d>',
      "MAIL FROM:<a@[1.2.3]>",
      "MAIL FROM:<a@[256.1.1.1]>",
      "MAIL FROM:<a@[IPv6:1::2::3]>",
      "MAIL FROM:<a@[IPv6:1:2:3:4:5:6:7]>",
      "MAIL FROM:<a@[IPv6:1:2:3:4:5:6:7::8]>",
      "MAIL FROM:<a@[IPv6:12345::1]>",
      "MAIL FROM:<a@[x]>",
      "MAIL FROM:<a@b.c>>",
      `MAIL FROM:<a@${"x".repeat(64)}.c>`,
    ]) {
      expect(err(s), s).toBe("badSender");
    }
  });
  test("quoted local part: address keeps quotes, localPart is the value", () => {
    const c = path('MAIL FROM:<"john \\"jd\\" doe"@example.com>');
    expect(c.path.address).toBe('"john \\"jd\\" doe"@example.com');
    expect(c.path.localPart).toBe('john "jd" doe');
    expect(c.path.domain).toBe("example.com");
    expect(path('MAIL FROM:<"a>b"@c.d>').path.localPart).toBe("a>b");
    expect(path('MAIL FROM:<""@c.d>').path.localPart).toBe("");
  });
  test("atext specials in a dot-string", () => {
    expect(path("MAIL FROM:<a.b+tag!#$%&'*/=?^_`{|}~-x@c.d>").path.localPart).toBe("a.b+tag!#$%&'*/=?^_`{|}~-x");
  });
  test("address literals", () => {
    expect(path("MAIL FROM:<a@[192.0.2.1]>").path.domain).toBe("[192.0.2.1]");
    for (const lit of [
      "IPv6:2001:db8::1",
      "ipv6:::1",
      "IPv6:1:2:3:4:5:6:7:8",
      "IPv6:::ffff:192.0.2.1",
      "IPv6:1:2:3:4:5:6:1.2.3.4",
      "IPv6:1::1.2.3.4",
      "x-tag:content",
    ]) {
      expect(path(`MAIL FROM:<a@[${lit}]>`).path.domain).toBe(`[${lit}]`);
    }
  });
  test("source routes are accepted and dropped", () => {
    const c = path("MAIL FROM:<@a.example,@b.example:user@d.example>");
    expect(c.path).toEqual({ address: "user@d.example", localPart: "user", domain: "d.example", utf8: false });
    expect(err("MAIL FROM:<@a.example,b.example:user@d.example>")).toBe("badSender");
    expect(err("MAIL FROM:<@a.example user@d.example>")).toBe("badSender");
  });
  test("non-ASCII is allowed and flagged (RFC 6531)", () => {
    const c = path("MAIL FROM:<jöran@bücher.example> SMTPUTF8");
    expect(c.path).toEqual({ address: "jöran@bücher.example", localPart: "jöran", domain: "bücher.example", utf8: true });
    expect(c.params.smtputf8).toBe(true);
  });
  test("paths over 256 octets incl. brackets are bad; exactly 256 is fine", () => {
    const domain = (n: number) => {
      const labels: string[] = [];
      while (n > 0) {
        const l = Math.min(n, 63);
        labels.push("d".repeat(l));
        n -= l + 1;
      }
      return labels.join(".");
    };
    // "<" + "a@" + domain + ">" = 256: domain of 252 octets.
    const d252 = domain(252);
    expect(d252.length).toBe(252);
    expect(path(`MAIL FROM:<a@${d252}>`).path.domain).toBe(d252);
    expect(err(`MAIL FROM:<ab@${d252}>`)).toBe("badSender");
    // Counted in octets, not characters.
    expect(err(`MAIL FROM:<é@${d252}>`)).toBe("badSender");
  });
  test("ESMTP parameters", () => {
    const c = path(
      "MAIL FROM:<a@b.c> size=1000 BODY=8bitmime SMTPUTF8 RET=hdrs ENVID=QQ+2B1 AUTH=<>",
    );
    expect(c.params).toEqual({ size: 1000, body: "8BITMIME", smtputf8: true, ret: "HDRS", envid: "QQ+1", auth: "<>" });
    expect(path("MAIL FROM:<a@b.c> BODY=BINARYMIME").params.body).toBe("BINARYMIME");
    expect(path("MAIL FROM:<a@b.c> AUTH=a+2Bb@c.d").params.auth).toBe("a+2Bb@c.d");
    expect(path("MAIL FROM:<a@b.c>  SIZE=1  ").params.size).toBe(1);
  });
  test("unknown, malformed and duplicate parameters are badParam", () => {
    for (const s of [
      "MAIL FROM:<a@b.c> FOO=1",
      "MAIL FROM:<a@b.c> SIZE",
      "MAIL FROM:<a@b.c> SIZE=",
      "MAIL FROM:<a@b.c> SIZE=x",
      "MAIL FROM:<a@b.c> SIZE=123456789012345678901",
      "MAIL FROM:<a@b.c> SIZE=1 SIZE=2",
      "MAIL FROM:<a@b.c> BODY=9BIT",
      "MAIL FROM:<a@b.c> BODY",
      "MAIL FROM:<a@b.c> SMTPUTF8=yes",
      "MAIL FROM:<a@b.c> SMTPUTF8 smtputf8",
      "MAIL FROM:<a@b.c> RET=ALL",
      "MAIL FROM:<a@b.c> AUTH=a=b",
      "MAIL FROM:<a@b.c> NOTIFY=NEVER",
      "MAIL FROM:<a@b.c> =1",
      "MAIL FROM:<a@b.c> -X=1",
    ]) {
      expect(err(s), s).toBe("badParam");
    }
  });
});

describe("RCPT TO", () => {
  const rcpt = (s: string) => {
    const c = cmd(s);
    if (c.verb !== "RCPT") throw new Error("not RCPT");
    return c;
  };
  test("plain address and the tolerated space", () => {
    expect(rcpt("RCPT TO:<bob@example.com>").path.address).toBe("bob@example.com");
    expect(rcpt("rcpt to: <bob@example.com>").path.domain).toBe("example.com");
  });
  test("<postmaster> without domain is allowed (RFC 5321 §4.5.1), any case", () => {
    expect(rcpt("RCPT TO:<postmaster>").path).toEqual({
      address: "postmaster",
      localPart: "postmaster",
      domain: "",
      utf8: false,
    });
    expect(rcpt("RCPT TO:<PostMaster>").path.address).toBe("PostMaster");
    expect(err("RCPT TO:<postmasters>")).toBe("badRecipient");
    expect(err('RCPT TO:<"postmaster">')).toBe("badRecipient");
  });
  test("<> and malformed paths are badRecipient", () => {
    for (const s of ["RCPT TO:<>", "RCPT TO:bob@example.com", "RCPT TO:<bob>", "RCPT TO:<bob@>", "RCPT TO:"]) {
      expect(err(s), s).toBe("badRecipient");
    }
    expect(err("RCPT FROM:<a@b.c>")).toBe("syntax");
  });
  test("NOTIFY and ORCPT (RFC 3461)", () => {
    const c = rcpt("RCPT TO:<b@c.d> NOTIFY=success,Delay ORCPT=rfc822;b+2Bx@c.d");
    expect(c.params).toEqual({ notify: ["SUCCESS", "DELAY"], orcpt: "rfc822;b+x@c.d" });
    expect(rcpt("RCPT TO:<b@c.d> NOTIFY=NEVER").params.notify).toEqual(["NEVER"]);
    expect(rcpt("RCPT TO:<b@c.d> ORCPT=utf-8;b@c.d").params.orcpt).toBe("utf-8;b@c.d");
  });
  test("bad RCPT parameters are badParam", () => {
    for (const s of [
      "RCPT TO:<b@c.d> NOTIFY=NEVER,SUCCESS",
      "RCPT TO:<b@c.d> NOTIFY=SUCCESS,SUCCESS",
      "RCPT TO:<b@c.d> NOTIFY=SOMETIMES",
      "RCPT TO:<b@c.d> NOTIFY",
      "RCPT TO:<b@c.d> NOTIFY=NEVER NOTIFY=NEVER",
      "RCPT TO:<b@c.d> ORCPT=rfc822;a@b ORCPT=rfc822;a@b",
      "RCPT TO:<b@c.d> SIZE=1",
      "RCPT TO:<b@c.d> SMTPUTF8",
    ]) {
      expect(err(s), s).toBe("badParam");
    }
  });
});

describe("a line parsed in place", () => {
  test("parseCommand(buf, start, end) equals parsing the line alone, whatever surrounds it", () => {
    const lines = [
      "MAIL FROM:<a.b@c.example> SIZE=1048576 BODY=8BITMIME",
      "RCPT TO:<Q@Bench.Test> NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;x+2By@z",
      "rcpt to:<postmaster>",
      "EHLO client.example",
      "DATA",
      "STARTTLS",
      "BDAT 100 LAST",
      "MAIL FROM:<a@b.c> SIZE=x",
      "RCPT TO:<bad",
      "DATAX",
      "MAIL FROM:<ü@例え.jp> SMTPUTF8",
    ];
    for (const l of lines) {
      const alone = parse(l);
      for (const [before, after] of [["", ""], ["NOOP\r\n", "\r\nQUIT\r\n"], ["x", " SIZE=9 trailing"]] as const) {
        const buf = enc.encode(before + l + after);
        const start = enc.encode(before).length;
        expect(parseCommand(buf, start, start + enc.encode(l).length), `${before}|${l}|${after}`).toEqual(alone);
      }
    }
  });

  test("SIZE is read on the bytes: 1 to 20 digits (RFC 1870 §3), exact up to 15", () => {
    const path = (s: string) => {
      const c = cmd(s);
      if (c.verb !== "MAIL") throw new Error("not MAIL");
      return c;
    };
    expect(path("MAIL FROM:<a@b.c> SIZE=0").params.size).toBe(0);
    expect(path("MAIL FROM:<a@b.c> SIZE=007").params.size).toBe(7);
    expect(path("MAIL FROM:<a@b.c> SIZE=999999999999999").params.size).toBe(999999999999999);
    // 16 to 20 digits are a size (too large for any limit: 552 5.3.4 at MAIL), 21 are not one.
    for (const d of ["1234567890123456", "99999999999999999999"]) {
      expect(path(`MAIL FROM:<a@b.c> SIZE=${d}`).params.size, d).toBeGreaterThan(999999999999999);
    }
    expect(path("MAIL FROM:<a@b.c> SIZE=00000000000000000001").params.size).toBe(1);
    expect(err("MAIL FROM:<a@b.c> SIZE=100000000000000000000")).toBe("badParam");
    for (const s of ["SIZE=-1", "SIZE=1.5", "SIZE=1e3", "SIZE=+1", "SIZE= 1"]) {
      expect(err(`MAIL FROM:<a@b.c> ${s}`), s).toBe("badParam");
    }
  });
});

describe("issue 15: malformed DSN parameters (RFC 3461 §4) and control bytes in addresses", () => {
  test("ENVID: xtext of printable US-ASCII, at most 100 characters; else badDsn", () => {
    const envid = (v: string) => {
      const c = cmd(`MAIL FROM:<a@b.c> ENVID=${v}`);
      return c.verb === "MAIL" ? c.params.envid : undefined;
    };
    expect(envid("x".repeat(100))).toBe("x".repeat(100));
    expect(envid("a+20b+2Bc")).toBe("a b+c");
    expect(envid("+7E")).toBe("~");
    for (const v of [
      "x".repeat(101),
      "x".repeat(900),
      "abc+0D+0Adef",
      "a+09b", // TAB
      "a+00",
      "a+7F",
      "a+C3+A9", // é: not US-ASCII
      "a+zz",
      "a+2",
      "+",
      "+2B".repeat(34), // 34 decoded characters are fine ...
    ].slice(0, -1)) {
      expect(err(`MAIL FROM:<a@b.c> ENVID=${v}`), v).toBe("badDsn");
    }
    expect(envid("+2B".repeat(100))).toBe("+".repeat(100));
    expect(err("MAIL FROM:<a@b.c> ENVID")).toBe("badDsn");
    expect(err("MAIL FROM:<a@b.c> ENVID=é")).toBe("badDsn");
  });
  test("a raw control byte in any parameter is a syntax error (501 5.5.4)", () => {
    for (const c of ["\t", "\0", "\x01", "\x7f", "\x1b"]) {
      expect(err(`MAIL FROM:<a@b.c> ENVID=a${c}b`), JSON.stringify(c)).toBe("syntax");
      expect(err(`RCPT TO:<a@b.c> ORCPT=rfc822;a${c}b`), JSON.stringify(c)).toBe("syntax");
      expect(err(`MAIL FROM:<a@b.c> SIZE=1${c}`), JSON.stringify(c)).toBe("syntax");
    }
  });
  test("ORCPT: rfc822 decoded and printable, at most 500; other types kept as received and checked", () => {
    const orcpt = (v: string) => {
      const c = cmd(`RCPT TO:<a@b.c> ORCPT=${v}`);
      return c.verb === "RCPT" ? c.params.orcpt : undefined;
    };
    expect(orcpt(`rfc822;${"x".repeat(496)}@b.c`)).toBe(`rfc822;${"x".repeat(496)}@b.c`);
    expect(orcpt("utf-8;a+2Bb")).toBe("utf-8;a+2Bb");
    expect(orcpt("UTF-8;j\\x{E9}r\\x{F4}me@b.c")).toBe("UTF-8;j\\x{E9}r\\x{F4}me@b.c");
    expect(orcpt("utf-8;jérôme@b.c")).toBe("utf-8;jérôme@b.c");
    for (const v of [
      "rfc822",
      ";a@b",
      "rfc822;",
      "rfc822;a+zz",
      "rfc822;a+0D+0Ab",
      "rfc822;a+09b",
      "rfc822;a+C3+A9",
      `rfc822;${"x".repeat(497)}@b.c`,
      "utf-8;a+0Db",
      "utf-8;a+zz",
      "utf-8;a+",
      `utf-8;${"x".repeat(501)}`,
      "bad type;x",
      "ty(pe;x",
    ]) {
      expect(err(`RCPT TO:<a@b.c> ORCPT=${v}`), v).toBe(v.includes(" ") ? "badParam" : "badDsn");
    }
    expect(err("RCPT TO:<a@b.c> ORCPT")).toBe("badDsn");
  });
  test("NUL and other control bytes inside an address: badSender / badRecipient", () => {
    for (const c of ["\0", "\x01", "\t", "\x1f", "\x7f", "\r", "\n"]) {
      for (const addr of [`<a${c}b@c.d>`, `<ab@c${c}.d>`, `<"a${c}b"@c.d>`, `<ab@[1.2.3.4${c}]>`, `<${c}a@b.c>`, `${c}<a@b.c>`]) {
        expect(err(`MAIL FROM:${addr}`), JSON.stringify(addr)).toBe("badSender");
        expect(err(`RCPT TO:${addr}`), JSON.stringify(addr)).toBe("badRecipient");
      }
    }
    // Invalid UTF-8 in the address is a malformed address too; in a parameter, a syntax error.
    const bytes = (s: string, bad: number[]) => {
      const [a, b] = s.split("#");
      return Uint8Array.from([...new TextEncoder().encode(a), ...bad, ...new TextEncoder().encode(b)]);
    };
    for (const bad of [[0xff], [0xc3, 0x28], [0xe2, 0x82], [0xed, 0xa0, 0x80]]) {
      expect(parseCommand(bytes("MAIL FROM:<a#b@c.d> SMTPUTF8", bad))).toEqual({ ok: false, error: "badSender" });
      expect(parseCommand(bytes('RCPT TO:<"a#b"@c.d>', bad))).toEqual({ ok: false, error: "badRecipient" });
      expect(parseCommand(bytes("RCPT TO:<ab@c#.d>", bad))).toEqual({ ok: false, error: "badRecipient" });
      expect(parseCommand(bytes("RCPT TO:<ab@c.d> ORCPT=utf-8;a#b", bad))).toEqual({ ok: false, error: "syntax" });
      expect(parseCommand(bytes("MAIL FROM:<ab@c.d> ENVID=a#", bad))).toEqual({ ok: false, error: "syntax" });
    }
    // Elsewhere on the line it stays a syntax error, as for every other command.
    expect(err("NOOP\0")).toBe("unknown");
    expect(err("VRFY a\0")).toBe("syntax");
  });
});
