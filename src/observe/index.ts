export { bufferedStderr, createLogger, type LogFormat, type Logger, type LogSink } from "./log.ts";
export { Counter, GaugeFn, Histogram, Registry } from "./metrics.ts";
export { serveObserve, type ObserveEndpoints } from "./http.ts";
