/**
 * `Hmm`: `hmm_range_fault` (kernel-semantics §8) and `make_device_exclusive`
 * (kernel-semantics §11.17).
 *
 * @since 0.1.0
 */
import type { Now } from "../domain/Now.ts"
import { Context, type Effect } from "effect"
import type { BadAddress, Busy, InvalidArgument, PermissionDenied } from "../domain/Errors.ts"
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
  /**
   * Fast path of {@link rangeFault} (issue #16, `src/domain/Now.ts`): the walk done in the calling step
   * when it needs no migration back to RAM, no COW break, no device-exclusive revocation, meets no error
   * and passes no schedule point; else `NOT_NOW` with nothing changed. Caller holds the mmap read lock
   * (`Mm.readNow`). Absent on machines that cannot answer synchronously.
   */
  readonly rangeFaultNow?: (r: HmmRange) => Now<ReadonlyArray<HmmPfn>>
  /**
   * `make_device_exclusive(mm, addr, owner)` for every page of the page-aligned
   * window `[start, end)`, in address order, stopping at the first error (as
   * `lib/test_hmm.c`'s `dmirror_exclusive` loops it; kernel-semantics §11.17).
   * Per page: the page is faulted in writable (`get_user_page_vma_remote` with
   * `FOLL_WRITE | FOLL_SPLIT_PMD`: a device-exclusive entry already there is
   * revoked first, a device-private page migrates back, COW breaks, a THP
   * mapping splits); then an EXCLUSIVE invalidation over the page whose
   * `owner` is `owner` (so the caller's own notifier callback can recognise
   * and skip it) replaces the PTE with a device-exclusive entry. Any later CPU
   * touch of the page — read or write, and `rangeFault` with `fault` — revokes
   * it: an EXCLUSIVE invalidation with no owner (every notifier, the
   * caller's included), then the normal PTE is back and the device must take
   * it again. mprotect leaves the entry in place (6.15+); munmap / madvise
   * drop it. Caller holds the mmap read lock.
   *
   * Errors: malformed window → `InvalidArgument`; no VMA, PROT_NONE /
   * VM_PFNMAP or a VMA without write permission (GUP's EFAULT) or an exited
   * address space → `BadAddress`; a page that is not an anonymous folio
   * (shared / shmem / hugetlb mappings; Linux's EOPNOTSUPP) → `InvalidArgument`
   * saying so; the page changed between the fault and the replacement (the
   * kernel's folio-lock / second-walk EBUSY) → `Busy`. Pages done before the
   * error stay device-exclusive. The native machine has no such call (its
   * helper cannot reach the kernel's `make_device_exclusive`):
   * `InvalidArgument` saying so.
   */
  readonly makeDeviceExclusive: (start: number, end: number, owner: string) => Effect.Effect<void, BadAddress | Busy | InvalidArgument>
}>()("gpusvm/Hmm") {}
