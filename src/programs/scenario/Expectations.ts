/**
 * The expectation steps of a scenario (scenarios.md): `expect-ranges` compares
 * the live GPU SVM ranges with a list, `expect-metrics` bounds the run's
 * counters so far (kernel-semantics §11.17 part 7), `expect-error` runs a nested step and
 * requires it to fail with a typed error whose `_tag` (or whose
 * `GpuFaultError` cause's `_tag`) is the expected one. An unmet expectation is
 * a failure of the run, never an error of the step.
 *
 * @since 0.2.0
 */
import { Cause, Effect, Exit } from "effect"
import { hex } from "../../domain/Address.ts"
import type { ExpectErrorStep, ExpectRangesStep, NestedStep } from "../../domain/Scenario.ts"
import type { ResultMetrics } from "../../domain/ScenarioResult.ts"
import type { ExpectMetricsStep } from "../../domain/scenario/Step.ts"
import { readMetrics } from "./Invariants.ts"
import { fail, type RunEnv } from "./RunEnv.ts"
import { type StepError, tagsOf } from "./StepError.ts"

const show = (xs: ReadonlyArray<readonly [number, number]>) => xs.map(([s, e]) => `[${hex(s)}, ${hex(e)})`).join(" ")

/**
 * `expect-ranges`: the live ranges, in address order, must be exactly
 * `step.ranges`.
 *
 * @category interpreters
 * @since 0.2.0
 */
export const expectRanges = (env: RunEnv, step: ExpectRangesStep, where: string): Effect.Effect<void> =>
  Effect.map(env.svm.ranges(), (live) => {
    const got = live.map((r) => [r.start, r.end] as const)
    const want = step.ranges
    const same = got.length === want.length && got.every(([s, e], i) => s === want[i]![0] && e === want[i]![1])
    if (!same) fail(env, where, `live ranges ${show(got) || "(none)"}, expected ${show(want) || "(none)"}`)
  })

/** One bound of `expect-metrics`. */
type Bound = { readonly eq?: number; readonly min?: number; readonly max?: number }

/** What is wrong with `value` under `b`, if anything. */
const unmet = (name: string, value: number, b: Bound): string | undefined => {
  if (b.eq !== undefined && value !== b.eq) return `${name} is ${value}, expected ${b.eq}`
  if (b.min !== undefined && value < b.min) return `${name} is ${value}, expected at least ${b.min}`
  if (b.max !== undefined && value > b.max) return `${name} is ${value}, expected at most ${b.max}`
  return undefined
}

/** The scalar counters of `expect-metrics` (the keyed ones are `faultRetries` and `invalidations`). */
const SCALARS = [
  "faults", "rangesCreated", "rangesRemoved", "notifiersCreated", "notifiersRemoved", "bytesToVram", "bytesToRam",
  "evictions", "gcRuns", "dmaMappingsLive", "deviceBytesLive"
] as const satisfies ReadonlyArray<keyof ResultMetrics & keyof ExpectMetricsStep>

/**
 * The unmet bounds of `step` against `m`, one line each (empty when all hold).
 *
 * @category helpers
 * @since 0.3.0
 */
export const unmetMetrics = (m: ResultMetrics, step: ExpectMetricsStep): ReadonlyArray<string> => {
  const out: Array<string> = []
  const check = (name: string, value: number, b: Bound | undefined) => {
    if (b === undefined) return
    const bad = unmet(name, value, b)
    if (bad !== undefined) out.push(bad)
  }
  for (const k of SCALARS) check(k, m[k], step[k])
  check("madviseInvalidations", m.madviseInvalidations ?? 0, step.madviseInvalidations)
  for (const [k, b] of Object.entries(step.faultRetries ?? {})) {
    check(`faultRetries.${k}`, m.faultRetries[k as keyof ResultMetrics["faultRetries"]], b)
  }
  for (const [k, b] of Object.entries(step.invalidations ?? {})) check(`invalidations.${k}`, m.invalidations[k] ?? 0, b)
  return out
}

/**
 * `expect-metrics`: reads the counters the result's `metrics` reports, now
 * (`Invariants.readMetrics`), and records one failure per unmet bound.
 *
 * @category interpreters
 * @since 0.3.0
 */
export const expectMetrics = (env: RunEnv, step: ExpectMetricsStep, where: string): Effect.Effect<void> =>
  Effect.map(readMetrics(env), (m) => {
    const bad = unmetMetrics(m, step)
    if (bad.length > 0) fail(env, where, bad.join("; "))
  })

/**
 * What a step's failed exit was: its typed error, or the defect's first line.
 *
 * @category helpers
 * @since 0.2.0
 */
export const describeExit = (cause: Cause.Cause<StepError>): { readonly tags: ReadonlyArray<string>; readonly text: string } => {
  const error = Cause.findErrorOption(cause)
  if (error._tag === "Some") return { tags: tagsOf(error.value), text: error.value.message }
  return { tags: ["Defect"], text: Cause.pretty(cause).split("\n")[0] ?? "defect" }
}

/**
 * `expect-error`: runs the nested step with `exec` (the runner's dispatcher)
 * and records a failure unless it failed with `step.tag`.
 *
 * @category interpreters
 * @since 0.2.0
 */
export const expectError = (
  env: RunEnv,
  step: ExpectErrorStep,
  where: string,
  exec: (step: NestedStep, where: string) => Effect.Effect<void, StepError>
): Effect.Effect<void> => {
  const inner = step.step
  return Effect.map(Effect.exit(exec(inner, `${where}.step`)), (exit) => {
    if (Exit.isSuccess(exit)) {
      fail(env, where, `expected error ${step.tag}, but ${inner.op} succeeded`)
      return
    }
    const got = describeExit(exit.cause)
    if (!got.tags.includes(step.tag)) fail(env, where, `expected error ${step.tag}, got ${got.tags[0]}: ${got.text}`)
  })
}
