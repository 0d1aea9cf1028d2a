/**
 * Vitest setup file (vitest.config.ts): after each test file, the temp dirs its helpers made (test/helpers/server.ts
 * tempDir and spawned servers) are removed, so that a run leaves nothing in the temp directory.
 */
import { afterAll } from "vitest";
import { removeTempDirs } from "./helpers/server.ts";

afterAll(() => removeTempDirs());
