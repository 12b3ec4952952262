/**
 * The control steps of a scenario (`scenarios.md`): the expected live GPU SVM
 * ranges, barriers between threads, and the process exit, one Schema per op.
 * (`expect-error`, which nests the other steps, is defined with the step union
 * in `../Step.ts`.)
 *
 * @since 0.1.0
 */
import { Schema } from "effect"
import { formatHex, NonNegativeIntLike } from "../Numbers.ts"
import { NonEmpty } from "./Fields.ts"

const RangePair = Schema.Tuple([NonNegativeIntLike, NonNegativeIntLike]).check(
  Schema.makeFilter(([start, end]: readonly [number, number]) =>
    end > start || { path: [1], issue: `expected an end above the start ${formatHex(start)}, got ${formatHex(end)}` }
  )
)

/**
 * `expect-ranges`: the live GPU SVM ranges, `[start, end)` absolute addresses.
 *
 * @category schemas
 * @since 0.1.0
 */
export const ExpectRangesStep = Schema.Struct({
  op: Schema.Literal("expect-ranges"),
  ranges: Schema.Array(RangePair)
})

/**
 * `barrier`: threads wait for each other at the named barrier.
 *
 * @category schemas
 * @since 0.1.0
 */
export const BarrierStep = Schema.Struct({ op: Schema.Literal("barrier"), name: NonEmpty("barrier name") })

/**
 * `exit`: the process exits; everything must be torn down.
 *
 * @category schemas
 * @since 0.1.0
 */
export const ExitStep = Schema.Struct({ op: Schema.Literal("exit") })

/**
 * The control step Schemas, in the order of `scenarios.md`.
 *
 * @category schemas
 * @since 0.1.0
 */
export const controlSteps = [ExpectRangesStep, BarrierStep, ExitStep] as const
