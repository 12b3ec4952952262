/**
 * Driver metrics: the counters design.md §7 lists (faults, retries by reason,
 * ranges created/removed, notifiers, invalidations by event, bytes migrated
 * each way, evictions, GC runs, TLB flushes). Kept as plain counters in a
 * per-driver object (so a scenario run reports exactly its own numbers) and
 * mirrored into `effect/Metric` counters for export.
 *
 * @since 0.1.0
 */
import { Effect, Metric } from "effect"

/** Retry reasons, by errno (scenarios.md `faultRetries`). */
export type RetryReason = "EAGAIN" | "EBUSY" | "EOPNOTSUPP" | "EFAULT" | "EPERM"

/** The counters of one driver instance. Mutated only by the driver's programs. */
export interface DriverCounters {
  faults: number
  readonly faultRetries: Record<RetryReason, number>
  rangesCreated: number
  rangesRemoved: number
  readonly invalidations: Record<string, number>
  bytesToVram: number
  bytesToRam: number
  evictions: number
  gcRuns: number
  migrations: number
  migrationFailures: number
}

/** Fresh zeroed counters. */
export const makeCounters = (): DriverCounters => ({
  faults: 0,
  faultRetries: { EAGAIN: 0, EBUSY: 0, EOPNOTSUPP: 0, EFAULT: 0, EPERM: 0 },
  rangesCreated: 0,
  rangesRemoved: 0,
  invalidations: { unmap: 0, clear: 0, migrate: 0 },
  bytesToVram: 0,
  bytesToRam: 0,
  evictions: 0,
  gcRuns: 0,
  migrations: 0,
  migrationFailures: 0
})

/** `gpusvm_faults_total`. */
export const faultsTotal = Metric.counter("gpusvm_faults_total", { incremental: true })
/** `gpusvm_fault_retries_total`, with attribute `reason`. */
export const faultRetriesTotal = Metric.counter("gpusvm_fault_retries_total", { incremental: true })
/** `gpusvm_invalidations_total`, with attribute `event`. */
export const invalidationsTotal = Metric.counter("gpusvm_invalidations_total", { incremental: true })
/** `gpusvm_gc_runs_total`. */
export const gcRunsTotal = Metric.counter("gpusvm_gc_runs_total", { incremental: true })

/** Counts a fault. */
export const countFault = (c: DriverCounters): Effect.Effect<void> =>
  Effect.andThen(Effect.sync(() => {
    c.faults++
  }), Metric.update(faultsTotal, 1))

/** Counts a retry of the fault loop. */
export const countRetry = (c: DriverCounters, reason: RetryReason): Effect.Effect<void> =>
  Effect.andThen(Effect.sync(() => {
    c.faultRetries[reason]++
  }), Metric.update(Metric.withAttributes(faultRetriesTotal, { reason }), 1))

/** Counts an invalidation seen by the driver callback. */
export const countInvalidation = (c: DriverCounters, event: string): Effect.Effect<void> =>
  Effect.andThen(Effect.sync(() => {
    c.invalidations[event] = (c.invalidations[event] ?? 0) + 1
  }), Metric.update(Metric.withAttributes(invalidationsTotal, { event }), 1))
