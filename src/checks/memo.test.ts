import { describe, expect, it } from "vitest";
import { memoize } from "./memo.ts";

describe("memoize", () => {
  it("computes a value once per argument and returns the same value again", () => {
    let calls = 0;
    const f = memoize((k: string) => {
      calls++;
      return { k };
    }, 10);
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
    }, 10);
    f("a");
    f("a");
    expect(calls).toBe(1);
  });

  it("keeps at most max arguments, forgetting the oldest first", () => {
    let calls = 0;
    const f = memoize((k: string) => {
      calls++;
      return k.length;
    }, 3);
    for (const k of ["a", "bb", "ccc", "dddd"]) f(k);
    expect(calls).toBe(4);
    f("dddd");
    f("bb");
    expect(calls).toBe(4);
    f("a"); // forgotten when "dddd" came
    expect(calls).toBe(5);
  });
});
