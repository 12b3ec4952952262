/**
 * Scenarios as explorer targets: a run is `ScenarioRunner.run` under the
 * controlled scheduler; a run violates when its result is not ok (an unmet
 * expectation or a broken invariant), or when the scheduler ends it (deadlock,
 * livelock, uncontrolled). The terminal state is the result without its
 * duration.
 *
 * Also: exact replay of one schedule as a scenario result (`gpusvm simulate
 * FILE --schedule S`), and shrinking of the scenario's steps (delta debugging)
 * while a failing schedule still fails.
 *
 * @since 0.2.0
 */
import { Effect, Exit, Result } from "effect"
import { decodeScenario, type Scenario, type Step } from "../domain/Scenario.ts"
import type { ResultViolation, ScenarioResult } from "../domain/ScenarioResult.ts"
import * as ScheduleString from "../domain/ScheduleString.ts"
import { asActor } from "../services/Interleaving.ts"
import * as Runner from "../programs/ScenarioRunner.ts"
import { describeEnd, type RunRecord } from "./Controller.ts"
import { type CheckOptions, type CheckResult, type InvalidExploreOptions, check, runTarget, shrinkRun, type Target, type Verdict, verdictOf, type Violation, violationOf } from "./Explore.ts"
import { Replay } from "./Strategies.ts"

/** The kind of a failed scenario result: its first violation's invariant, else `expectation`. */
const kindOf = (r: ScenarioResult): string => r.violations[0]?.invariant ?? "expectation"

const detailOf = (r: ScenarioResult): string =>
  r.violations[0] !== undefined
    ? r.violations[0].detail
    : r.failures[0] !== undefined
    ? `${r.failures[0].step}: ${r.failures[0].detail}`
    : "failed"

/**
 * The explorer target of a scenario on the machines `factory` builds.
 *
 * @since 0.2.0
 * @category constructors
 */
export const target = (scenario: Scenario, factory: Runner.StackFactory, options: Runner.RunOptions = {}): Target<ScenarioResult> => ({
  program: asActor(Runner.run(scenario, factory, options), "main"),
  judge: (exit: Exit.Exit<ScenarioResult, unknown>): Verdict => {
    if (Exit.isFailure(exit)) return { violation: { kind: "runner", detail: String(exit.cause) }, fingerprint: "runner" }
    const r = exit.value
    const { durationMs: _, ...state } = r
    const fingerprint = JSON.stringify(state)
    return r.ok ? { fingerprint } : { violation: { kind: kindOf(r), detail: detailOf(r) }, fingerprint }
  }
})

/** A scenario result standing for a run the scheduler ended (deadlock, livelock, …). */
const endedResult = (scenario: Scenario, rec: RunRecord, kind: string): ScenarioResult =>
  Runner.incompleteResult(scenario.name, [{ invariant: kind, detail: describeEnd(rec.end) } satisfies ResultViolation], [], rec.virtualMs)

/**
 * Runs `scenario` once along the schedule string `schedule` (strict replay)
 * and returns its result, exactly as the explorer's run that printed the
 * string produced it; a run the scheduler ended is a result whose violation
 * names how (`deadlock`, `livelock`, `uncontrolled`, `diverged`).
 *
 * @since 0.2.0
 * @category running
 */
export const replay = (
  scenario: Scenario,
  factory: Runner.StackFactory,
  schedule: string,
  options: Runner.RunOptions = {}
): Effect.Effect<{ readonly result: ScenarioResult; readonly record: RunRecord }, ScheduleString.InvalidSchedule> =>
  Effect.suspend(() => {
    const decoded = ScheduleString.decode(schedule)
    if (Result.isFailure(decoded)) return Effect.fail(decoded.failure)
    const t = target(scenario, factory, options)
    return Effect.promise(async () => {
      const record = await runTarget(t, new Replay(decoded.success), undefined)
      if (record.end._tag === "Done" && Exit.isSuccess(record.end.exit)) return { result: record.end.exit.value as ScenarioResult, record }
      const v = verdictOf(t, record)
      return { result: endedResult(scenario, record, v?.violation?.kind ?? "runner"), record }
    })
  })

/**
 * The scenario with one step removed (thread `t`, step `i`; a thread left
 * empty is dropped), if it is still a valid scenario (every buffer it uses
 * still created, barriers still shared): decoded again, as a file would be.
 */
const without = (s: Scenario, t: number, i: number): Scenario | undefined => {
  const threads = s.threads.map((th, k) => (k === t ? { ...th, steps: th.steps.filter((_: Step, j: number) => j !== i) } : th))
  const exit = decodeScenario({ ...s, threads: threads.filter((th) => th.steps.length > 0) })
  return Exit.isSuccess(exit) ? exit.value : undefined
}

/**
 * What a failure must keep while a scenario shrinks: its kind and its detail
 * with step paths and addresses taken out. An unmet expectation keeps its
 * numbers ("byte at offset 16384 is 1, expected 17" must not become "… is 0 …"
 * or "unknown buffer"); an invariant violation drops them too (frame numbers
 * and counts move when steps go).
 */
const signature = (kind: string, detail: string): string => {
  const noPaths = detail.replace(/threads\[\d+\]\.steps\[\d+\](\.step)?|steps\[\d+\](\[\d+\])?/g, "").replace(/0x[0-9a-f]+/g, "")
  return `${kind}|${kind === "expectation" ? noPaths : noPaths.replace(/\d+/g, "")}`
}

/**
 * Delta-debugs a failing scenario: removes one step at a time (last first) and
 * keeps the removal when the result is still a valid scenario and the shrunk
 * schedule, replayed leniently, still fails the same way (same kind, same
 * detail but for paths and numbers); repeats to a fixpoint (bounded by
 * `attempts` runs).
 * Returns the smallest scenario found and its failing run.
 *
 * @since 0.2.0
 * @category shrinking
 */
export const shrinkSteps = async (
  scenario: Scenario,
  factory: Runner.StackFactory,
  choices: ReadonlyArray<number>,
  found: { readonly kind: string; readonly detail: string },
  options: Runner.RunOptions = {},
  attempts = 300
): Promise<{ readonly scenario: Scenario; readonly record: RunRecord } | undefined> => {
  const kind = found.kind
  const want = signature(found.kind, found.detail)
  let best: { scenario: Scenario; record: RunRecord } | undefined
  let current = scenario
  let currentChoices = choices
  let tries = 0
  let changed = true
  while (changed && tries < attempts) {
    changed = false
    outer: for (let t = current.threads.length - 1; t >= 0; t--) {
      for (let i = current.threads[t]!.steps.length - 1; i >= 0; i--) {
        if (++tries > attempts) break outer
        const candidate = without(current, t, i)
        if (candidate === undefined || candidate.threads.length === 0) continue
        const tg = target(candidate, factory, options)
        const rec = await runTarget(tg, new Replay(currentChoices, true), undefined)
        const got = verdictOf(tg, rec)?.violation
        if (got === undefined || signature(got.kind, got.detail) !== want) continue
        const shrunk = await shrinkRun(tg, rec, kind, undefined, 50)
        current = candidate
        currentChoices = shrunk.choices
        best = { scenario: candidate, record: shrunk }
        changed = true
        break outer
      }
    }
  }
  return best
}

/** The result of exploring a scenario: the check, and the shrunk scenario if a violation was found. @since 0.2.0 @category models */
export interface ScenarioCheck {
  readonly check: CheckResult
  /** The failing scenario after step shrinking (the input itself when nothing could be removed). */
  readonly minimal: Scenario | undefined
}

/** Options of a scenario exploration: `Explore.check`'s, plus step shrinking (default on). @since 0.2.0 @category models */
export type ScenarioCheckOptions = CheckOptions & { readonly shrinkSteps?: boolean }

/**
 * Shrinks a failing run of `scenario` (its choices and the violation as
 * found): first to the fewest preemptions (`Explore.shrinkRun`), then the
 * scenario's steps (`shrinkSteps`). The violation returned carries a schedule
 * that replays on the minimal scenario, and `found` as it was.
 *
 * @since 0.2.0
 * @category shrinking
 */
export const shrink = (
  scenario: Scenario,
  factory: Runner.StackFactory,
  choices: ReadonlyArray<number>,
  found: Violation,
  options: ScenarioCheckOptions = {},
  runOptions: Runner.RunOptions = {}
): Effect.Effect<{ readonly violation: Violation; readonly minimal: Scenario }> =>
  Effect.promise(async () => {
    const tg = target(scenario, factory, runOptions)
    const first = await runTarget(tg, new Replay(choices), options.maxSteps)
    let rec = options.shrink === false ? first : await shrinkRun(tg, first, found.kind, options.maxSteps)
    let minimal = scenario
    if (options.shrinkSteps !== false) {
      const smaller = await shrinkSteps(scenario, factory, rec.choices, found, runOptions)
      if (smaller !== undefined) {
        minimal = smaller.scenario
        rec = smaller.record
      }
    }
    const v = verdictOf(target(minimal, factory, runOptions), rec)?.violation ?? found
    return { violation: violationOf(rec, v, found.found), minimal }
  })

/**
 * Explores a scenario: `Explore.check` over its schedules, then (on a
 * violation) {@link shrink}s it; the violation reported is that of the
 * minimal scenario, with a schedule string that replays on it.
 *
 * @since 0.2.0
 * @category checking
 */
export const explore = (
  scenario: Scenario,
  factory: Runner.StackFactory,
  options: ScenarioCheckOptions = {},
  runOptions: Runner.RunOptions = {}
): Effect.Effect<ScenarioCheck, ScheduleString.InvalidSchedule | InvalidExploreOptions> =>
  Effect.gen(function*() {
    const replaying = (options.strategy ?? "dfs") === "replay"
    const result = yield* check(target(scenario, factory, runOptions), { ...options, shrink: false })
    const v = result.violation
    if (v === undefined) return { check: result, minimal: undefined }
    if (replaying || (options.shrink === false && options.shrinkSteps === false)) return { check: result, minimal: scenario }
    const decoded = ScheduleString.decode(v.schedule)
    if (Result.isFailure(decoded)) return { check: result, minimal: scenario }
    const shrunk = yield* shrink(scenario, factory, decoded.success, v, options, runOptions)
    return { check: { ...result, violation: shrunk.violation }, minimal: shrunk.minimal }
  })
