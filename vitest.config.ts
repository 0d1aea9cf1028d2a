import { defineConfig } from "vitest/config";

export default defineConfig({
  test: {
    include: ["src/**/*.test.ts", "test/**/*.test.ts"],
    exclude: ["test/deno/**", "node_modules/**"],
    testTimeout: 60_000,
    hookTimeout: 60_000,
    // e2e files spawn servers on their own free ports; two cores: keep file parallelism modest.
    maxWorkers: 2,
    reporters: ["default", "./test/summary-reporter.ts"],
    // Each test file's temp dirs are removed after it (test/setup-temp-dirs.ts).
    setupFiles: ["./test/setup-temp-dirs.ts"],
  },
});
