/**
 * The driver's own state, shared by its components (fault handler, garbage
 * collector and its worker, invalidation callback, prefetch): the driver SVM
 * lock, the garbage collector's queue and signals, the windows the driver is
 * migrating itself, its metrics and options.
 *
 * @since 0.1.0
 */
import { VmBinds } from "../domain/VmBinds.ts"
import type { DeviceBo, DevicePagemapApi } from "../services/DevicePagemap.ts"
import { Interleaving, lockHooks } from "../services/Interleaving.ts"
import { Effect, Latch, type Metric, Semaphore } from "effect"
import * as MemAttrs from "../domain/MemAttrs.ts"
import type { Range } from "../domain/Range.ts"
import * as Metrics from "./Metrics.ts"

/**
 * Driver options (all optional; Xe-like defaults).
 *
 * @category models
 */
export interface DriverOptions {
  /** GPU VA window mirroring the CPU (`gpuva_start`, `gpuva_end`); default all of user space. */
  readonly gpuvaStart?: number
  readonly gpuvaEnd?: number
  /** Fault-loop rounds before giving up with `GpuFaultError` (default 8). */
  readonly maxRetries?: number
  /**
   * `ctx.check_pages_threshold` for ranges created by faults. Default as Xe
   * (kernel-semantics §11.8): 64 KiB when device memory is possible (the
   * migration policy's `devmemPossible`), else 0. An explicit value overrides both.
   */
  readonly checkPagesThreshold?: number
  /**
   * Base migration timeslice in ms (pages stay in device memory at least this long
   * before a CPU touch may pull them back); doubled per retry of a devmem-only
   * fault, starting from 1 ms when 0. Default 0: the simulator's tests and
   * scenarios want no wall-clock waits; set it to model Xe's anti-ping-pong delay.
   */
  readonly timesliceMs?: number
  /**
   * Migration attempts of a devmem-only (atomic) fault (default 3, like Xe; a
   * normal fault has 1). Every attempt counts, successful or not (§11.6).
   */
  readonly migrateTries?: number
  /**
   * Whether the GPU mirror is read-only where the CPU mapping is
   * (kernel-semantics §11.3). Default `false`, as Xe with a writable mirror VMA:
   * `ctx.read_only` is false for every fault, so any GPU fault — reads included —
   * in a CPU VMA without write permission fails with `GpuFaultError` whose cause
   * is `PermissionDenied` (EPERM from `find_or_insert`, §3.4).
   *
   * `true` (a named deviation): a GPU *read* fault in a CPU VMA without write
   * permission is faulted read-only (`ctx.read_only`) and mapped `to-device`, as
   * if the mirror were bound with `DRM_XE_VM_BIND_FLAG_READONLY` exactly over the
   * read-only CPU VMAs; a write or atomic fault there is `PermissionDenied`, as
   * Xe refuses a write in a read-only GPU VMA. Faults in writable CPU VMAs are as
   * with the default. (Xe's flag makes a whole mirror VMA read-only; a per-CPU-VMA
   * choice is what lets one mirror follow mprotect both ways.)
   */
  readonly readOnlyMirror?: boolean
  /**
   * What the fault handler does with a range whose VMA was split by mprotect
   * after the range was created (kernel-semantics §11.4): `find_or_insert` keeps
   * returning the range and `get_pages` keeps failing on the part it may not
   * fault.
   * - `"retry"` (default, as Xe): retry like any `EPERM`/`EFAULT`, bounded by
   *   `maxRetries`, then `GpuFaultError` with reason
   *   `livelock: range spans a VMA split by mprotect` — the model shows the
   *   kernel's livelock instead of hiding it.
   * - `"recreate"` (a named deviation): drop the range as the collector would
   *   (evict, unbind, remove) so the next round creates one inside the VMA as it
   *   is now.
   *
   * A munmap split is not this case: UNMAP marks the range unmapped and queues
   * it for the collector, which removes it.
   */
  readonly onSplitVma?: "retry" | "recreate"
  /**
   * How the GPU does atomics on pages in system memory (kernel-semantics §11.17):
   * - `"native"` (default, as Xe): the device's atomics reach system memory
   *   through any writable PTE; with the `xe` policy an atomic fault needs device
   *   memory anyway (`devmem_only`, Xe migrates to VRAM for device atomics and
   *   never calls `make_device_exclusive`).
   * - `"exclusive"` (a named option, as nouveau's SVM does): the device cannot
   *   do atomics to system memory over its bus. System-memory PTEs are bound
   *   without the atomic bit, so an atomic faults; an atomic fault is not
   *   devmem-only, and if its range stays in system memory the handler takes
   *   the faulting page with `make_device_exclusive` (after get_pages, owner =
   *   the driver, so the invalidation callback skips that EXCLUSIVE event) and
   *   binds it with the atomic bit. A CPU touch of the page revokes it
   *   (EXCLUSIVE with no owner): the callback zaps the GPU PTEs and the next
   *   atomic re-faults. Simulated machine only (native: `InvalidArgument`).
   */
  readonly systemAtomics?: "native" | "exclusive"
  /**
   * The `Metric.MetricRegistry` the driver counts into (design.md §7). Default:
   * a fresh registry per driver instance, so two drivers (or two scenario runs)
   * never mix numbers. Pass one to share it with a metrics exporter (provide the
   * same map as `Metric.MetricRegistry` to e.g. `OtlpMetrics.layer`).
   */
  readonly metricRegistry?: Metric.MetricRegistry
  /**
   * Xe's `has_device_atomics_on_smem` device flag: GPU atomics with the
   * madvise attribute `atomic: "device"` work on system memory, so they need
   * no migration (`xe_vma_need_vram_for_atomic`). Default `false`: every GPU
   * atomic on a discrete device needs VRAM, as before madvise. `global` and
   * `undefined` need VRAM either way; `cpu` is `EACCES`.
   */
  readonly deviceAtomicsOnSmem?: boolean
}

/**
 * Resolved options.
 *
 * @category models
 */
export interface ResolvedOptions {
  readonly gpuvaStart: number
  readonly gpuvaEnd: number
  readonly maxRetries: number
  /** An explicit threshold, or undefined for Xe's rule (§11.8, see `checkPagesThresholdFor`). */
  readonly checkPagesThreshold: number | undefined
  readonly timesliceMs: number
  readonly migrateTries: number
  readonly readOnlyMirror: boolean
  readonly onSplitVma: "retry" | "recreate"
  readonly deviceAtomicsOnSmem: boolean
  readonly systemAtomics: "native" | "exclusive"
}

/**
 * Applies the defaults.
 *
 * @category functions
 */
export const resolve = (o: DriverOptions = {}): ResolvedOptions => ({
  gpuvaStart: o.gpuvaStart ?? 0,
  gpuvaEnd: o.gpuvaEnd ?? 2 ** 47,
  maxRetries: o.maxRetries ?? 8,
  checkPagesThreshold: o.checkPagesThreshold,
  timesliceMs: o.timesliceMs ?? 0,
  migrateTries: o.migrateTries ?? 3,
  readOnlyMirror: o.readOnlyMirror ?? false,
  onSplitVma: o.onSplitVma ?? "retry",
  deviceAtomicsOnSmem: o.deviceAtomicsOnSmem ?? false,
  systemAtomics: o.systemAtomics ?? "native"
})

/**
 * The `ctx.check_pages_threshold` of a fault: the explicit option, else Xe's
 * `devmem_possible ? SZ_64K : 0` (kernel-semantics §11.8).
 *
 * @category functions
 */
export const checkPagesThresholdFor = (o: ResolvedOptions, devmemPossible: boolean): number =>
  o.checkPagesThreshold ?? (devmemPossible ? 64 * 1024 : 0)

/**
 * Name of the driver's garbage-collector actor (kernel-semantics §11.2): the
 * worker fiber `Driver.layer` forks in its scope, which the invalidation
 * callback wakes after every UNMAP (Xe's `garbage_collector.work` on its
 * workqueue). Schedule explorers and traces name that fiber by this constant.
 *
 * @category constants
 */
export const GC_ACTOR = "gc-worker"

/**
 * A window the driver is migrating to device memory itself (its MIGRATE events are skipped).
 *
 * @category models
 */
export interface OwnMigration {
  readonly start: number
  readonly end: number
}

/**
 * The driver's madvise attributes (`Attributes.ts`): the pieces of the GPU VA
 * window with their `xe_vma_mem_attr` (one map per driver instance: per VM), and
 * the device memory the driver may name (set once when `Driver.layer` builds).
 * Mutated only under the driver SVM lock (Xe's `vm->lock` held for writing).
 *
 * @category models
 * @since 0.3.0
 */
export interface AttrState {
  map: MemAttrs.AttrMap
  /** The machine's pagemaps (the first is the device's own VRAM, `"device"`); empty: an integrated device. */
  pagemaps: ReadonlyArray<DevicePagemapApi>
}

/**
 * The shared state. `gcQueue` and `ownMigrations` are plain arrays: single-threaded JS, mutated in `Effect.sync`.
 *
 * @category models
 */
export interface DriverState {
  readonly options: ResolvedOptions
  /** The driver SVM lock (`driver_svm_lock`): serialises find_or_insert / remove (fault handler, GC, prefetch). */
  readonly svmLock: Semaphore.Semaphore
  /**
   * `e` under the driver SVM lock. Under the explorer: a yield point before
   * taking it (`take svm lock`) and the wait recorded for deadlock reports
   * (`Interleaving.lockHooks`); otherwise `svmLock.withPermits(1)`.
   */
  readonly withSvmLock: <A, E, R>(e: Effect.Effect<A, E, R>) => Effect.Effect<A, E, R>
  /**
   * May a synchronous section that needs the driver SVM lock run now without taking it (issue #16, the
   * fault handler's fast path)? True when no fiber is inside `withSvmLock` and the explorer is not
   * installed (its yield point before the lock must be passed).
   */
  readonly svmLockFreeNow: () => boolean
  /** Ranges queued by UNMAP invalidations for the garbage collector. */
  readonly gcQueue: Array<Range>
  /**
   * Wakes the collector worker (§11.2): opened by the invalidation callback when
   * it queues a range (`queue_work`), closed by the worker before it takes a batch.
   */
  readonly gcKick: Latch.Latch
  /** Open while nothing is queued for the collector and no collection runs (`Driver.idle`). */
  readonly gcIdle: Latch.Latch
  /** Collections running now (0 or 1: they hold the driver SVM lock). */
  gcRunning: number
  /** Windows being migrated by the driver right now. */
  readonly ownMigrations: Array<OwnMigration>
  /** The driver's metrics (design.md §7): the only store of its counters. */
  readonly metrics: Metrics.DriverMetrics
  /** A fresh `DriverCounters` snapshot read from `metrics` (a getter; mutating it changes nothing). */
  readonly counters: Metrics.DriverCounters
  /** Ids of ranges the driver has seen (to count creations; pruned by the collector). */
  readonly seen: Set<number>
  /** Device-private owner of the driver's own device memory (from the GpuSvm config). */
  readonly owner: string | undefined
  /** The VM's BO bindings and mirror holes (kernel-semantics §11.17, `BufferObjects.ts`). */
  readonly vmBinds: VmBinds
  /** The VM's buffer objects by id (`BufferObjects.ts`). */
  readonly bos: Map<number, { readonly bo: DeviceBo; readonly pagemap: DevicePagemapApi }>
  /** The madvise attributes of the driver's GPU VA window (`Attributes.ts`). */
  readonly attrs: AttrState
}

/**
 * A fresh driver state.
 *
 * @category functions
 */
export const make = (options: DriverOptions | undefined, owner: string | undefined): Effect.Effect<DriverState> =>
  Effect.map(Interleaving, (il) => {
    const svmLock = Semaphore.makeUnsafe(1)
    const hooks = lockHooks(il, "svm lock")
    const take = hooks.slowPath === undefined ? svmLock.take(1) : il.blocking("svm lock", svmLock.take(1))
    // fibers inside the lock (svmLockFreeNow): counted with the permit held, under the mask that releases it
    let inside = 0
    const leave = Effect.suspend(() => {
      inside--
      return svmLock.release(1)
    })
    const locked = <A, E, R>(e: Effect.Effect<A, E, R>): Effect.Effect<A, E, R> =>
      Effect.uninterruptibleMask((restore) =>
        Effect.andThen(
          restore(take),
          Effect.suspend(() => {
            inside++
            return Effect.ensuring(restore(e), leave)
          })
        )
      )
    const before = hooks.before
    const metrics = Metrics.make(options?.metricRegistry)
    const resolved = resolve(options)
    return {
    options: resolved,
    svmLock,
    withSvmLock: before === undefined ? locked : <A, E, R>(e: Effect.Effect<A, E, R>) => Effect.andThen(before, locked(e)),
    svmLockFreeNow: before === undefined ? () => inside === 0 : () => false,
    gcQueue: [],
    gcKick: Latch.makeUnsafe(false),
    gcIdle: Latch.makeUnsafe(true),
    gcRunning: 0,
    ownMigrations: [],
    metrics,
    get counters() {
      return Metrics.read(metrics)
    },
    seen: new Set(),
    owner,
    vmBinds: new VmBinds(),
    bos: new Map(),
    attrs: { map: MemAttrs.make(resolved.gpuvaStart, resolved.gpuvaEnd), pagemaps: [] }
  }
  })

/**
 * Queues `range` for the collector and wakes the worker (Xe's
 * `xe_svm_garbage_collector_add_range` + `queue_work`). Synchronous: called
 * from the invalidation callback, under the notifier lock.
 *
 * @category functions
 */
export const queueForGc = (st: DriverState, range: Range): void => {
  st.gcQueue.push(range)
  st.gcIdle.closeUnsafe()
  st.gcKick.openUnsafe()
}
