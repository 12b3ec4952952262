/**
 * The work budget of one scenario run (design.md §8 invariant 5, bounded
 * work; issue #18): no input — including a `kernel: "6.17"` livelock or a file
 * of a million steps — may run unbounded. A run may execute at most `steps`
 * steps (over all threads), its driver may retry GPU faults at most
 * `faultRetries` times in total, and its threads may take at most `ms` of time
 * (wall-clock time; virtual time under the explorer). The first limit passed
 * ends the run: every thread stops before its next step (still passing its
 * later barriers, so none is left waiting) and the run reports violation
 * `budget` with the figure.
 *
 * @since 0.2.0
 */
import { Effect } from "effect"
import type { RunEnv } from "./RunEnv.ts"

/**
 * The limits of a run's work.
 *
 * @category models
 * @since 0.2.0
 */
export interface WorkBudget {
  /** Steps executed over all threads (default 1 000 000). */
  readonly steps: number
  /** GPU fault retries of the driver, all reasons (default 100 000). */
  readonly faultRetries: number
  /** Time the threads may take, ms (default 60 000; virtual time under the explorer). */
  readonly ms: number
}

/**
 * The default budget.
 *
 * @category constants
 * @since 0.2.0
 */
export const DEFAULT_BUDGET: WorkBudget = { steps: 1_000_000, faultRetries: 100_000, ms: 60_000 }

/**
 * The spending of one run against its budget.
 *
 * @category models
 * @since 0.2.0
 */
export interface Meter {
  /** Counts one step and checks every limit; true when the run must stop. */
  readonly spend: Effect.Effect<boolean>
  /** Whether a limit was passed (the run is stopping). */
  readonly exhausted: () => boolean
  /** Records that the threads did not finish within the time limit (the wall-clock guard fired). */
  readonly timedOut: Effect.Effect<void>
}

/**
 * A meter over `budget` for the run `env`, its time measured by `now` from
 * `started`. The `budget` violation is recorded once, naming the limit and the
 * figure reached.
 *
 * @category constructors
 * @since 0.2.0
 */
export const meter = (env: RunEnv, budget: WorkBudget, now: Effect.Effect<number>, started: number): Meter => {
  let steps = 0
  let over = false
  const exceed = (detail: string) => {
    if (!over) env.violations.push({ invariant: "budget", detail })
    over = true
    return true
  }
  return {
    spend: Effect.suspend(() => {
      if (over) return Effect.succeed(true)
      steps++
      if (steps > budget.steps) return Effect.succeed(exceed(`steps: ${steps} steps exceed the work budget of ${budget.steps}`))
      // every VM of every process counts (kernel-semantics §11.17: several GPU SVMs per run)
      let retries = 0
      for (const p of env.world.processes.values()) for (const vm of p.vms) retries += vm.driver.faultRetriesNow()
      if (retries > budget.faultRetries) return Effect.succeed(exceed(`fault retries: ${retries} exceed the work budget of ${budget.faultRetries}`))
      return Effect.map(now, (t) => {
        const ms = t - started
        return ms > budget.ms ? exceed(`time: ${Math.round(ms)} ms exceed the work budget of ${budget.ms} ms`) : false
      })
    }),
    exhausted: () => over,
    timedOut: Effect.sync(() => {
      exceed(`time: the threads did not finish within the work budget of ${budget.ms} ms`)
    })
  }
}
