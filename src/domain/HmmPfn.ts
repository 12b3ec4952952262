/**
 * One entry of `hmm_range_fault`'s output array (`unsigned long hmm_pfns[]`): the
 * flags `HMM_PFN_VALID`, `HMM_PFN_WRITE`, `HMM_PFN_ERROR`, the map order
 * (`hmm_pfn_to_map_order`) and the page it names.
 *
 * @since 0.1.0
 */
import type { PageRef } from "./PageRef.ts"

/**
 * One page's HMM entry. `order` is the order of the CPU mapping the page belongs
 * to (9 for a 2 MiB huge page), as reported by `hmm_pfn_to_map_order`: the entry
 * for *each* base page of a huge mapping reports the same order, and `page` names
 * that base page.
 *
 * @category models
 */
export interface HmmPfn {
  readonly valid: boolean
  readonly write: boolean
  readonly error: boolean
  readonly order: number
  readonly page: PageRef | undefined
}

/**
 * An entry for a page that is not present (not `HMM_PFN_VALID`).
 *
 * @category constants
 */
export const NOT_VALID: HmmPfn = { valid: false, write: false, error: false, order: 0, page: undefined }

/**
 * An entry for a present page.
 *
 * @category functions
 */
export const valid = (page: PageRef, write: boolean, order: number): HmmPfn => ({
  valid: true,
  write,
  error: false,
  order,
  page
})
