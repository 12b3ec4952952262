/**
 * `Invalidation.callback`: the driver's `ops.invalidate` (the seed's example 3,
 * kernel-semantics §10.3). Runs with the notifier lock held for writing:
 * zap the GPU page-table entries of the MMU range (one TLB flush), unmap the
 * pages of every overlapping range (`rangeUnmapPages` with `inNotifier`), and
 * for UNMAP events mark them unmapped and queue them for the garbage collector.
 * A MIGRATE event whose owner is our own device, inside a window the driver is
 * migrating itself, is skipped (we caused it, and unbound the range first).
 *
 * @since 0.1.0
 */
import { Effect } from "effect"
import * as IT from "../domain/IntervalTree.ts"
import type { MmuRange } from "../domain/MmuRange.ts"
import type { Notifier } from "../domain/Notifier.ts"
import type { Gpu } from "../services/Gpu.ts"
import type { GpuSvmApi, GpuSvmOps } from "../services/GpuSvm.ts"
import type { DriverState } from "./DriverState.ts"
import { countInvalidation } from "./Metrics.ts"

const causedByUs = (st: DriverState, r: MmuRange): boolean =>
  r.event === "migrate" && r.owner !== undefined && r.owner === st.owner &&
  st.ownMigrations.some((m) => m.start <= r.start && r.end <= m.end)

/** The `ops.invalidate` of a driver over `gpu`. */
export const callback = (st: DriverState, gpu: Gpu["Service"]): GpuSvmOps => ({
  invalidate: (svm: GpuSvmApi, notifier: Notifier, mmuRange: MmuRange) =>
    Effect.gen(function*() {
      yield* countInvalidation(st.counters, mmuRange.event)
      if (causedByUs(st, mmuRange)) return
      const start = Math.max(mmuRange.start, notifier.start)
      const end = Math.min(mmuRange.end, notifier.end)
      if (start >= end) return
      // Widen the zap to the whole of every overlapping range (Xe's "adjust
      // invalidation to range boundaries"): their DMA mappings all go below, so
      // no GPU PTE may keep pointing at any of them.
      const hit = Array.from(IT.overlapping(notifier.ranges, start, end - 1), (e) => e.value)
      let zapStart = start
      let zapEnd = end
      for (const r of hit) {
        zapStart = Math.min(zapStart, r.start)
        zapEnd = Math.max(zapEnd, r.end)
      }
      yield* gpu.invalidate(zapStart, zapEnd)
      for (const range of hit) {
        yield* svm.rangeUnmapPages(range, { inNotifier: true })
        if (mmuRange.event !== "unmap") continue
        yield* svm.rangeSetUnmapped(range, mmuRange)
        st.gcQueue.push(range)
      }
    })
})
