/**
 * `Driver`: the driver components wired together over `GpuSvm` and the `Gpu`
 * (design.md §7): the invalidation callback is the GpuSvm's `ops.invalidate`,
 * the fault handler is registered with the GPU (so `gpu.access(...)` just
 * works), the garbage collector runs at the start of every fault, and prefetch
 * migrates ahead of use. `Driver.layer(config, options)` provides `GpuSvm` and
 * `Driver` from `Mm | MmuNotifier | Hmm | Dma | Gpu | MigrationPolicy` (and the
 * machine's `DevicePagemaps`, if any).
 *
 * @since 0.1.0
 */
import { Context, Effect, Layer, Option } from "effect"
import type { GpuFaultError, InvalidConfig } from "../domain/Errors.ts"
import * as Config from "../domain/GpuSvmConfig.ts"
import { DevicePagemaps } from "../services/DevicePagemap.ts"
import type { Dma } from "../services/Dma.ts"
import { Gpu, type GpuPageFault } from "../services/Gpu.ts"
import { GpuSvm } from "../services/GpuSvm.ts"
import type { Hmm } from "../services/Hmm.ts"
import { Mm } from "../services/Mm.ts"
import type { MmuNotifier } from "../services/MmuNotifier.ts"
import * as DriverState from "./DriverState.ts"
import type { DriverOptions } from "./DriverState.ts"
import * as FaultHandler from "./FaultHandler.ts"
import * as GarbageCollector from "./GarbageCollector.ts"
import * as Invalidation from "./Invalidation.ts"
import type { DriverCounters } from "./Metrics.ts"
import { MigrationPolicy } from "./MigrationPolicy.ts"
import * as Prefetch from "./Prefetch.ts"

/** The driver's interface. */
export interface DriverApi {
  /** Handles one GPU page fault (what the GPU calls on a missing PTE). */
  readonly handleFault: (fault: GpuPageFault) => Effect.Effect<void, GpuFaultError>
  /** Runs the garbage collector now, under the driver SVM lock. */
  readonly collectGarbage: Effect.Effect<void>
  /** Migrates and binds `[start, end)` ahead of use. */
  readonly prefetch: (start: number, end: number, o: Prefetch.PrefetchOptions) => Effect.Effect<void, GpuFaultError>
  /** A snapshot of the driver's counters. */
  readonly counters: Effect.Effect<DriverCounters>
  /** The resolved options. */
  readonly options: DriverState.ResolvedOptions
}

/** The driver service. */
export class Driver extends Context.Service<Driver, DriverApi>()("gpusvm/Driver") {
  /**
   * Builds GpuSvm (with the driver's invalidation callback) and the driver, and
   * registers the fault handler with the GPU. `InvalidConfig` for a bad config.
   */
  static readonly layer = (
    config: unknown,
    options?: DriverOptions
  ): Layer.Layer<GpuSvm | Driver, InvalidConfig, Mm | MmuNotifier | Hmm | Dma | Gpu | MigrationPolicy> =>
    Layer.unwrap(Effect.gen(function*() {
      const decoded = yield* Config.decode(config)
      const gpu = yield* Gpu
      const st = yield* DriverState.make(options, decoded.devicePrivateOwner)
      const driver = Layer.effect(
        Driver,
        Effect.gen(function*() {
          const svm = yield* GpuSvm
          const mm = yield* Mm
          const policy = yield* MigrationPolicy
          const pagemaps = Option.match(yield* Effect.serviceOption(DevicePagemaps), {
            onNone: () => [],
            onSome: (p) => p.all
          })
          const env: FaultEnv = { st, svm, gpu, mm, policy }
          const handleFault = FaultHandler.handle(env)
          yield* gpu.setFaultHandler(handleFault)
          return {
            handleFault,
            collectGarbage: st.svmLock.withPermits(1)(GarbageCollector.run(st, svm, gpu)),
            prefetch: Prefetch.run(env, pagemaps[0]),
            counters: Effect.sync(() => structuredClone(st.counters)),
            options: st.options
          }
        })
      )
      return driver.pipe(Layer.provideMerge(GpuSvm.layer(config, Invalidation.callback(st, gpu))))
    }))
}

type FaultEnv = FaultHandler.FaultEnv
