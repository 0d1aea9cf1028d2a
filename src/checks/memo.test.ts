import { describe, expect, it } from "vitest";
import { memoize } from "./memo.ts";

describe("memoize", () => {
  it("computes a value once per argument and returns the same value again", () => {
    let calls = 0;
    const f = memoize((k: string) => {
      calls++;
      return { k };
    }, { entries: 10, keyLength: 100 });
    const a = f("x");
    expect(f("x")).toBe(a);
    expect(calls).toBe(1);
    expect(f("y")).toEqual({ k: "y" });
    expect(calls).toBe(2);
  });

  it("remembers undefined and null results too", () => {
    let calls = 0;
    const f = memoize(() => {
      calls++;
      return null;
    }, { entries: 10, keyLength: 100 });
    f("a");
    f("a");
    expect(calls).toBe(1);
  });

  it("keeps at most max arguments, forgetting the oldest first", () => {
    let calls = 0;
    const f = memoize((k: string) => {
      calls++;
      return k.length;
    }, { entries: 3, keyLength: 100 });
    for (const k of ["a", "bb", "ccc", "dddd"]) f(k);
    expect(calls).toBe(4);
    f("dddd");
    f("bb");
    expect(calls).toBe(4);
    f("a"); // forgotten when "dddd" came
    expect(calls).toBe(5);
  });

  it("computes an argument longer than keyLength every time, without keeping it", () => {
    let calls = 0;
    const f = memoize((k: string) => {
      calls++;
      return k.length;
    }, { entries: 10, keyLength: 3 });
    f("abcd");
    f("abcd");
    expect(calls).toBe(2);
    f("abc");
    f("abc");
    expect(calls).toBe(3);
  });
});
