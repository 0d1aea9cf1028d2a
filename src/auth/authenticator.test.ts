import { beforeAll, describe, expect, test } from "vitest";
import { passwordHasher } from "../runtime/index.ts";
import { fileDirectory } from "../directory/index.ts";
import { Authenticator, type AuthLimits } from "./authenticator.ts";
import type { UserEntry } from "./users-file.ts";

const MIN = 60_000;
const WINDOW = 10 * MIN; // CONTRACT: failures "within 10 min"
const LIMITS: AuthLimits = { delayAfter: 3, blockAfter: 5, blockMs: 10 * MIN };

/** A clock the test moves by hand. */
function clock(start = 1_700_000_000_000): { now: () => number; advance: (ms: number) => void } {
  let t = start;
  return { now: () => t, advance: (ms) => (t += ms) };
}

let users: Map<string, UserEntry>;
let dummy: string;
const hasher = passwordHasher();

beforeAll(async () => {
  users = new Map([["alice@example.test", { address: "alice@example.test", hash: await hasher.hash("secret-alice") }]]);
  dummy = await hasher.hash("dummy");
});

function auth(c = clock(), limits = LIMITS): Authenticator {
  return new Authenticator(fileDirectory({ domains: [], users: users.values(), aliases: {} }), hasher, limits, c.now, dummy);
}

describe("verify", () => {
  test("the right password yields the canonical address, case-insensitively for the user name", async () => {
    const a = auth();
    expect(await a.verify("alice@example.test", "secret-alice")).toBe("alice@example.test");
    expect(await a.verify("ALICE@Example.Test", "secret-alice")).toBe("alice@example.test");
  });

  test("a wrong password, an unknown user, and the dummy hash's own password all fail", async () => {
    const a = auth();
    expect(await a.verify("alice@example.test", "Secret-alice")).toBeNull();
    expect(await a.verify("nobody@example.test", "secret-alice")).toBeNull();
    expect(await a.verify("nobody@example.test", "dummy")).toBeNull();
  });

  test("a directory change (SIGHUP, or the database) applies at the next verify; the failure record is kept", async () => {
    const c = clock();
    const dir = fileDirectory({ domains: [], users: users.values(), aliases: {} });
    const a = new Authenticator(dir, hasher, LIMITS, c.now, dummy);
    for (let i = 0; i < 3; i++) a.recordFailure("192.0.2.1");
    dir.replace({ domains: [], users: [], aliases: [] });
    a.update(LIMITS);
    expect(await a.verify("alice@example.test", "secret-alice")).toBeNull();
    expect(a.ipStatus("192.0.2.1")).toBe("delay");
  });

  test("directory unavailable: verify rejects (the session answers 454 4.7.0), it does not say 'bad password'", async () => {
    const a = new Authenticator({ snapshot: () => null }, hasher, LIMITS, clock().now, dummy);
    await expect(a.verify("alice@example.test", "secret-alice")).rejects.toThrow(/unavailable/);
  });
});

describe("per-address failure windows (injected clock)", () => {
  test("ok below delayAfter, delay from delayAfter, blocked at blockAfter", () => {
    const c = clock();
    const a = auth(c);
    expect(a.ipStatus("192.0.2.1")).toBe("ok");
    a.recordFailure("192.0.2.1");
    a.recordFailure("192.0.2.1");
    expect(a.ipStatus("192.0.2.1")).toBe("ok");
    a.recordFailure("192.0.2.1");
    expect(a.ipStatus("192.0.2.1")).toBe("delay");
    a.recordFailure("192.0.2.1");
    expect(a.ipStatus("192.0.2.1")).toBe("delay");
    a.recordFailure("192.0.2.1");
    expect(a.ipStatus("192.0.2.1")).toBe("blocked");
  });

  test("other addresses are never affected", () => {
    const a = auth();
    for (let i = 0; i < 10; i++) a.recordFailure("192.0.2.1");
    expect(a.ipStatus("192.0.2.1")).toBe("blocked");
    expect(a.ipStatus("192.0.2.2")).toBe("ok");
    expect(a.ipStatus("::1")).toBe("ok");
  });

  test("the block lasts blockMs, then the address starts over with a clean record", () => {
    const c = clock();
    const a = auth(c);
    for (let i = 0; i < 5; i++) a.recordFailure("192.0.2.1");
    c.advance(LIMITS.blockMs - 1);
    expect(a.ipStatus("192.0.2.1")).toBe("blocked");
    c.advance(1);
    expect(a.ipStatus("192.0.2.1")).toBe("ok");
    a.recordFailure("192.0.2.1");
    expect(a.ipStatus("192.0.2.1")).toBe("ok");
  });

  test("failures older than the 10-minute window no longer count", () => {
    const c = clock();
    const a = auth(c);
    a.recordFailure("192.0.2.1");
    a.recordFailure("192.0.2.1");
    c.advance(WINDOW - 1000);
    a.recordFailure("192.0.2.1");
    expect(a.ipStatus("192.0.2.1")).toBe("delay"); // three within the window
    c.advance(2000); // the first two are now older than 10 min
    expect(a.ipStatus("192.0.2.1")).toBe("ok");
    a.recordFailure("192.0.2.1");
    a.recordFailure("192.0.2.1");
    expect(a.ipStatus("192.0.2.1")).toBe("delay");
  });

  test("failures spread out so that fewer than blockAfter fall in any window never block", () => {
    const c = clock();
    const a = auth(c);
    for (let i = 0; i < 20; i++) {
      a.recordFailure("192.0.2.1");
      c.advance(WINDOW / 4 + 1); // at most 4 failures in any 10-minute span
    }
    expect(a.ipStatus("192.0.2.1")).not.toBe("blocked");
  });

  test("new limits from update() apply at once", () => {
    const c = clock();
    const a = auth(c);
    a.recordFailure("192.0.2.1");
    expect(a.ipStatus("192.0.2.1")).toBe("ok");
    a.update({ delayAfter: 1, blockAfter: 2, blockMs: MIN });
    expect(a.ipStatus("192.0.2.1")).toBe("delay");
    a.recordFailure("192.0.2.1");
    expect(a.ipStatus("192.0.2.1")).toBe("blocked");
    c.advance(MIN);
    expect(a.ipStatus("192.0.2.1")).toBe("ok");
  });
});
