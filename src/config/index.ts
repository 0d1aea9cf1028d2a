/** config/: the TOML config file (CONTRACT "Config file"), its zod validation and the embedded defaults. */
export type { AuthMode, ChecksConfig, Config, ConfigResult, ListenerConfig, TlsMode } from "./types.ts";
export { defaultConfig } from "./defaults.ts";
export { validateConfig } from "./validate.ts";
export { DEFAULT_CONFIG_FILE, loadConfigFile, resolveConfig } from "./load.ts";
export { parseDuration, parseSize } from "./units.ts";
export { isDomainName, isSelector, splitHostPort, type HostPort } from "./net-syntax.ts";
