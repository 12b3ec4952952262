/**
 * `MmuNotifier`: MMU interval notifiers (`mmu_interval_notifier_insert`,
 * `_remove`, `mmu_interval_read_begin`, `mmu_interval_read_retry`,
 * `mmu_interval_set_seq`), kernel-semantics §7.
 *
 * @since 0.1.0
 */
import type { Now } from "../domain/Now.ts"
import { Context, type Effect } from "effect"
import type { MmuRange } from "../domain/MmuRange.ts"
import type { NotifierHandle } from "../domain/NotifierHandle.ts"

/**
 * The callback (`mmu_interval_notifier_ops.invalidate`): receives the range and
 * the new sequence number (`cur_seq`); returns `false` to refuse a non-blockable
 * event (the machine then retries it blockably). Publishing `cur_seq` with
 * `setSeq` is the callback's job, as in Linux: the machine never moves the
 * sequence itself, so a callback that forgets leaves `readRetry` false. Beyond
 * Linux, a blockable callback that returns `true` without calling `setSeq`
 * records the violation `notifier-seq-not-set` (issue #13 item 8).
 *
 * @category models
 */
export type InvalidateCallback = (range: MmuRange, curSeq: number) => Effect.Effect<boolean>

export type { NotifierHandle } from "../domain/NotifierHandle.ts"

/**
 * The synchronous form of a notifier's callback (issue #16, `src/domain/Now.ts`), optional beside
 * `onInvalidate`: `ready(range)` says, without side effects, whether `run` can do the whole callback in
 * the calling step; `run(range, curSeq)` then does it (publishing `curSeq` with `setSeqNow`) and returns
 * what `onInvalidate` would. A machine may then run an invalidation with no other fiber step in between.
 *
 * @category models
 * @since 0.5.0
 */
export interface InvalidateNow {
  readonly ready: (range: MmuRange) => boolean
  readonly run: (range: MmuRange, curSeq: number) => boolean
}

/**
 * MMU interval notifiers of one address space.
 *
 * @category services
 */
export class MmuNotifier extends Context.Service<MmuNotifier, {
  /** `mmu_interval_notifier_insert(mm, start, length, ops)`: registers a callback for `[start, start + length)`. */
  readonly insert: (start: number, length: number, onInvalidate: InvalidateCallback, now?: InvalidateNow) => Effect.Effect<NotifierHandle>
  /** `mmu_interval_notifier_remove`: unregisters; waits for an in-flight callback of it to return. Idempotent. */
  readonly remove: (h: NotifierHandle) => Effect.Effect<void>
  /** `mmu_interval_read_begin`: the current sequence, first waiting while an invalidation of `h` is in flight. */
  readonly readBegin: (h: NotifierHandle) => Effect.Effect<number>
  /** `mmu_interval_read_retry`: has the sequence moved since `seq` (an invalidation started)? */
  readonly readRetry: (h: NotifierHandle, seq: number) => Effect.Effect<boolean>
  /**
   * Fast path of `readBegin` (issue #16, `src/domain/Now.ts`): the sequence, when no invalidation of the
   * notifier is in flight and no schedule point would be passed; else `NOT_NOW`. Absent on machines that
   * cannot answer synchronously.
   */
  readonly readBeginNow?: (h: NotifierHandle) => Now<number>
  /** Fast path of `readRetry`: its answer in the calling step, or `NOT_NOW` when a schedule point would be passed. */
  readonly readRetryNow?: (h: NotifierHandle, seq: number) => Now<boolean>
  /** `mmu_interval_set_seq`: called by the callback under the driver's lock to publish `cur_seq` (the only way the sequence moves). */
  readonly setSeq: (h: NotifierHandle, seq: number) => Effect.Effect<void>
  /** `setSeq` in the calling step, for an {@link InvalidateNow} `run`; `NOT_NOW` where a schedule point would be passed. Optional. */
  readonly setSeqNow?: (h: NotifierHandle, seq: number) => Now<void>
}>()("gpusvm/MmuNotifier") {}
