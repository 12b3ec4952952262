/**
 * `struct drm_gpusvm_range_flags`: the state bits of a range.
 *
 * @since 0.1.0
 */

/**
 * - `migrateDevmem`: the range may migrate to device memory (set at creation).
 * - `unmapped`: the CPU unmapped (part of) it; get_pages now fails `EFAULT`.
 * - `partialUnmap`: only part of it was unmapped (the driver evicts, then removes).
 * - `hasDevmemPages`: its pages are in device memory, mapped through a pagemap.
 * - `hasDmaMapping`: it holds device addresses of its pages.
 * Changed only under the notifier lock.
 *
 * @category models
 */
export interface RangeFlags {
  readonly migrateDevmem: boolean
  readonly unmapped: boolean
  readonly partialUnmap: boolean
  readonly hasDevmemPages: boolean
  readonly hasDmaMapping: boolean
}

/**
 * All flags clear.
 *
 * @category constants
 */
export const NONE: RangeFlags = {
  migrateDevmem: false,
  unmapped: false,
  partialUnmap: false,
  hasDevmemPages: false,
  hasDmaMapping: false
}
