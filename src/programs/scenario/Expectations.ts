/**
 * The expectation steps of a scenario (scenarios.md): `expect-ranges` compares
 * the live GPU SVM ranges with a list, `expect-error` runs a nested step and
 * requires it to fail with a typed error whose `_tag` (or whose
 * `GpuFaultError` cause's `_tag`) is the expected one. An unmet expectation is
 * a failure of the run, never an error of the step.
 *
 * @since 0.2.0
 */
import { Cause, Effect, Exit } from "effect"
import { hex } from "../../domain/Address.ts"
import type { ExpectErrorStep, ExpectRangesStep, NestedStep } from "../../domain/Scenario.ts"
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
