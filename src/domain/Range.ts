/**
 * `struct drm_gpusvm_range`, as an immutable value. The live version of a range
 * is the one in the GPU SVM state; API calls given a stale `Range` look the live
 * one up by `id`, and a removed range behaves as unmapped.
 *
 * @since 0.1.0
 */
import { Schema } from "effect"
import type { DeviceAddress } from "./DeviceAddress.ts"
import type { RangeFlags } from "./RangeFlags.ts"

/**
 * Schema of a range id: a positive integer, branded.
 *
 * @category schemas
 */
export const RangeId = Schema.Number.check(Schema.isInt(), Schema.isGreaterThan(0)).pipe(Schema.brand("gpusvm/RangeId"))

/**
 * A range's identity, unique within one GPU SVM instance and never reused.
 *
 * @category models
 */
export type RangeId = typeof RangeId.Type

/**
 * Makes a `RangeId` from a positive integer (unchecked; ids come from the GPU SVM's counter).
 *
 * @category functions
 */
export const rangeId = (n: number): RangeId => n as RangeId

/**
 * `notifier_seq = LONG_MAX`: a sequence number that is never valid.
 *
 * @category constants
 */
export const SEQ_NEVER = Number.MAX_SAFE_INTEGER

/**
 * A GPU SVM range: `[start, end)` (`itree.start`, `itree.last + 1`), the start of
 * the notifier that holds it, its notifier sequence at the last successful
 * get_pages (`SEQ_NEVER` until then), flags, the device addresses of its pages
 * (one entry per page run, `dma_addr`) and the pagemap of its device pages.
 *
 * @category models
 */
export interface Range {
  readonly id: RangeId
  readonly start: number
  readonly end: number
  readonly notifierStart: number
  readonly notifierSeq: number
  readonly flags: RangeFlags
  readonly dmaAddr?: ReadonlyArray<DeviceAddress>
  readonly pagemap?: string
}

/**
 * Size of the range in bytes (`drm_gpusvm_range_size`).
 *
 * @category functions
 */
export const size = (r: Range): number => r.end - r.start

/**
 * Number of 4 KiB pages in the range (`npages_in_range`).
 *
 * @category functions
 */
export const pages = (r: Range): number => (r.end - r.start) / 4096
