/**
 * The device-exclusive step of a scenario (scenarios.md "Steps",
 * kernel-semantics §11.17): `make-exclusive`, one call of the driver's
 * `makeExclusive` over the buffer window (`make_device_exclusive` per page
 * after get_pages, the pages bound for GPU atomics), as the HMM selftests'
 * `HMM_DMIRROR_EXCLUSIVE` does. On the native machine the call fails with
 * `InvalidArgument` (its `Hmm` has no `make_device_exclusive`); the CLI
 * reports such scenarios skipped there.
 *
 * @since 0.3.0
 */
import { Effect } from "effect"
import type { GpuFaultError } from "../../domain/Errors.ts"
import type { StepOf } from "../../domain/Scenario.ts"
import { type Interpreter, windowOf } from "./RunEnv.ts"
import { UnknownBuffer } from "./StepError.ts"

/**
 * The steps this family runs.
 *
 * @category models
 * @since 0.3.0
 */
export type ExclusiveStep = StepOf<"make-exclusive">

/**
 * The errors of this family.
 *
 * @category errors
 * @since 0.3.0
 */
export type ExclusiveStepError = GpuFaultError | UnknownBuffer

/**
 * Runs `make-exclusive`. Errors: the driver's `GpuFaultError` (its cause the
 * `make_device_exclusive` or fault-path error), or `UnknownBuffer`.
 *
 * @category interpreters
 * @since 0.3.0
 */
export const run: Interpreter<ExclusiveStep, ExclusiveStepError> = (env, step) => {
  const w = windowOf(env, step.buf, step.offset, step.length)
  if (w instanceof UnknownBuffer) return Effect.fail(w)
  return env.driver.makeExclusive(w.addr, w.addr + w.length)
}
