/**
 * Reproducible random inputs for property tests (an implementation compared with a reference on many inputs): a
 * seeded generator, so that a failure names an input that the next run produces again.
 */

/** A linear congruential generator: rand(k) is an integer in [0, k). */
export function seededRandom(seed: number): (k: number) => number {
  let s = seed;
  return (k: number): number => {
    s = (s * 1103515245 + 12345) & 0x7fffffff;
    return s % k;
  };
}

/** A string of up to maxPieces pieces drawn from `alphabet` (pieces may be longer than one character). */
export function randomText(rand: (k: number) => number, alphabet: ReadonlyArray<string>, maxPieces: number): string {
  let text = "";
  for (let i = rand(maxPieces); i > 0; i--) text += alphabet[rand(alphabet.length)];
  return text;
}
