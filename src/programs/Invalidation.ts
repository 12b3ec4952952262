/**
 * `Invalidation.callback`: the driver's `ops.invalidate` (the seed's example 3,
 * kernel-semantics §10.3), shaped like Xe's `xe_svm_invalidate`. Runs with the
 * notifier lock held for writing:
 * - clip the MMU range to the notifier; if no range of the notifier overlaps
 *   it, return at once: no GPU zap, no TLB flush (§11.12);
 * - zap the GPU page-table entries of every overlapping range that still has
 *   PTEs (`xe_svm_range_notifier_event_begin`: not already unmapped, bound),
 *   widened to the range's boundaries, with one TLB flush over them all; none
 *   with PTEs: no flush at all (§11.12);
 * - unmap the pages of every overlapping range (`rangeUnmapPages` with
 *   `inNotifier`), and for UNMAP events mark it unmapped, queue it for the
 *   garbage collector and wake the collector worker (§11.2).
 *
 * A MIGRATE event whose owner is our own device, inside a window the driver is
 * migrating itself, is skipped (we caused it, and unbound the range first); so
 * is an EXCLUSIVE event whose owner is the driver (its own
 * `make_device_exclusive`, kernel-semantics §11.17), while a revocation
 * (EXCLUSIVE with no owner) zaps and unmaps like any other event.
 *
 * @since 0.1.0
 */
import { withNow } from "../domain/Now.ts"
import { Effect, Fiber } from "effect"
import * as IT from "../domain/IntervalTree.ts"
import type { MmuRange } from "../domain/MmuRange.ts"
import type { Notifier } from "../domain/Notifier.ts"
import type { Range } from "../domain/Range.ts"
import type { Gpu } from "../services/Gpu.ts"
import type { GpuSvmApi, GpuSvmOps } from "../services/GpuSvm.ts"
import type { DriverState } from "./DriverState.ts"
import { queueForGc } from "./DriverState.ts"
import * as DeviceExclusive from "./DeviceExclusive.ts"
import * as Metrics from "./Metrics.ts"
import * as Spans from "./Spans.ts"

const causedByUs = (st: DriverState, r: MmuRange): boolean =>
  r.event === "migrate" && r.owner !== undefined && r.owner === st.owner &&
  st.ownMigrations.some((m) => m.start <= r.start && r.end <= m.end)

/**
 * Zaps the GPU PTEs of the ranges in `hit` that still have any, with one flush
 * over the adjusted window `[start, end)` widened to their boundaries; no call
 * at all when none has PTEs (kernel-semantics §11.12).
 */
const zap = Effect.fnUntraced(function*(st: DriverState, gpu: Gpu["Service"], hit: ReadonlyArray<Range>, start: number, end: number) {
  let zapStart = start
  let zapEnd = end
  let any = false
  for (const r of hit) {
    if (r.flags.unmapped || !(yield* gpu.isBound(r.start, r.end))) continue
    any = true
    zapStart = Math.min(zapStart, r.start)
    zapEnd = Math.max(zapEnd, r.end)
  }
  if (!any) return
  Metrics.add(st.metrics, Metrics.tlbFlushesTotal)
  yield* gpu.invalidate(zapStart, zapEnd)
})

/** Does the callback have nothing to do but count the event (the early returns of `invalidate` below)? */
const nothingToDo = (st: DriverState, notifier: Notifier, mmuRange: MmuRange): boolean => {
  if (causedByUs(st, mmuRange) || DeviceExclusive.ownEvent(st, mmuRange)) return true
  const start = Math.max(mmuRange.start, notifier.start)
  const end = Math.min(mmuRange.end, notifier.end)
  return start >= end || IT.first(notifier.ranges, start, end - 1) === undefined
}

/**
 * The `ops.invalidate` of a driver over `gpu`.
 *
 * @category functions
 */
export const callback = (st: DriverState, gpu: Gpu["Service"]): GpuSvmOps => withNow<GpuSvmOps>({
  invalidate: (svm: GpuSvmApi, notifier: Notifier, mmuRange: MmuRange) => invalidate(st, gpu, svm, notifier, mmuRange)
}, {
  // issue #16: an event with nothing to zap or unmap (our own migration, our own device-exclusive
  // request, no range in the window) is the counting alone: done in the caller's step, unless traced
  invalidateNow: {
    ready: (_svm: GpuSvmApi, notifier: Notifier, mmuRange: MmuRange) => {
      const fiber = Fiber.getCurrent()
      return fiber !== undefined && !Spans.tracing(fiber) && nothingToDo(st, notifier, mmuRange)
    },
    run: (_svm: GpuSvmApi, _notifier: Notifier, mmuRange: MmuRange) => Metrics.countInvalidation(st.metrics, mmuRange.event)
  }
})

const invalidate = (st: DriverState, gpu: Gpu["Service"], svm: GpuSvmApi, notifier: Notifier, mmuRange: MmuRange) =>
    Spans.invalidate(notifier, mmuRange, Effect.gen(function*() {
      Metrics.countInvalidation(st.metrics, mmuRange.event)
      if (causedByUs(st, mmuRange)) return
      // §11.17: our own make_device_exclusive (owner = us): the device is taking the page, not losing it.
      // A revocation (remove_device_exclusive_entry, no owner) goes on like any invalidation: zap, unmap.
      if (DeviceExclusive.ownEvent(st, mmuRange)) return
      const start = Math.max(mmuRange.start, notifier.start)
      const end = Math.min(mmuRange.end, notifier.end)
      if (start >= end) return
      const hit = Array.from(IT.overlapping(notifier.ranges, start, end - 1), (e) => e.value)
      // §11.12: no range overlaps the event: nothing to zap, nothing to flush.
      if (hit.length === 0) return
      yield* zap(st, gpu, hit, start, end)
      for (const range of hit) {
        yield* svm.rangeUnmapPages(range, { inNotifier: true })
        if (mmuRange.event !== "unmap") continue
        yield* svm.rangeSetUnmapped(range, mmuRange)
        // §11.2: queue_work — the collector worker removes it soon, no GPU fault needed.
        queueForGc(st, range)
      }
    }))
