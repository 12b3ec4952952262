/**
 * `Hmm`: `hmm_range_fault` (kernel-semantics §8).
 *
 * @since 0.1.0
 */
import { Context, type Effect } from "effect"
import type { BadAddress, Busy, PermissionDenied } from "../domain/Errors.ts"
import type { HmmPfn } from "../domain/HmmPfn.ts"
import type { NotifierHandle } from "../domain/NotifierHandle.ts"

/**
 * `struct hmm_range`: what to walk and how.
 *
 * @category models
 */
export interface HmmRange {
  /** The notifier whose sequence guards the walk. */
  readonly notifier: NotifierHandle
  /** The sequence from `readBegin`; if it moves during the walk the result is `Busy`. */
  readonly notifierSeq: number
  /** Page-aligned window `[start, end)`. */
  readonly start: number
  readonly end: number
  /** `HMM_PFN_REQ_FAULT`: fault missing pages in (else report them not valid). */
  readonly fault: boolean
  /** `HMM_PFN_REQ_WRITE`: fault for writing (breaks COW, `EPERM` on read-only VMAs). */
  readonly write: boolean
  /** `dev_private_owner`: device-private pages of this owner are returned as is; others migrate back (with fault). */
  readonly devicePrivateOwner?: string | undefined
}

/**
 * Heterogeneous memory management: the CPU page-table walk GPU SVM mirrors from.
 *
 * @category services
 */
export class Hmm extends Context.Service<Hmm, {
  /**
   * `hmm_range_fault(range)`: one entry per 4 KiB page. Caller holds the mmap
   * read lock. Errors: no VMA / PROT_NONE → `BadAddress`; write on a read-only
   * VMA → `PermissionDenied`; notifier moved → `Busy`. The walk goes in address
   * order: what it did below the first error (pages faulted in, COW broken,
   * device pages migrated back to RAM) stands (kernel-semantics §11.5).
   */
  readonly rangeFault: (r: HmmRange) => Effect.Effect<ReadonlyArray<HmmPfn>, Busy | BadAddress | PermissionDenied>
}>()("gpusvm/Hmm") {}
