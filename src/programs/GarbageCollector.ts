/**
 * `GarbageCollector`: the seed's example 2 (kernel-semantics §10.2). For
 * each range queued by an UNMAP invalidation: if partially unmapped, evict
 * what remains in device memory; unbind it on the GPU; `rangeRemove`.
 *
 * It runs in two places, both under the driver SVM lock: at the start of every
 * fault round (example 1), and in the collector worker (§11.2, Xe's
 * `garbage_collector.work`), which the invalidation callback wakes after an
 * UNMAP so that unmapped ranges go away without a later GPU fault.
 *
 * @since 0.1.0
 */
import { Effect, Option } from "effect"
import type { Range } from "../domain/Range.ts"
import type { Gpu } from "../services/Gpu.ts"
import type { GpuSvmApi } from "../services/GpuSvm.ts"
import * as MemAttrs from "../domain/MemAttrs.ts"
import type { DriverState } from "./DriverState.ts"
import * as Metrics from "./Metrics.ts"
import * as Spans from "./Spans.ts"

/**
 * Unbinds a range on the GPU (`xe_vm_range_unbind`): zap + flush only if it
 * still has PTEs — after an UNMAP the callback has already zapped it (§11.12).
 * A flush is counted in `m` (`gpusvm_tlb_flushes_total`).
 *
 * @category functions
 */
export const unbind = (gpu: Gpu["Service"], r: Range, m: Metrics.DriverMetrics): Effect.Effect<void> =>
  Effect.flatMap(gpu.isBound(r.start, r.end), (bound) => {
    if (!bound) return Effect.void
    Metrics.add(m, Metrics.tlbFlushesTotal)
    return gpu.invalidate(r.start, r.end)
  })

/**
 * Unbinds and removes one queued range (evicting first if partially unmapped).
 * The unbind + remove pair is uninterruptible, so a worker interrupted at
 * shutdown never leaves a range unbound but still in the tree.
 */
const collectOne = Effect.fnUntraced(function*(st: DriverState, svm: GpuSvmApi, gpu: Gpu["Service"], queued: Range) {
  const live = yield* svm.range(queued)
  if (Option.isNone(live)) return
  const r = live.value
  if (r.flags.partialUnmap) {
    const evicted = yield* Effect.result(svm.rangeEvict(r))
    if (evicted._tag === "Success") {
      Metrics.add(st.metrics, Metrics.evictionsTotal)
      if (r.flags.hasDevmemPages) Metrics.add(st.metrics, Metrics.bytesToRamTotal, r.end - r.start)
    }
  }
  yield* Effect.uninterruptible(Effect.andThen(unbind(gpu, r, st.metrics), svm.rangeRemove(r)))
  Metrics.add(st.metrics, Metrics.rangesRemovedTotal)
  st.seen.delete(r.id)
  // xe_svm_range_set_default_attr: the madvise attributes of an unmapped range go
  // back to the defaults (unless the piece at its start already has them).
  st.attrs.map = MemAttrs.resetDefault(st.attrs.map, r.start, r.end)
})

const batch = Effect.fnUntraced(function*(st: DriverState, svm: GpuSvmApi, gpu: Gpu["Service"], ranges: ReadonlyArray<Range>) {
  Metrics.add(st.metrics, Metrics.gcRunsTotal)
  for (const queued of ranges) yield* collectOne(st, svm, gpu, queued)
})

/** Marks the collector idle again if nothing is queued and no collection runs. */
const settle = (st: DriverState) =>
  Effect.sync(() => {
    st.gcRunning--
    if (st.gcRunning === 0 && st.gcQueue.length === 0) st.gcIdle.openUnsafe()
  })

/**
 * Runs the collector once over everything queued so far. Caller holds the
 * driver SVM lock. Errors of eviction are tolerated (the range is removed
 * anyway).
 *
 * @category functions
 */
export const run = (st: DriverState, svm: GpuSvmApi, gpu: Gpu["Service"]): Effect.Effect<void> =>
  Effect.suspend(() => {
    if (st.gcQueue.length === 0) return Effect.void
    const ranges = st.gcQueue.splice(0, st.gcQueue.length)
    st.gcRunning++
    return Effect.ensuring(Spans.gc(ranges.length, batch(st, svm, gpu, ranges)), settle(st))
  })

/**
 * The collector worker (kernel-semantics §11.2), the driver's GC actor
 * (`GC_ACTOR`): forever, wait for the invalidation callback's kick (no polling,
 * no clock), re-arm it, then collect under the driver SVM lock as the fault
 * handler does. `Driver.layer` forks it in its scope, so it is interrupted when
 * the layer's scope closes; it never fails.
 *
 * @category functions
 */
export const worker = (st: DriverState, svm: GpuSvmApi, gpu: Gpu["Service"]): Effect.Effect<never> => {
  const once = Effect.andThen(
    st.gcKick.await,
    Effect.andThen(st.gcKick.close, st.withSvmLock(run(st, svm, gpu)))
  )
  return Effect.forever(once)
}
