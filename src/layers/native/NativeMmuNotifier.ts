/**
 * The native `MmuNotifier` service: the Node-side interval-notifier registry
 * (sequence numbers, `readBegin` waiting on invalidations in flight) fed by
 * the Cpu's own changes and by userfaultfd events, plus a pagemap re-check in
 * `readRetry` for what uffd never reports (THP collapse, compaction, NUMA,
 * KSM, swap): if the PFNs the last `rangeFault` of this notifier saw have
 * changed, the sequence moves (so the caller retries) and a CLEAR
 * invalidation of that window is raised once the caller's locks are free.
 *
 * @since 0.1.0
 */
import { Effect } from "effect"
import type { NotifierHandle } from "../../domain/NotifierHandle.ts"
import { type InvalidateCallback, MmuNotifier } from "../../services/MmuNotifier.ts"
import type { NativeState } from "./NativeState.ts"
import { isPresent, pfnOf } from "./Proc.ts"

/**
 * Did any page present in `before` change PFN or go away in `now`?
 *
 * @category functions
 */
export const pfnsChanged = (before: Uint32Array, now: Uint32Array): boolean => {
  for (let i = 0; i < before.length; i += 2) {
    const h = before[i + 1]!
    if (!isPresent(h)) continue
    const h2 = now[i + 1] ?? 0
    if (!isPresent(h2) || pfnOf(before[i]!, h) !== pfnOf(now[i] ?? 0, h2)) return true
  }
  return false
}

/**
 * Builds the `MmuNotifier` service of machine `st`.
 *
 * @category functions
 */
export const makeMmuNotifier = (st: NativeState): MmuNotifier["Service"] => {
  const n = st.notifiers
  const readRetry = (h: NotifierHandle, seq: number): Effect.Effect<boolean> =>
    Effect.suspend(() => {
      if (n.moved(h, seq)) return Effect.succeed(true)
      const snap = st.snapshots.get(h.id)
      if (snap === undefined || snap.seq !== seq || !st.alive) return Effect.succeed(false)
      let changed = false
      try {
        changed = pfnsChanged(snap.words, st.proc.pagemapRaw(snap.start, snap.end))
      } catch {
        changed = false
      }
      if (!changed) return Effect.succeed(false)
      st.uffd.pagemapChanges++
      st.snapshots.delete(h.id)
      return n.setSeq(h, n.freshSeq()).pipe(
        Effect.andThen(Effect.forkDetach(n.invalidate(snap.start, snap.end, "clear", Effect.void))),
        Effect.as(true)
      )
    })
  return MmuNotifier.of({
    insert: (start: number, length: number, cb: InvalidateCallback) => Effect.sync(() => n.insert(start, length, cb)),
    remove: (h: NotifierHandle) =>
      Effect.andThen(n.remove(h), Effect.sync(() => {
        st.snapshots.delete(h.id)
      })),
    readBegin: (h: NotifierHandle) => n.readBegin(h),
    readRetry,
    setSeq: (h: NotifierHandle, seq: number) => n.setSeq(h, seq)
  })
}
