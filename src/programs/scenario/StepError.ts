/**
 * The errors a scenario step can end on besides the machine's and GPU SVM's
 * own (`SvmError`): a step naming a buffer no earlier step made, and a
 * barrier wait the runner ended because the threads deadlocked. Typed, so the
 * runner reports every step failure through one `_tag`/`message` pair with no
 * duck typing.
 *
 * @since 0.2.0
 */
import { Schema } from "effect"
import type { SvmError } from "../../domain/Errors.ts"

/**
 * A step names a buffer (`buf`) no earlier step of the scenario mapped (or one
 * already unmapped by name). The decoder rejects most of these up front; this
 * is the run-time guard.
 *
 * @category errors
 * @since 0.2.0
 */
export class UnknownBuffer extends Schema.TaggedError<UnknownBuffer>()("UnknownBuffer", {
  buf: Schema.String
}) {
  override get message(): string {
    return `unknown buffer "${this.buf}"`
  }
}

/**
 * The error a barrier wait ends with when the runner found every running
 * thread waiting at a barrier no other thread can reach (design.md §8,
 * violation `deadlock`).
 *
 * @category errors
 * @since 0.2.0
 */
export class BarrierDeadlock extends Schema.TaggedError<BarrierDeadlock>()("BarrierDeadlock", {
  barrier: Schema.String
}) {
  override get message(): string {
    return `deadlock: no other thread can reach barrier ${this.barrier}`
  }
}

/**
 * Every typed error a step can fail with: the domain's errno errors (including
 * `GpuFaultError` with its typed cause) and the runner's own.
 *
 * @category errors
 * @since 0.2.0
 */
export type StepError = SvmError | UnknownBuffer | BarrierDeadlock

/**
 * The tags `expect-error` can match: a step error's `_tag`, or the `_tag` of a
 * `GpuFaultError`'s last cause.
 *
 * @category errors
 * @since 0.2.0
 */
export const tagsOf = (e: StepError): ReadonlyArray<string> =>
  e._tag === "GpuFaultError" && e.causeTag !== undefined ? [e._tag, e.causeTag] : [e._tag]
