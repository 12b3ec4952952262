/**
 * `struct mmu_notifier_range`: the CPU range about to change, why, and whether
 * the callback may sleep.
 *
 * @since 0.1.0
 */
import { Schema } from "effect"

/**
 * Schema of the invalidation event kinds (`enum mmu_notifier_event`).
 *
 * @category schemas
 */
export const MmuEvent = Schema.Literals([
  "unmap",
  "clear",
  "protection-vma",
  "protection-page",
  "soft-dirty",
  "release",
  "migrate",
  "exclusive"
])

/**
 * Why a range is being invalidated: `MMU_NOTIFY_UNMAP` (munmap, mremap's old
 * range), `CLEAR` (madvise(DONTNEED)), `PROTECTION_VMA` (mprotect),
 * `PROTECTION_PAGE`, `SOFT_DIRTY`, `RELEASE` (process exit), `MIGRATE`
 * (migration to/from device memory), `EXCLUSIVE`.
 *
 * @category models
 */
export type MmuEvent = typeof MmuEvent.Type

/**
 * Every event kind, in declaration order.
 *
 * @category constants
 */
export const MMU_EVENTS: ReadonlyArray<MmuEvent> = MmuEvent.literals

/**
 * The range being invalidated: `[start, end)`, the event, the owner for
 * `MIGRATE` events (`owner` = the pagemap's device-private owner that caused
 * it), and `blockable` (`mmu_notifier_range_blockable`).
 *
 * @category models
 */
export interface MmuRange {
  readonly start: number
  readonly end: number
  readonly event: MmuEvent
  readonly owner?: string
  readonly blockable: boolean
}

/**
 * Constructs an `MmuRange`.
 *
 * @category functions
 */
export const make = (
  start: number,
  end: number,
  event: MmuEvent,
  options?: { readonly owner?: string | undefined; readonly blockable?: boolean }
): MmuRange =>
  options?.owner === undefined
    ? { start, end, event, blockable: options?.blockable ?? true }
    : { start, end, event, owner: options.owner, blockable: options.blockable ?? true }
