/**
 * An opaque handle to a registered MMU interval notifier
 * (`struct mmu_interval_notifier`), as returned by `MmuNotifier.insert`.
 *
 * @since 0.1.0
 */

/**
 * The handle: a machine-unique id and the window `[start, end)` it covers.
 *
 * @category models
 */
export interface NotifierHandle {
  readonly id: number
  readonly start: number
  readonly end: number
}
