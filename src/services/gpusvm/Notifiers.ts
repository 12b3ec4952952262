/**
 * GPU SVM notifiers: creating and registering one (`drm_gpusvm_notifier_alloc` +
 * `mmu_interval_notifier_insert`) and its MMU interval notifier callback
 * (`drm_gpusvm_notifier_invalidate`, kernel-semantics §5).
 *
 * @since 0.1.0
 */
import { Effect } from "effect"
import * as IT from "../../domain/IntervalTree.ts"
import type { MmuRange } from "../../domain/MmuRange.ts"
import type { Notifier } from "../../domain/Notifier.ts"
import type { NotifierHandle } from "../../domain/NotifierHandle.ts"
import type { Core } from "./Core.ts"
import * as Lock from "../../internal/RwLock.ts"
import * as State from "./State.ts"

/**
 * `drm_gpusvm_notifier_invalidate`: refuse (return `false`) a non-blockable
 * event; otherwise, under the notifier lock held for writing, publish the new
 * sequence (`mmu_interval_set_seq`) and call the driver's `ops.invalidate` with
 * the live notifier. A notifier registered but not (or no longer) in the state
 * is passed as an empty one.
 */
const invalidate = (core: Core, cell: { handle?: NotifierHandle }, start: number, end: number) =>
(mmuRange: MmuRange, curSeq: number): Effect.Effect<boolean> => {
  if (!mmuRange.blockable) return Effect.succeed(false)
  return Lock.withWrite(
    core.lock,
    Effect.gen(function*() {
      const h = cell.handle
      if (h === undefined) return
      yield* core.mmu.setSeq(h, curSeq)
      const n = State.notifierOf(core.state.value, h) ??
        { start, end, handle: h, ranges: IT.empty(), removed: false }
      yield* core.ops.invalidate(core.api(), n, mmuRange)
    })
  ).pipe(Effect.as(true))
}

/**
 * `drm_gpusvm_notifier_alloc` + `mmu_interval_notifier_insert`: a notifier for
 * `[start, end)` with its callback registered. Not yet in the state: the caller
 * inserts it together with its first range, or unregisters it on failure.
 *
 * @category functions
 */
export const register = (core: Core, start: number, end: number): Effect.Effect<Notifier> => {
  const cell: { handle?: NotifierHandle } = {}
  return Effect.map(core.mmu.insert(start, end - start, invalidate(core, cell, start, end)), (handle) => {
    cell.handle = handle
    return { start, end, handle, ranges: IT.empty(), removed: false }
  })
}
