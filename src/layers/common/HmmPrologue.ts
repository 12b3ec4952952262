/**
 * The part of `hmm_range_fault` (kernel-semantics §8) both machines' `Hmm`
 * services share: what happens before the walk and the sequence check after
 * it. The walks themselves differ (the simulated page table vs
 * `MADV_POPULATE_*` + `/proc/<pid>/pagemap`) and stay in `SimHmm` / `NativeHmm`.
 *
 * Before the walk, in order: a pending `hmmBusy` injection → `Busy`; a
 * malformed window → `BadAddress` naming the argument; an exited address space
 * → `BadAddress` (the kernel's `mmget_not_zero` failing, `-EFAULT`); a
 * notifier sequence that already moved → `Busy` (`mmu_interval_check_retry`,
 * `-EBUSY`, before any page is walked). With `fault`, the VMA checks of the
 * window ({@link checkHmmFault}). After the walk: a moved sequence → `Busy`.
 *
 * Synchronous and lock-free; the caller holds the mmap read lock, as in the kernel.
 *
 * @since 0.2.0
 */
import { ADDRESS_LIMIT, isAddress, PAGE_SIZE } from "../../domain/Address.ts"
import { BadAddress, Busy, PermissionDenied } from "../../domain/Errors.ts"
import type { NotifierHandle } from "../../domain/NotifierHandle.ts"
import type { Vma } from "../../domain/Vma.ts"
import type { HmmRange } from "../../services/Hmm.ts"
import { type VmaCheck, vmaCheck } from "./CpuArgs.ts"

/**
 * What the prologue reads of a machine: the injection counter (decremented when
 * it fires), liveness of the address space, and the notifiers' sequences.
 *
 * @category models
 * @since 0.2.0
 */
export interface HmmMachine {
  readonly inject: { hmmBusy: number }
  readonly alive: boolean
  readonly notifiers: { readonly moved: (h: NotifierHandle, seq: number) => boolean }
}

/**
 * The `Busy` of `hmm_range_fault` over `r`, `why` naming the cause.
 *
 * @category constructors
 * @since 0.2.0
 */
export const hmmBusy = (r: HmmRange, why: string): Busy => new Busy({ reason: `hmm_range_fault: ${why}`, addr: r.start })

/**
 * Validates the window and notifier of `r` (page-aligned `[start, end)` below
 * 2^53, a notifier handle); a `BadAddress` naming the argument, else `undefined`.
 *
 * @category validation
 * @since 0.2.0
 */
export const checkHmmRange = (r: HmmRange): BadAddress | undefined => {
  if (typeof r !== "object" || r === null) return new BadAddress({ reason: "hmm_range_fault: range must be an object" })
  if (!isAddress(r.start) || r.start % PAGE_SIZE !== 0) {
    return new BadAddress({ reason: "hmm_range_fault: start is not a page-aligned address" })
  }
  if (!Number.isSafeInteger(r.end) || r.end <= r.start || r.end % PAGE_SIZE !== 0 || r.end > ADDRESS_LIMIT) {
    return new BadAddress({ reason: "hmm_range_fault: end must be a page-aligned address above start", addr: r.start })
  }
  if (typeof r.notifier !== "object" || r.notifier === null) {
    return new BadAddress({ reason: "hmm_range_fault: notifier is not a handle", addr: r.start })
  }
  return undefined
}

/**
 * Everything `hmm_range_fault` checks before walking (module doc, in that
 * order): the error to return, or `undefined` to walk. Consumes one pending
 * `hmmBusy` injection when it fires.
 *
 * @category validation
 * @since 0.2.0
 */
export const hmmPrologue = (st: HmmMachine, r: HmmRange): Busy | BadAddress | undefined => {
  if (st.inject.hmmBusy > 0) {
    st.inject.hmmBusy--
    return hmmBusy(r, "injected EBUSY")
  }
  const argErr = checkHmmRange(r)
  if (argErr !== undefined) return argErr
  if (!st.alive) return new BadAddress({ reason: "hmm_range_fault: the address space has exited", addr: r.start })
  if (st.notifiers.moved(r.notifier, r.notifierSeq)) return hmmBusy(r, "notifier sequence moved before the walk")
  return undefined
}

/**
 * The check after the walk: `Busy` when the caller's notifier sequence moved
 * during it (the kernel's walk restarts and `mmu_interval_check_retry` ends it
 * with `-EBUSY`), else `undefined`.
 *
 * @category validation
 * @since 0.2.0
 */
export const movedDuringWalk = (st: HmmMachine, r: HmmRange): Busy | undefined =>
  st.notifiers.moved(r.notifier, r.notifierSeq) ? hmmBusy(r, "notifier sequence moved during the walk") : undefined

/** What {@link checkHmmFault} reads of a VMA. */
type HmmVma = Pick<Vma, "start" | "end" | "prot" | "kind">

/**
 * The checks `hmm_range_fault` makes with FAULT asked, over the VMAs
 * intersecting `[start, end)` in address order (`hmm_vma_walk_test` /
 * `hmm_vma_fault`): a hole, a PROT_NONE or `special` (VM_PFNMAP / VM_IO) VMA
 * is `BadAddress` (`-EFAULT`); with WRITE, a VMA without write permission is
 * `PermissionDenied` (`-EPERM`). The first failing address is the error's
 * `addr` (kernel-semantics §11.5: the walk stops there).
 *
 * @category validation
 * @since 0.2.0
 */
export const checkHmmFault: VmaCheck<HmmVma> = (() => {
  const refuseRead = (v: Pick<Vma, "prot" | "kind">, at: number): BadAddress | undefined => {
    if (!v.prot.read) return new BadAddress({ reason: "hmm_range_fault: VMA not readable (PROT_NONE)", addr: at })
    if (v.kind === "special") return new BadAddress({ reason: "hmm_range_fault: VM_PFNMAP/VM_IO VMA", addr: at })
    return undefined
  }
  return vmaCheck<HmmVma>(
    (at) => new BadAddress({ reason: "hmm_range_fault: no VMA", addr: at }),
    refuseRead,
    (v, at) => refuseRead(v, at) ?? (v.prot.write ? undefined : new PermissionDenied({ reason: "hmm_range_fault: write to a read-only VMA", addr: at }))
  )
})()
