/**
 * The driver's own state, shared by its components (fault handler, garbage
 * collector, invalidation callback, prefetch): the driver SVM lock, the garbage
 * collector's queue, the windows the driver is migrating itself, counters and
 * options.
 *
 * @since 0.1.0
 */
import { Effect, Semaphore } from "effect"
import type { Range } from "../domain/Range.ts"
import { type DriverCounters, makeCounters } from "./Metrics.ts"

/** Driver options (all optional; Xe-like defaults). */
export interface DriverOptions {
  /** GPU VA window mirroring the CPU (`gpuva_start`, `gpuva_end`); default all of user space. */
  readonly gpuvaStart?: number
  readonly gpuvaEnd?: number
  /** Fault-loop rounds before giving up with `GpuFaultError` (default 8). */
  readonly maxRetries?: number
  /** `ctx.check_pages_threshold` for ranges created by faults (default 64 KiB, like Xe). */
  readonly checkPagesThreshold?: number
  /**
   * Base migration timeslice in ms (pages stay in device memory at least this long
   * before a CPU touch may pull them back); doubled per retry of a devmem-only
   * fault, starting from 1 ms when 0. Default 0: the simulator's tests and
   * scenarios want no wall-clock waits; set it to model Xe's anti-ping-pong delay.
   */
  readonly timesliceMs?: number
  /** Migration attempts of a devmem-only (atomic) fault (default 3, like Xe). */
  readonly migrateTries?: number
}

/** Resolved options. */
export interface ResolvedOptions {
  readonly gpuvaStart: number
  readonly gpuvaEnd: number
  readonly maxRetries: number
  readonly checkPagesThreshold: number
  readonly timesliceMs: number
  readonly migrateTries: number
}

/** Applies the defaults. */
export const resolve = (o: DriverOptions = {}): ResolvedOptions => ({
  gpuvaStart: o.gpuvaStart ?? 0,
  gpuvaEnd: o.gpuvaEnd ?? 2 ** 47,
  maxRetries: o.maxRetries ?? 8,
  checkPagesThreshold: o.checkPagesThreshold ?? 64 * 1024,
  timesliceMs: o.timesliceMs ?? 0,
  migrateTries: o.migrateTries ?? 3
})

/** A window the driver is migrating to device memory itself (its MIGRATE events are skipped). */
export interface OwnMigration {
  readonly start: number
  readonly end: number
}

/** The shared state. `gcQueue` and `ownMigrations` are plain arrays: single-threaded JS, mutated in `Effect.sync`. */
export interface DriverState {
  readonly options: ResolvedOptions
  /** The driver SVM lock (`driver_svm_lock`): serialises find_or_insert / remove (fault handler, GC, prefetch). */
  readonly svmLock: Semaphore.Semaphore
  /** Ranges queued by UNMAP invalidations for the garbage collector. */
  readonly gcQueue: Array<Range>
  /** Windows being migrated by the driver right now. */
  readonly ownMigrations: Array<OwnMigration>
  /** Counters. */
  readonly counters: DriverCounters
  /** Ids of ranges the driver has seen (to count creations; pruned by the collector). */
  readonly seen: Set<number>
  /** Device-private owner of the driver's own device memory (from the GpuSvm config). */
  readonly owner: string | undefined
}

/** A fresh driver state. */
export const make = (options: DriverOptions | undefined, owner: string | undefined): Effect.Effect<DriverState> =>
  Effect.map(Semaphore.make(1), (svmLock) => ({
    options: resolve(options),
    svmLock,
    gcQueue: [],
    ownMigrations: [],
    counters: makeCounters(),
    seen: new Set(),
    owner
  }))
