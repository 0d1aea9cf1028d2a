import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, test } from "vitest";
import { DEFAULT_CONFIG_FILE, defaultConfig, loadConfigFile, resolveConfig } from "./index.ts";

let dir: string;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), "ringmta-config-"));
});
afterEach(() => {
  rmSync(dir, { recursive: true, force: true });
});

describe("loadConfigFile", () => {
  test("reads, validates and resolves relative paths against the file's directory", () => {
    mkdirSync(join(dir, "etc"));
    const file = join(dir, "etc", "mta.toml");
    writeFileSync(file, `hostname = "mx.example.test"\ndata_dir = "../var"\n[tls]\ncert = "c.pem"\nkey = "k.pem"\n`);
    const r = loadConfigFile(file);
    expect(r.ok).toBe(true);
    if (!r.ok) return;
    expect(r.config.configPath).toBe(file);
    expect(r.config.hostname).toBe("mx.example.test");
    expect(r.config.dataDir).toBe(join(dir, "var"));
    expect(r.config.tls).toEqual({ cert: join(dir, "etc", "c.pem"), key: join(dir, "etc", "k.pem") });
  });
  test("a missing file is one error line naming the file", () => {
    const file = join(dir, "absent.toml");
    expect(loadConfigFile(file)).toEqual({ ok: false, errors: [`${file}: no such file`] });
  });
  test("a directory is not a config file", () => {
    expect(loadConfigFile(dir)).toEqual({ ok: false, errors: [`${dir}: is a directory, not a file`] });
  });
  test("a TOML syntax error is one error line with its position", () => {
    const file = join(dir, "bad.toml");
    writeFileSync(file, `hostname = "a"\nb = [\n`);
    const r = loadConfigFile(file);
    expect(r.ok).toBe(false);
    if (r.ok) return;
    expect(r.errors).toHaveLength(1);
    expect(r.errors[0]).toMatch(new RegExp(`^${file.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")}: TOML syntax error at line \\d+, column \\d+: \\S`));
  });
  test("schema errors come back as dotted paths", () => {
    const file = join(dir, "x.toml");
    writeFileSync(file, `[limits]\nmax_recipients = -1\nfoo = 1\n`);
    expect(loadConfigFile(file)).toEqual({
      ok: false,
      errors: ["limits.max_recipients: expected a positive integer", "limits.foo: unknown key"],
    });
  });
});

describe("resolveConfig precedence", () => {
  test("an explicit --config wins over ./ringmta.toml and is resolved against cwd", () => {
    writeFileSync(join(dir, DEFAULT_CONFIG_FILE), `hostname = "implicit.test"\n`);
    writeFileSync(join(dir, "other.toml"), `hostname = "explicit.test"\n`);
    const r = resolveConfig("other.toml", dir);
    expect(r.ok && r.config.hostname).toBe("explicit.test");
    expect(r.ok && r.config.configPath).toBe(join(dir, "other.toml"));
  });
  test("an explicit file that is missing is an error, even when ./ringmta.toml exists", () => {
    writeFileSync(join(dir, DEFAULT_CONFIG_FILE), `hostname = "implicit.test"\n`);
    expect(resolveConfig("nope.toml", dir)).toEqual({ ok: false, errors: [`${join(dir, "nope.toml")}: no such file`] });
  });
  test("without --config, ./ringmta.toml is read when present", () => {
    writeFileSync(join(dir, DEFAULT_CONFIG_FILE), `hostname = "implicit.test"\n`);
    const r = resolveConfig(undefined, dir);
    expect(r.ok && r.config.hostname).toBe("implicit.test");
    expect(r.ok && r.config.configPath).toBe(join(dir, DEFAULT_CONFIG_FILE));
  });
  test("a bad ./ringmta.toml is reported, not replaced by defaults", () => {
    writeFileSync(join(dir, DEFAULT_CONFIG_FILE), `bogus = true\n`);
    expect(resolveConfig(undefined, dir)).toEqual({ ok: false, errors: ["bogus: unknown key"] });
  });
  test("with neither, the embedded defaults apply, resolved against cwd", () => {
    expect(resolveConfig(undefined, dir)).toEqual({ ok: true, config: defaultConfig(dir) });
  });
});
