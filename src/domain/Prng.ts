/**
 * mulberry32: a tiny 32-bit PRNG, the source of every seeded choice in the
 * project (the simulated machine's seeded yield points, the explorer's random
 * and PCT strategies). The 32-bit bit operations act on PRNG state only, never
 * on addresses.
 *
 * @since 0.2.0
 */

/**
 * A generator of values in `[0, 1)` from a 32-bit seed.
 *
 * @since 0.2.0
 * @category constructors
 */
export const mulberry32 = (seed: number): (() => number) => {
  let a = seed >>> 0
  return () => {
    a = (a + 0x6d2b79f5) >>> 0
    let t = a
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}
