/**
 * `GarbageCollector.run`: the seed's example 2 (kernel-semantics §10.2). For
 * each range queued by an UNMAP invalidation: if partially unmapped, evict
 * what remains in device memory; unbind it on the GPU; `rangeRemove`. Caller
 * holds the driver SVM lock.
 *
 * @since 0.1.0
 */
import { Effect, Metric, Option } from "effect"
import type { Gpu } from "../services/Gpu.ts"
import type { GpuSvmApi } from "../services/GpuSvm.ts"
import type { DriverState } from "./DriverState.ts"
import { gcRunsTotal } from "./Metrics.ts"

/** Runs the collector once over everything queued so far. Errors of eviction are tolerated (the range is removed anyway). */
export const run = (st: DriverState, svm: GpuSvmApi, gpu: Gpu["Service"]): Effect.Effect<void> =>
  Effect.suspend(() => {
    if (st.gcQueue.length === 0) return Effect.void
    const batch = st.gcQueue.splice(0, st.gcQueue.length)
    return Effect.gen(function*() {
      st.counters.gcRuns++
      yield* Metric.update(gcRunsTotal, 1)
      for (const queued of batch) {
        const live = yield* svm.range(queued)
        if (Option.isNone(live)) continue
        const r = live.value
        if (r.flags.partialUnmap) {
          const evicted = yield* Effect.result(svm.rangeEvict(r))
          if (evicted._tag === "Success") st.counters.evictions++
        }
        yield* gpu.invalidate(r.start, r.end)
        yield* svm.rangeRemove(r)
        st.counters.rangesRemoved++
        st.seen.delete(r.id)
      }
    })
  })
