/**
 * The control steps of a scenario (`scenarios.md`): the expected live GPU SVM
 * ranges, barriers between threads, and the process exit, one Schema per op.
 * (`expect-error`, which nests the other steps, is defined with the step union
 * in `../Step.ts`.)
 *
 * @since 0.1.0
 */
import { Schema } from "effect"
import { MMU_EVENTS } from "../../MmuRange.ts"
import { formatHex, NonNegativeIntLike } from "../Numbers.ts"
import { NonEmpty, ProcessName, vmField } from "./Fields.ts"

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
  ranges: Schema.Array(RangePair),
  ...vmField
})

const optional = Schema.optionalKey

/**
 * A bound on one counter of `expect-metrics`: `eq`, `min` and/or `max` (at least one; all inclusive).
 *
 * @category schemas
 * @since 0.3.0
 */
export const MetricBound = Schema.Struct({
  eq: optional(NonNegativeIntLike),
  min: optional(NonNegativeIntLike),
  max: optional(NonNegativeIntLike)
}).check(Schema.makeFilter((b) => b.eq !== undefined || b.min !== undefined || b.max !== undefined || "expected at least one of eq, min, max"))

/** `invalidations` of `expect-metrics`: bounds by MMU notifier event name. */
const InvalidationBounds = Schema.Record(Schema.String, MetricBound).check(
  Schema.makeFilter((r: Readonly<Record<string, unknown>>) => {
    const bad = Object.keys(r).find((k) => !(MMU_EVENTS as ReadonlyArray<string>).includes(k))
    return bad === undefined || { path: [bad], issue: `expected an MMU notifier event (${MMU_EVENTS.join(", ")}), got "${bad}"` }
  })
)

/**
 * `expect-metrics`: bounds on the run's counters so far — the same counters, read the same way,
 * as the result's `metrics` (kernel-semantics §11.17 part 7). Each field is optional; an unmet
 * bound is a failure of the run.
 *
 * @category schemas
 * @since 0.3.0
 */
export const ExpectMetricsStep = Schema.Struct({
  op: Schema.Literal("expect-metrics"),
  faults: optional(MetricBound),
  faultRetries: optional(Schema.Struct({
    EAGAIN: optional(MetricBound),
    EBUSY: optional(MetricBound),
    EOPNOTSUPP: optional(MetricBound),
    EFAULT: optional(MetricBound),
    EPERM: optional(MetricBound)
  })),
  rangesCreated: optional(MetricBound),
  rangesRemoved: optional(MetricBound),
  notifiersCreated: optional(MetricBound),
  notifiersRemoved: optional(MetricBound),
  invalidations: optional(InvalidationBounds),
  bytesToVram: optional(MetricBound),
  bytesToRam: optional(MetricBound),
  evictions: optional(MetricBound),
  gcRuns: optional(MetricBound),
  dmaMappingsLive: optional(MetricBound),
  deviceBytesLive: optional(MetricBound),
  madviseInvalidations: optional(MetricBound),
  ...vmField
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
 * `fork`: `fork(2)` of the thread's process (kernel-semantics §11.17). `as`
 * names the child; the child runs the threads listed under that name in
 * `processes` (none listed: it exits at once), with a copy of the parent's
 * buffer names and its own GPU VMs (`vms` of its entry, default one). The
 * parent goes on at once; `wait` joins the child.
 *
 * @category schemas
 * @since 0.4.0
 */
export const ForkStep = Schema.Struct({ op: Schema.Literal("fork"), as: ProcessName })

/**
 * `wait`: waits until process `process` has finished its threads and exited
 * (`waitpid(2)`; any process of the scenario but the thread's own).
 *
 * @category schemas
 * @since 0.4.0
 */
export const WaitStep = Schema.Struct({ op: Schema.Literal("wait"), process: ProcessName })

/**
 * The control step Schemas, in the order of `scenarios.md`.
 *
 * @category schemas
 * @since 0.1.0
 */
export const controlSteps = [ExpectRangesStep, ExpectMetricsStep, BarrierStep, ExitStep, ForkStep, WaitStep] as const
