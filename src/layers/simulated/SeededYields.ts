/**
 * Seeded yield points: the simulated machine's source of reproducible
 * interleavings.
 *
 * With `schedule: { seed }` every service call of the simulated machine passes
 * through {@link YieldSchedule.point}, which yields the running fiber
 * (`Effect.yieldNow`) about half of the time, decided by a mulberry32 PRNG on a
 * 32-bit state. The Effect scheduler is FIFO and deterministic, so two
 * concurrent fibers interleave identically for the same seed and (in general)
 * differently for different seeds. Without a schedule, yield points cost
 * nothing and never yield.
 *
 * The 32-bit bit operations here act on PRNG state only, never on addresses.
 *
 * @since 0.1.0
 */
import { Effect } from "effect"
import { type InterleavingApi, uncontrolled } from "../../services/Interleaving.ts"

/**
 * The schedule option: a seed for the PRNG, and the yield probability (default 0.5).
 *
 * @category models
 */
export interface ScheduleOptions {
  readonly seed: number
  readonly yieldProbability?: number
}

/**
 * A seeded yield-point source (one per machine).
 *
 * @category models
 */
export interface YieldSchedule {
  /** A possible yield point: yields the fiber if the PRNG says so. */
  readonly point: Effect.Effect<void>
  /** The same yield point labelled `label` for the explorer's traces (build once per component). */
  readonly at: (label: string) => Effect.Effect<void>
  /** Draws the next PRNG value in `[0, 1)` (advances the state). */
  readonly next: () => number
  /** Number of yields taken so far. */
  readonly yields: () => number
}

/** mulberry32 (`src/domain/Prng.ts`), re-exported where the seeded schedule has always offered it. */
export { mulberry32 } from "../../domain/Prng.ts"
import { mulberry32 } from "../../domain/Prng.ts"

/**
 * Builds the schedule of a machine. `undefined` options give a schedule whose
 * yield point is `Effect.void`.
 *
 * @category functions
 */
export const makeYieldSchedule = (options: ScheduleOptions | undefined, interleaving: InterleavingApi = uncontrolled): YieldSchedule => {
  if (interleaving.controlled) {
    // The explorer decides the interleaving; the seed is not used.
    let yields = 0
    const count = Effect.sync(() => void yields++)
    const at = (label: string) => Effect.andThen(count, interleaving.point(label))
    return { point: at("machine"), at, next: () => 0, yields: () => yields }
  }
  if (options === undefined) {
    return { point: Effect.void, at: () => Effect.void, next: () => 0, yields: () => 0 }
  }
  const rand = mulberry32(options.seed)
  const p = options.yieldProbability ?? 0.5
  let yields = 0
  const point = Effect.suspend(() => {
    if (rand() < p) {
      yields++
      return Effect.yieldNow
    }
    return Effect.void
  })
  return { point, at: () => point, next: rand, yields: () => yields }
}

/**
 * `point` then `body()`: `Effect.flatMap(point, body)`, except that a point that
 * is `Effect.void` (no schedule, no explorer: it never yields) is skipped and
 * `body()` returned as it is — one Effect step less per service call on the hot
 * path (issue #16) with the same behaviour, since a void point is no yield
 * point at all. Under a seed or the explorer every point stays exactly where it
 * was. `body` is called per use, as `flatMap`'s continuation is.
 *
 * @category functions
 */
export const afterPoint = <A, E, R>(point: Effect.Effect<void>, body: () => Effect.Effect<A, E, R>): Effect.Effect<A, E, R> =>
  point === Effect.void ? body() : Effect.flatMap(point, body)

/**
 * `afterPoint` for a constant body: the body itself when `point` is `Effect.void`, else `point` then `body`.
 *
 * @category functions
 */
export const afterPointConst = <A, E, R>(point: Effect.Effect<void>, body: Effect.Effect<A, E, R>): Effect.Effect<A, E, R> =>
  point === Effect.void ? body : Effect.andThen(point, body)
