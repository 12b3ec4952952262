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
import { NOT_NOW } from "../../domain/Now.ts"
import type { InvalidateNow } from "../MmuNotifier.ts"
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
      yield* core.ops.invalidate(core.api(), liveNotifier(core, h, start, end), mmuRange)
    })
  ).pipe(Effect.as(true))
}

/** The notifier of handle `h` as the callback passes it (an empty one if not, or no longer, in the state). */
const liveNotifier = (core: Core, h: NotifierHandle, start: number, end: number): Notifier =>
  State.notifierOf(core.state.value, h) ?? { start, end, handle: h, ranges: IT.empty(), removed: false }

/**
 * {@link invalidate} in the calling step (issue #16): ready when the event is blockable, the notifier lock
 * is free for writing, no other invalidation of it is in flight, the machine can publish the sequence now and the driver's `ops.invalidateNow` is
 * ready; `run` publishes the sequence and runs it.
 */
const invalidateNow = (core: Core, cell: { handle?: NotifierHandle }, start: number, end: number): InvalidateNow | undefined => {
  const ops = core.ops.invalidateNow
  const { setSeqNow, readBeginNow } = core.mmu
  if (ops === undefined || setSeqNow === undefined || readBeginNow === undefined) return undefined
  return {
    // readBeginNow answers only where the machine passes no point and no other invalidation is in flight
    ready: (mmuRange) => {
      const h = cell.handle
      return mmuRange.blockable && h !== undefined && readBeginNow(h) !== NOT_NOW && core.lock.canWriteNow() &&
        ops.ready(core.api(), liveNotifier(core, h, start, end), mmuRange)
    },
    run: (mmuRange, curSeq) => {
      const h = cell.handle!
      if (setSeqNow(h, curSeq) === NOT_NOW) throw new Error("gpusvm: setSeqNow refused inside a ready synchronous invalidation")
      ops.run(core.api(), liveNotifier(core, h, start, end), mmuRange)
      return true
    }
  }
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
  const now = invalidateNow(core, cell, start, end)
  const insert = now === undefined
    ? core.mmu.insert(start, end - start, invalidate(core, cell, start, end))
    : core.mmu.insert(start, end - start, invalidate(core, cell, start, end), now)
  return Effect.map(insert, (handle) => {
    cell.handle = handle
    return { start, end, handle, ranges: IT.empty(), removed: false }
  })
}
