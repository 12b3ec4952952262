/**
 * Driver metrics: the counters design.md §7 lists (faults, retries by reason,
 * ranges created/removed, invalidations by event, bytes migrated each way,
 * evictions, GC runs, migrations, migration failures, TLB flushes), as
 * `effect/Metric` counters in one `Metric.MetricRegistry` per driver instance.
 *
 * The registry is the only store: `DriverApi.counters` (and so
 * `ScenarioResult.metrics`) reads its `DriverCounters` snapshot from it, so two
 * drivers in one process, or two scenario runs, never mix numbers (effect's
 * default `MetricRegistry` is a process-wide `Context.Reference` default; each
 * driver gets a fresh `Map` instead, or the one passed as
 * `DriverOptions.metricRegistry` to share it with an exporter such as
 * `effect/observability/OtlpMetrics`).
 *
 * Updates go through `Metric.updateUnsafe` with the driver's own context (one
 * registry lookup by a cached key, no Effect allocated), so a count costs a Map
 * lookup on the fault path.
 *
 * @since 0.1.0
 */
import { Context, Effect, Metric } from "effect"

/**
 * Retry reasons, by errno (scenarios.md `faultRetries`).
 *
 * @category models
 * @since 0.1.0
 */
export type RetryReason = "EAGAIN" | "EBUSY" | "EOPNOTSUPP" | "EFAULT" | "EPERM"

/**
 * Every retry reason, in `DriverCounters.faultRetries` order.
 *
 * @category constants
 * @since 0.1.0
 */
export const RETRY_REASONS: ReadonlyArray<RetryReason> = ["EAGAIN", "EBUSY", "EOPNOTSUPP", "EFAULT", "EPERM"]

/** Invalidation events always present in `DriverCounters.invalidations` (others appear once seen). */
const BASE_EVENTS = ["unmap", "clear", "migrate"] as const

/**
 * A snapshot of the counters of one driver instance, read from its registry
 * (`read`). Plain data: mutating it changes nothing.
 *
 * @category models
 * @since 0.1.0
 */
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
  /** Madvise calls that zapped GPU PTEs (a value changed where PTEs existed; `xe_vm_invalidate_madvise_range`). */
  madviseInvalidations: number
}

const counter = (name: string, description: string, attributes?: Metric.Metric.AttributeSet) =>
  Metric.counter(name, { description, incremental: true, ...(attributes === undefined ? {} : { attributes }) })

/**
 * `gpusvm_faults_total`: GPU page faults handled (`FaultHandler.handle` calls).
 *
 * @category metrics
 * @since 0.1.0
 */
export const faultsTotal = counter("gpusvm_faults_total", "GPU page faults handled")

/**
 * `gpusvm_fault_retries_total{reason}`: rounds of the fault loop retried, by
 * errno (one metric object per reason, so each keeps its series key cached).
 *
 * @category metrics
 * @since 0.1.0
 */
export const faultRetriesTotal: Readonly<Record<RetryReason, Metric.Counter<number>>> = Object.fromEntries(
  RETRY_REASONS.map((reason) => [reason, counter("gpusvm_fault_retries_total", "Fault-loop rounds retried, by errno", { reason })])
) as Record<RetryReason, Metric.Counter<number>>

/**
 * `gpusvm_ranges_created_total`: GPU SVM ranges the fault handler created.
 *
 * @category metrics
 * @since 0.1.0
 */
export const rangesCreatedTotal = counter("gpusvm_ranges_created_total", "GPU SVM ranges created by GPU faults")

/**
 * `gpusvm_ranges_removed_total`: ranges the garbage collector removed.
 *
 * @category metrics
 * @since 0.1.0
 */
export const rangesRemovedTotal = counter("gpusvm_ranges_removed_total", "GPU SVM ranges removed by the garbage collector")

const invalidationCounters = new Map<string, Metric.Counter<number>>()

/**
 * `gpusvm_invalidations_total{event}`: `ops.invalidate` callbacks, by MMU
 * notifier event. One metric object per event, made on first use.
 *
 * @category metrics
 * @since 0.1.0
 */
export const invalidationsTotal = (event: string): Metric.Counter<number> => {
  let m = invalidationCounters.get(event)
  if (m === undefined) {
    m = counter("gpusvm_invalidations_total", "Driver invalidation callbacks, by MMU notifier event", { event })
    invalidationCounters.set(event, m)
  }
  return m
}

/**
 * `gpusvm_bytes_migrated_total{direction="to_vram"}`: bytes of the windows the
 * driver migrated to device memory itself (`populateMm` that succeeded).
 * Migrations the driver did not start (a CPU touch's `migrate_to_ram`,
 * eviction under pressure) are counted by the pagemap (`DevicePagemap.traffic`).
 *
 * @category metrics
 * @since 0.1.0
 */
export const bytesToVramTotal = counter("gpusvm_bytes_migrated_total", "Bytes the driver migrated, by direction", { direction: "to_vram" })

/**
 * `gpusvm_bytes_migrated_total{direction="to_ram"}`: bytes of the ranges with
 * device pages the driver evicted to RAM itself (`rangeEvict` that succeeded:
 * garbage collection of a partially unmapped range, prefetch to system).
 *
 * @category metrics
 * @since 0.1.0
 */
export const bytesToRamTotal = counter("gpusvm_bytes_migrated_total", "Bytes the driver migrated, by direction", { direction: "to_ram" })

/**
 * `gpusvm_evictions_total`: partially unmapped ranges the collector evicted.
 *
 * @category metrics
 * @since 0.1.0
 */
export const evictionsTotal = counter("gpusvm_evictions_total", "Partially unmapped ranges evicted by the garbage collector")

/**
 * `gpusvm_gc_runs_total`: garbage-collector batches.
 *
 * @category metrics
 * @since 0.1.0
 */
export const gcRunsTotal = counter("gpusvm_gc_runs_total", "Garbage-collector runs")

/**
 * `gpusvm_migrations_total`: successful driver migrations to device memory.
 *
 * @category metrics
 * @since 0.1.0
 */
export const migrationsTotal = counter("gpusvm_migrations_total", "Driver migrations to device memory")

/**
 * `gpusvm_migration_failures_total`: failed driver migrations of the fault handler.
 *
 * @category metrics
 * @since 0.1.0
 */
export const migrationFailuresTotal = counter("gpusvm_migration_failures_total", "Failed driver migrations to device memory")

/**
 * `gpusvm_tlb_flushes_total`: GPU zap + TLB flushes the driver asked for
 * (`Gpu.invalidate` calls from the invalidation callback and from unbinds;
 * kernel-semantics §11.12: none when no range has PTEs). Not part of
 * `DriverCounters` (the GPU's own `stats.tlbFlushes` is the device's view).
 *
 * @category metrics
 * @since 0.1.0
 */
export const tlbFlushesTotal = counter("gpusvm_tlb_flushes_total", "GPU zap + TLB flushes requested by the driver")

/**
 * `gpusvm_madvise_invalidations_total`: madvise calls (one attribute kind each)
 * that zapped GPU PTEs and flushed the TLB (`xe_vm_invalidate_madvise_range`
 * with a non-empty tile mask): a value changed over ranges that had PTEs. A
 * madvise that sets the value a piece already has skips it
 * (`skip_invalidation`), so it does not count (IGT
 * `madvise-no-range-invalidate-same-attr`).
 *
 * @category metrics
 * @since 0.3.0
 */
export const madviseInvalidationsTotal = counter("gpusvm_madvise_invalidations_total", "Madvise calls that zapped GPU PTEs")

/**
 * The metric store of one driver instance: its registry and the context the
 * driver's programs update it through.
 *
 * @category models
 * @since 0.1.0
 */
export interface DriverMetrics {
  /** The registry (a `Metric.MetricRegistry`); `Metric.snapshotUnsafe(context)` lists it. */
  readonly registry: Metric.MetricRegistry
  /** A context holding only `registry`: what `Metric.updateUnsafe` / `valueUnsafe` read. */
  readonly context: Context.Context<never>
}

const ALL: ReadonlyArray<Metric.Counter<number>> = [
  faultsTotal,
  ...RETRY_REASONS.map((r) => faultRetriesTotal[r]),
  rangesCreatedTotal,
  rangesRemovedTotal,
  ...BASE_EVENTS.map(invalidationsTotal),
  bytesToVramTotal,
  bytesToRamTotal,
  evictionsTotal,
  gcRunsTotal,
  migrationsTotal,
  migrationFailuresTotal,
  tlbFlushesTotal,
  madviseInvalidationsTotal
]

/**
 * A driver's metric store over `registry` (default: a fresh one, so the
 * driver's numbers are its own). Every series of design.md §7 is registered at
 * zero at once, so an export lists it even before it moves.
 *
 * @category constructors
 * @since 0.1.0
 */
export const make = (registry: Metric.MetricRegistry = new Map()): DriverMetrics => {
  const context = Context.make(Metric.MetricRegistry, registry) as Context.Context<never>
  for (const m of ALL) m.valueUnsafe(context)
  return { registry, context }
}

/**
 * Adds `n` (default 1) to `metric` in the driver's registry. Synchronous: call
 * it inside `Effect.sync` / a generator body.
 *
 * @category mutations
 * @since 0.1.0
 */
export const add = (m: DriverMetrics, metric: Metric.Counter<number>, n = 1): void => {
  metric.updateUnsafe(n, m.context)
}

/**
 * Counts a GPU fault, as an Effect (the fault handler runs it before taking
 * the driver SVM lock).
 *
 * @category mutations
 * @since 0.1.0
 */
export const countFault = (m: DriverMetrics): Effect.Effect<void> => Effect.sync(() => add(m, faultsTotal))

/**
 * Counts a retry of the fault loop (kernel-semantics §11.5: every retry is
 * bounded by `maxRetries`).
 *
 * @category mutations
 * @since 0.1.0
 */
export const countRetry = (m: DriverMetrics, reason: RetryReason): void => add(m, faultRetriesTotal[reason])

/**
 * Counts an invalidation seen by the driver callback, by event.
 *
 * @category mutations
 * @since 0.1.0
 */
export const countInvalidation = (m: DriverMetrics, event: string): void => add(m, invalidationsTotal(event))

const count = (m: DriverMetrics, metric: Metric.Counter<number>): number => metric.valueUnsafe(m.context).count

/**
 * The GPU fault retries counted so far, all reasons: the sum of `read(m).faultRetries`, read
 * from the five counters alone (no snapshot of the registry).
 *
 * @category getters
 * @since 0.5.0
 */
export const retries = (m: DriverMetrics): number => {
  let n = 0
  for (const r of RETRY_REASONS) n += count(m, faultRetriesTotal[r])
  return n
}

/**
 * Reads the `DriverCounters` snapshot from the registry: every invalidation
 * event the registry holds a series for (unmap, clear, migrate always).
 *
 * @category getters
 * @since 0.1.0
 */
export const read = (m: DriverMetrics): DriverCounters => {
  const faultRetries = {} as Record<RetryReason, number>
  for (const r of RETRY_REASONS) faultRetries[r] = count(m, faultRetriesTotal[r])
  const invalidations: Record<string, number> = {}
  for (const e of BASE_EVENTS) invalidations[e] = 0
  for (const s of Metric.snapshotUnsafe(m.context)) {
    const event = s.id === "gpusvm_invalidations_total" ? s.attributes?.["event"] : undefined
    if (typeof event === "string") invalidations[event] = (s.state as Metric.CounterState<number>).count
  }
  return {
    faults: count(m, faultsTotal),
    faultRetries,
    rangesCreated: count(m, rangesCreatedTotal),
    rangesRemoved: count(m, rangesRemovedTotal),
    invalidations,
    bytesToVram: count(m, bytesToVramTotal),
    bytesToRam: count(m, bytesToRamTotal),
    evictions: count(m, evictionsTotal),
    gcRuns: count(m, gcRunsTotal),
    migrations: count(m, migrationsTotal),
    migrationFailures: count(m, migrationFailuresTotal),
    madviseInvalidations: count(m, madviseInvalidationsTotal)
  }
}
