/**
 * Polls `fn` until it returns a truthy value (resolved with it) or throws no more; fails after timeoutMs with the
 * last value or error, so an assertion inside `fn` reports what it last saw.
 */
export async function waitFor<T>(
  fn: () => T | Promise<T>,
  timeoutMs = 10_000,
  intervalMs = 50,
): Promise<Exclude<T, null | undefined | false | 0 | "">> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const v = await fn();
      if (v) return v as Exclude<T, null | undefined | false | 0 | "">;
      last = v;
    } catch (err) {
      last = err;
    }
    if (Date.now() >= deadline) {
      if (last instanceof Error) {
        last.message = `waitFor timed out after ${timeoutMs} ms: ${last.message}`;
        throw last;
      }
      throw new Error(`waitFor timed out after ${timeoutMs} ms; last value: ${JSON.stringify(last)}`);
    }
    await sleep(intervalMs);
  }
}

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}
