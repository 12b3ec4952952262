/**
 * The simulated `MmuNotifier` service over the machine's notifier registry
 * (see `IntervalNotifiers.ts` for the invalidation protocol and sequence semantics).
 *
 * - `insert` never waits (it does not take the mmap lock); a notifier inserted
 *   while an overlapping invalidation is in flight starts "being invalidated"
 *   until that invalidation ends.
 * - `readBegin` waits (transactionally, `Effect.txRetry`) while an
 *   invalidation covering the notifier is in flight.
 * - `readRetry(h, seq)` is true iff the sequence differs from `seq` (always
 *   true for a removed notifier) — or while a `seqRace` injection is pending,
 *   which makes it true regardless (as if an invalidation raced the caller);
 *   `setSeq` publishes `curSeq` from a callback.
 * - `remove` waits for in-flight invalidations of the notifier; idempotent.
 *
 * Every call is a schedule yield point. No errors.
 *
 * @since 0.1.0
 */
import { Effect } from "effect"
import type { NotifierHandle } from "../../domain/NotifierHandle.ts"
import { NOT_NOW, withNow } from "../../domain/Now.ts"
import { type InvalidateCallback, type InvalidateNow, MmuNotifier } from "../../services/MmuNotifier.ts"
import type { MachineState } from "./MachineState.ts"
import { afterPoint } from "./SeededYields.ts"

/**
 * Builds the `MmuNotifier` service of machine `st`.
 *
 * @category functions
 */
export const makeMmuNotifier = (st: MachineState): MmuNotifier["Service"] => {
  const point = st.schedule.at("mmu-notifier")
  const n = st.notifiers
  const readRetrySync = (h: NotifierHandle, seq: number): boolean => {
    // `seqRace` injection (kernel-semantics §11.16): an invalidation raced the walk.
    if (st.inject.seqRace > 0) {
      st.inject.seqRace--
      return true
    }
    const moved = n.moved(h, seq)
    if (moved) st.readRetriesMoved++ // the read_retry path (kernel-semantics §11.17 drives it)
    return moved
  }
  const svc = MmuNotifier.of({
    insert: (start: number, length: number, cb: InvalidateCallback, now?: InvalidateNow) =>
      Effect.flatMap(point, () => Effect.sync(() => n.insert(start, length, cb, now))),
    remove: (h: NotifierHandle) => Effect.flatMap(point, () => n.remove(h)),
    // the hot ones skip a void point (SeededYields.afterPoint): same schedules, one step less
    readBegin: (h: NotifierHandle) => afterPoint(point, () => Effect.suspend(() => n.readBeginNow(h))),
    readRetry: (h: NotifierHandle, seq: number) => afterPoint(point, () => Effect.sync(() => readRetrySync(h, seq))),
    setSeq: (h: NotifierHandle, seq: number) => Effect.flatMap(point, () => n.setSeq(h, seq))
  })
  // issue #16: the fast paths, only where the point is void
  return withNow(svc, {
    readBeginNow: (h: NotifierHandle) => (point === Effect.void ? n.readBeginSync(h) : NOT_NOW),
    readRetryNow: (h: NotifierHandle, seq: number) => (point === Effect.void ? readRetrySync(h, seq) : NOT_NOW),
    setSeqNow: (h: NotifierHandle, seq: number) => (point === Effect.void ? n.setSeqSync(h, seq) : NOT_NOW)
  })
}
