/**
 * Test harness: a GPU SVM instance on a fresh simulated machine, with a driver
 * `ops.invalidate` that behaves like the seed's documented example (unmap the
 * pages of every overlapping range in the notifier; on UNMAP mark them
 * unmapped) and records every call, plus a model GPU page table ("bindings")
 * that the callback zaps.
 */
import { Effect, Layer } from "effect"
import type { GpuSvmConfigInput } from "../../src/domain/GpuSvmConfig.ts"
import type { MmuRange } from "../../src/domain/MmuRange.ts"
import * as IT from "../../src/domain/IntervalTree.ts"
import type { Range } from "../../src/domain/Range.ts"
import type { SimulatedOptions } from "../../src/layers/simulated/Simulated.ts"
import { layerWithState } from "../../src/layers/simulated/Simulated.ts"
import { GpuSvm, type GpuSvmApi, type GpuSvmOps } from "../../src/services/GpuSvm.ts"

/** What the driver callback saw. */
export interface InvalidationRecord {
  readonly range: MmuRange
  readonly notifierStart: number
  readonly rangesUnmapped: ReadonlyArray<number>
  /** Logical time at which the callback ran (shared with `Binding.tick`). */
  readonly tick: number
}

/** A GPU binding in the model page table: made from a range's pages at a commit. */
export interface Binding {
  readonly range: Range
  readonly tick: number
}

/** Shared mutable record of the driver's view (tests read it). */
export interface Driver {
  readonly invalidations: Array<InvalidationRecord>
  readonly bindings: Map<number, Binding>
  tick: number
}

/** A fresh driver record. */
export const makeDriver = (): Driver => ({ invalidations: [], bindings: new Map(), tick: 0 })

/** The seed's example `ops.invalidate`, recording into `driver`. */
export const driverOps = (driver: Driver): GpuSvmOps => ({
  invalidate: (svm: GpuSvmApi, notifier, mmuRange) =>
    Effect.gen(function*() {
      const unmapped: Array<number> = []
      for (const e of IT.overlapping(notifier.ranges, mmuRange.start, mmuRange.end - 1)) {
        const r = e.value
        driver.bindings.delete(r.id)
        yield* svm.rangeUnmapPages(r, { inNotifier: true })
        if (mmuRange.event === "unmap") yield* svm.rangeSetUnmapped(r, mmuRange)
        unmapped.push(r.id)
      }
      driver.invalidations.push({ range: mmuRange, notifierStart: notifier.start, rangesUnmapped: unmapped, tick: driver.tick++ })
    })
})

/** Small, test-friendly defaults: 2 MiB / 64 KiB / 4 KiB chunks, 512 MiB notifiers. */
export const defaultConfig = {
  name: "test",
  mmStart: 0,
  mmRange: 2 ** 47,
  notifierSize: 512 * 1024 * 1024,
  chunkSizes: [2 * 1024 * 1024, 64 * 1024, 4096],
  devicePrivateOwner: "test-gpu"
}

/** The whole machine + GPU SVM as one layer. */
export const svmLayer = (
  driver: Driver,
  options?: { readonly config?: Record<string, unknown>; readonly machine?: SimulatedOptions }
) =>
  // a test may pass a deliberately malformed config (decode checks it at run time)
  GpuSvm.layer({ ...defaultConfig, ...options?.config } as GpuSvmConfigInput, driverOps(driver)).pipe(
    Layer.provideMerge(layerWithState(options?.machine ?? {}))
  )

/** The GPU VA window covering all of user space. */
export const GPUVA_START = 0
export const GPUVA_END = 2 ** 47

export const KiB = 1024
export const MiB = 1024 * 1024
