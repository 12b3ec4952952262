/**
 * `struct drm_gpusvm_notifier`, as an immutable value: a fixed-size, aligned
 * window of the address space with its MMU interval notifier and the tree of
 * the ranges inside it.
 *
 * @since 0.1.0
 */
import type { IntervalTree } from "./IntervalTree.ts"
import type { NotifierHandle } from "./NotifierHandle.ts"
import type { Range } from "./Range.ts"

/**
 * A notifier: `[start, end)`, its registered MMU notifier `handle`, its ranges
 * keyed by `[start, end - 1]`, and `removed` (the MMU notifier was unregistered,
 * e.g. by `fini`).
 *
 * @category models
 */
export interface Notifier {
  readonly start: number
  readonly end: number
  readonly handle: NotifierHandle
  readonly ranges: IntervalTree<Range>
  readonly removed: boolean
}
