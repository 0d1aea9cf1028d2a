/**
 * A pure function of one string, remembered for the last `entries` distinct arguments (the oldest forgotten first).
 * For what the checks compute again for every message from the same few inputs (a domain's DMARC record, its
 * organizational domain, a comment's words): the inputs come from outside, so the memory is bounded, in count and,
 * with `keyLength`, in size: a longer argument is computed every time and not kept. The values are shared between
 * callers and must not be changed.
 */
export function memoize<V>(fn: (key: string) => V, o: { entries: number; keyLength: number }): (key: string) => V {
  const seen = new Map<string, V>();
  return (key: string): V => {
    if (key.length > o.keyLength) return fn(key);
    const v = seen.get(key);
    if (v !== undefined || seen.has(key)) return v as V;
    const made = fn(key);
    if (seen.size >= o.entries) seen.delete(seen.keys().next().value!);
    seen.set(key, made);
    return made;
  };
}
