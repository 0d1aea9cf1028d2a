import { describe, expect, test } from "vitest";
import { parseDuration, parseSize } from "./units.ts";

describe("parseDuration", () => {
  test("every unit converts to milliseconds", () => {
    expect(parseDuration("500ms")).toBe(500);
    expect(parseDuration("30s")).toBe(30_000);
    expect(parseDuration("5m")).toBe(300_000);
    expect(parseDuration("2h")).toBe(7_200_000);
    expect(parseDuration("5d")).toBe(432_000_000);
    expect(parseDuration("1w")).toBe(604_800_000);
    expect(parseDuration("0s")).toBe(0);
  });
  test("rejects missing, unknown or upper-case units, signs, fractions and spaces", () => {
    for (const s of ["", "5", "5x", "m", "-5m", "1.5h", "5 m", "5M", "5mm", " 5m", "5m ", "1h30m"])
      expect(parseDuration(s), s).toBeNull();
  });
  test("rejects values beyond a safe integer of milliseconds", () => {
    expect(parseDuration("999999999999999w")).toBeNull();
  });
});

describe("parseSize", () => {
  test("integers are bytes", () => {
    expect(parseSize(26214400)).toBe(26214400);
    expect(parseSize(0)).toBe(0);
    expect(parseSize("1024")).toBe(1024);
  });
  test("SI units are powers of 1000, IEC units powers of 1024, case-insensitive", () => {
    expect(parseSize("100k")).toBe(100_000);
    expect(parseSize("100kB")).toBe(100_000);
    expect(parseSize("25MB")).toBe(25_000_000);
    expect(parseSize("25m")).toBe(25_000_000);
    expect(parseSize("1GB")).toBe(1_000_000_000);
    expect(parseSize("1KiB")).toBe(1024);
    expect(parseSize("25MiB")).toBe(26_214_400);
    expect(parseSize("25mib")).toBe(26_214_400);
    expect(parseSize("1GiB")).toBe(1_073_741_824);
    expect(parseSize("10 B")).toBe(10);
    expect(parseSize("25 MiB")).toBe(26_214_400);
  });
  test("rejects negatives, fractions, unknown units and non-finite numbers", () => {
    for (const s of [-1, 1.5, Number.NaN, Number.POSITIVE_INFINITY, 2 ** 60, "", "MB", "25XB", "-1MB", "1.5MB", "25TB"])
      expect(parseSize(s), String(s)).toBeNull();
  });
});
