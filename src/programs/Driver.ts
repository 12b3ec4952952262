/**
 * `Driver`: the driver components wired together over `GpuSvm` and the `Gpu`
 * (design.md §7): the invalidation callback is the GpuSvm's `ops.invalidate`,
 * the fault handler is registered with the GPU (so `gpu.access(...)` just
 * works), the garbage collector runs at the start of every fault and in its
 * own worker fiber (the GC actor, kernel-semantics §11.2), woken by the
 * invalidation callback after every UNMAP, and prefetch migrates ahead of use.
 * `Driver.layer(config, { policy, ...options })` provides `GpuSvm` and
 * `Driver` from `Mm | MmuNotifier | Hmm | Dma | Gpu` (and the machine's
 * `DevicePagemaps`, if any); it builds its own `MigrationPolicy` (default
 * `"xe"`). The whole stack over a machine in one call is `Driver.simulated` /
 * `Driver.native` (`src/stacks/Driver.ts`, the composition root).
 *
 * @since 0.1.0
 */
import { withNow } from "../domain/Now.ts"
import * as BufferObjects from "./BufferObjects.ts"
import { Context, Effect, type Fiber, Layer, Option } from "effect"
import type { GpuFaultError, InvalidArgument, InvalidConfig } from "../domain/Errors.ts"
import type { AttrRange } from "../domain/MemAttrs.ts"
import * as Config from "../domain/GpuSvmConfig.ts"
import { DevicePagemaps } from "../services/DevicePagemap.ts"
import type { Dma } from "../services/Dma.ts"
import { Gpu, type GpuPageFault } from "../services/Gpu.ts"
import { GpuSvm, type GpuSvmApi } from "../services/GpuSvm.ts"
import { Hmm } from "../services/Hmm.ts"
import { Mm } from "../services/Mm.ts"
import type { MmuNotifier } from "../services/MmuNotifier.ts"
import { asActor } from "../services/Interleaving.ts"
import * as Attributes from "./Attributes.ts"
import * as DriverState from "./DriverState.ts"
import { type DriverOptions, GC_ACTOR } from "./DriverState.ts"
import * as FaultHandler from "./FaultHandler.ts"
import * as GarbageCollector from "./GarbageCollector.ts"
import * as Invalidation from "./Invalidation.ts"
import * as Metrics from "./Metrics.ts"
import type { DriverCounters } from "./Metrics.ts"
import { layerOf, MigrationPolicy, type PolicyChoice } from "./MigrationPolicy.ts"
import * as Prefetch from "./Prefetch.ts"

/**
 * The driver's interface.
 *
 * @category models
 */
export interface DriverApi {
  /** Handles one GPU page fault (what the GPU calls on a missing PTE). */
  readonly handleFault: (fault: GpuPageFault) => Effect.Effect<void, GpuFaultError>
  /** Runs the garbage collector now, under the driver SVM lock (tests; the worker does it on its own). */
  readonly collectGarbage: Effect.Effect<void>
  /**
   * Completes once nothing is queued for the garbage collector and no
   * collection is running (§11.2): the way to wait for the worker. It never
   * collects itself (`collectGarbage` does).
   */
  readonly idle: Effect.Effect<void>
  /**
   * The collector worker fiber, the driver's GC actor (`GC_ACTOR`, §11.2):
   * forked in the layer's scope, interrupted when it closes.
   */
  readonly gcWorker: Fiber.Fiber<never>
  /**
   * The explicit device-exclusive request (kernel-semantics §11.17, `HMM_DMIRROR_EXCLUSIVE`): every page
   * of `[start, end)` taken with `make_device_exclusive` and bound for GPU atomics, whatever
   * `systemAtomics` says; see `FaultHandler.makeExclusive`.
   */
  readonly makeExclusive: (start: number, end: number) => Effect.Effect<void, GpuFaultError>
  /** Migrates and binds `[start, end)` ahead of use. */
  readonly prefetch: (start: number, end: number, o: Prefetch.PrefetchOptions) => Effect.Effect<void, GpuFaultError>
  /** A snapshot of the driver's counters. */
  readonly counters: Effect.Effect<DriverCounters>
  /**
   * The GPU fault retries so far, all reasons (the sum of `counters.faultRetries`), read at once
   * without a snapshot: the work budget checks it before every scenario step (issue #16: a
   * snapshot per step per VM was most of the time of many-process runs).
   */
  readonly faultRetriesNow: () => number
  /** The resolved options. */
  readonly options: DriverState.ResolvedOptions
  /** Buffer objects and GPU VM binds beside the CPU-address mirror (kernel-semantics §11.17, `BufferObjects.ts`). */
  readonly bo: BufferObjects.BufferObjectsApi
  /**
   * `DRM_IOCTL_XE_MADVISE` over `[start, end)`: sets the given attributes
   * (preferred location + migration policy, atomic, PAT; one ioctl per kind),
   * splitting attribute ranges as Xe splits VMAs and zapping GPU PTEs only
   * where a value changed (`Attributes.madvise`). Takes the driver SVM lock.
   * `InvalidArgument` for an unaligned, empty or out-of-window range, an
   * unknown pagemap or value, or no attribute.
   */
  readonly madvise: (start: number, end: number, attrs: Attributes.MadviseAttrs) => Effect.Effect<void, InvalidArgument>
  /**
   * `VM_QUERY_MEM_RANGE_ATTRS`: the attribute ranges overlapping `[start, end)`,
   * whole, in address order. `InvalidArgument` for an unaligned, empty or
   * out-of-window range.
   */
  readonly queryAttrs: (start: number, end: number) => Effect.Effect<ReadonlyArray<AttrRange>, InvalidArgument>
}

/**
 * Options of `Driver.layer`: the driver's own options and the migration
 * policy (a built-in name or a layer providing `MigrationPolicy`; default
 * `"xe"`, as Xe).
 *
 * @category options
 * @since 0.2.0
 */
export interface DriverLayerOptions<E = never, R = never> extends DriverOptions {
  /** The migration policy (default `"xe"`). */
  readonly policy?: PolicyChoice<E, R>
}

/**
 * The machine services `Driver.layer` needs: the kernel interfaces GPU SVM
 * uses and the GPU it registers its fault handler with.
 *
 * @category models
 * @since 0.2.0
 */
export type DriverRequirements = Mm | MmuNotifier | Hmm | Dma | Gpu

/**
 * The driver service.
 *
 * @category services
 * @since 0.1.0
 */
export class Driver extends Context.Service<Driver, DriverApi>()("gpusvm/Driver") {
  /**
   * Builds GpuSvm (with the driver's invalidation callback), the migration
   * policy and the driver, registers the fault handler with the GPU and forks
   * the collector worker in the layer's scope (interrupted when it closes). The
   * `GpuSvm` provided has a `fini` that takes the driver SVM lock first, as Xe
   * tears down under the VM lock after flushing the collector, so it never
   * races a collection. The config is decoded once, here.
   * Errors: `InvalidConfig` for a bad config field or an unknown key; whatever
   * a user's policy layer fails with.
   */
  static readonly layer = <E = never, R = never>(
    config: Config.GpuSvmConfigInput,
    options: DriverLayerOptions<E, R> = {}
  ): Layer.Layer<GpuSvm | Driver, InvalidConfig | E, DriverRequirements | R> => {
    const { policy = "xe", ...driverOptions } = options
    return Layer.unwrap(Effect.gen(function*() {
      const decoded = yield* Config.decode(config)
      const gpu = yield* Gpu
      const st = yield* DriverState.make(driverOptions, decoded.devicePrivateOwner)
      const driver = Layer.effect(
        Driver,
        Effect.gen(function*() {
          const svm = yield* GpuSvm
          const mm = yield* Mm
          const hmm = yield* Hmm
          const policy = yield* MigrationPolicy
          const pagemaps = Option.match(yield* Effect.serviceOption(DevicePagemaps), {
            onNone: () => [],
            onSome: (p) => p.all
          })
          st.attrs.pagemaps = pagemaps
          const env: FaultEnv = { st, svm, gpu, mm, policy, hmm }
          const handleFault = FaultHandler.handle(env)
          yield* gpu.setFaultHandler(handleFault)
          // §11.2: the GC actor, an ordinary fiber in the layer's scope.
          // the GC worker is its own actor for the explorer (§11.2, GC_ACTOR)
          const gcWorker = yield* Effect.forkScoped(asActor(GarbageCollector.worker(st, svm, gpu), GC_ACTOR))
          return {
            handleFault,
            collectGarbage: st.withSvmLock(GarbageCollector.run(st, svm, gpu)),
            idle: st.gcIdle.await,
            gcWorker,
            prefetch: Prefetch.run(env, pagemaps[0]),
            makeExclusive: FaultHandler.makeExclusive(env),
            counters: Effect.sync(() => structuredClone(st.counters)),
            faultRetriesNow: () => Metrics.retries(st.metrics),
            options: st.options,
            bo: BufferObjects.make(st, svm, gpu, pagemaps[0]),
            madvise: Attributes.madvise({ st, svm, gpu }),
            queryAttrs: Attributes.queryAttrs(st)
          }
        })
        // fresh: a policy reads the machine's pagemaps when built, and a built-in policy layer is one
        // shared value that would otherwise be memoised across every Driver.layer of a run (kernel-semantics
        // §11.17: another process's or VM's driver must get its own)
      ).pipe(Layer.provide(Layer.fresh(layerOf(policy))))
      const core = GpuSvm.layer(decoded, Invalidation.callback(st, gpu))
      const locked = Layer.effect(
        GpuSvm,
        // §11.17: the VM's buffer objects go first (unbound and freed), as xe_vm_close_and_put does
        // (the fast paths are the same service's: kept, as a spread drops them; issue #16)
        Effect.map(GpuSvm, (svm): GpuSvmApi =>
          withNow<GpuSvmApi>({ ...svm, fini: st.withSvmLock(Effect.andThen(BufferObjects.teardown(st), svm.fini)) }, {
            ...(svm.rangeFindOrInsertNow === undefined ? {} : { rangeFindOrInsertNow: svm.rangeFindOrInsertNow }),
            ...(svm.rangeGetPagesNow === undefined ? {} : { rangeGetPagesNow: svm.rangeGetPagesNow }),
            ...(svm.withNotifierLockNow === undefined ? {} : { withNotifierLockNow: svm.withNotifierLockNow }),
            ...(svm.rangeNow === undefined ? {} : { rangeNow: svm.rangeNow })
          }))
      ).pipe(Layer.provide(core))
      return driver.pipe(Layer.provideMerge(locked))
    }))
  }
}

type FaultEnv = FaultHandler.FaultEnv

