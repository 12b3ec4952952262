/**
 * One item of `gpusvm simulate` on the simulated machine, as the main thread
 * runs it and as a worker of `--workers N` runs it (`igtWorker.ts`): the same
 * result object either way, so `--json` prints the same lines whatever N.
 *
 * - `Igt`: an IGT subtest by name (issue #17): built here (`Generate.ts`
 *   `build`), then run; a vacuous subtest is a result with `skipped:
 *   "vacuous: …"` and `vacuous`, a skipped one a result with `skipped`.
 * - `Scenario`: a scenario already loaded (a file, a built-in).
 *
 * @since 0.3.0
 */
import { Effect } from "effect"
import type { KernelProfile } from "../domain/GpuSvmConfig.ts"
import type { Scenario } from "../domain/Scenario.ts"
import { type ScenarioResult, withEveryInvalidationEvent } from "../domain/ScenarioResult.ts"
import { build } from "../igt/Generate.ts"
import { subtest } from "../igt/Subtests.ts"
import * as Runner from "../programs/ScenarioRunner.ts"
import { simulated } from "./machines.ts"

/**
 * What `gpusvm simulate` runs: an IGT subtest by name, or a loaded scenario.
 *
 * @category models
 */
export type SimulateItem =
  | { readonly _tag: "Igt"; readonly name: string }
  | { readonly _tag: "Scenario"; readonly scenario: Scenario }

/**
 * The `--seed` / `--kernel` overrides of a `gpusvm simulate` run.
 *
 * @category models
 */
export interface SimulateOptions {
  readonly seed?: number
  readonly kernel?: KernelProfile
}

/**
 * The result of a scenario that was not run: ok (nothing failed), zero
 * metrics, `skipped: reason`.
 *
 * @category constructors
 */
export const skippedResult = (name: string, reason: string): ScenarioResult => ({
  ...withEveryInvalidationEvent(Runner.incompleteResult(name, [], [], 0)),
  ok: true,
  skipped: reason
})

/**
 * The result of an item that could not be run to its end (its worker
 * crashed, or stopped answering): failed, with the reason as a whole-run
 * failure.
 *
 * @category constructors
 */
export const lostResult = (name: string, reason: string): ScenarioResult =>
  withEveryInvalidationEvent(Runner.incompleteResult(name, [], [{ step: "<scenario>", detail: reason }], 0))

/**
 * The scenario name of an item (`igt-<subtest>` for an IGT subtest, as the
 * generator names it).
 *
 * @category functions
 */
export const itemName = (item: SimulateItem): string => (item._tag === "Igt" ? `igt-${item.name}` : item.scenario.name)

/**
 * Runs one item on the simulated machine. An unknown subtest name is a
 * defect (the main thread expands names from the table).
 *
 * @category running
 */
export const runItem = (item: SimulateItem, options: SimulateOptions): Effect.Effect<ScenarioResult> =>
  Effect.suspend(() => {
    let scenario: Scenario
    if (item._tag === "Igt") {
      const t = subtest(item.name)
      if (t === undefined) return Effect.die(new Error(`no IGT subtest is named "${item.name}"`))
      const b = build(t)
      if (b.kind === "vacuous") return Effect.succeed({ ...skippedResult(`igt-${t.name}`, `vacuous: ${b.reason}`), vacuous: b.reason })
      if (b.kind === "skipped") return Effect.succeed(skippedResult(`igt-${t.name}`, b.reason))
      scenario = b.scenario
    } else scenario = item.scenario
    return Effect.map(
      Runner.run(scenario, simulated, {
        ...(options.seed === undefined ? {} : { seed: options.seed }),
        ...(options.kernel === undefined ? {} : { kernel: options.kernel })
      }),
      withEveryInvalidationEvent
    )
  })
