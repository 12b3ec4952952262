/**
 * The simulated `Hmm` service: `hmm_range_fault` (kernel-semantics §8).
 *
 * In order: a schedule yield point; the shared prologue
 * (`layers/common/HmmPrologue.ts`: a pending `hmmBusy` injection → `Busy`;
 * malformed window or exited address space → `BadAddress`, the reason naming
 * the argument; notifier already moved → `Busy`). With `fault` the walk goes
 * in address order (kernel-semantics §11.5): every page must lie in a
 * readable, non-`special` VMA (`BadAddress` otherwise) and, with `write`, a
 * writable one (`PermissionDenied`); the first page that does not ends the
 * walk with that error, but everything done to the pages below it stands
 * (faulted in, COW broken, migrated back to RAM; a `Busy` from a moved
 * sequence takes precedence, as the kernel's restarted walk returns `EBUSY`
 * before it reaches the error). Device-private pages not owned
 * by `devicePrivateOwner` (and, with `write`, read-only ones it owns) migrate
 * back through the `cpuTouchedDevicePage` hook (`SimPagemap.ts`; a MIGRATE
 * invalidation, so the call then ends in `Busy` and the retry sees system
 * pages); present read-only pages that need a
 * COW copy raise a CLEAR invalidation first (like `wp_page_copy` in the
 * kernel), which moves the sequence of overlapping notifiers — so, like the
 * kernel, the call then ends in `Busy` and the caller's retry succeeds. Then
 * one synchronous walk faults pages in and builds the entries: `order` is 9
 * for every page of an intact 2 MiB mapping. Without `fault` nothing changes:
 * missing pages are not valid, and holes / PROT_NONE / `special` pages are
 * error entries (`HMM_PFN_ERROR`, as the kernel's `hmm_vma_walk_hole` does
 * without `HMM_PFN_REQ_FAULT`). `write` without `fault` asks nothing (the
 * kernel ignores REQ_WRITE without REQ_FAULT). Finally, if the notifier's
 * sequence moved during the walk: `Busy`.
 *
 * `makeDeviceExclusive` (kernel-semantics §11.17) is `make_device_exclusive`
 * per page: see the service's contract (`services/Hmm.ts`). A device-exclusive
 * entry met by `rangeFault` with `fault` is revoked first (EXCLUSIVE, no
 * owner), so that call ends in `Busy` and the retry sees the normal page;
 * without `fault` it is reported not valid.
 *
 * The caller holds the mmap read lock (`Mm.withReadLock`), as in the kernel.
 *
 * @since 0.1.0
 */
import { Effect } from "effect"
import { isWindow, PAGE_SIZE } from "../../domain/Address.ts"
import { BadAddress, Busy, InvalidArgument, type PermissionDenied } from "../../domain/Errors.ts"
import type { HmmPfn } from "../../domain/HmmPfn.ts"
import { Hmm, type HmmRange } from "../../services/Hmm.ts"
import { NOT_NOW, type Now, withNow } from "../../domain/Now.ts"
import { checkHmmFault, checkHmmRange, hmmPrologue, movedDuringWalk } from "../common/HmmPrologue.ts"
import { cowExtent, faultPage, hasExclusive, hmmWalk, migrateToRam, revokeExclusive, wantsMigrateToRam } from "./CpuFault.ts"
import type { MachineState } from "./MachineState.ts"
import { vpnOf } from "./PageTable.ts"

const anyDevicePage = (): boolean => true

/**
 * Builds the `Hmm` service of machine `st`.
 *
 * @category functions
 */
export const makeHmm = (st: MachineState): Hmm["Service"] => {
  const point = st.schedule.at("hmm")
  const notifiers = st.notifiers

  /**
   * Device-private entries of the window not owned by `devicePrivateOwner`
   * (or owned but read-only while `write` is asked) go back to RAM through the
   * `migrate_to_ram` hook (`do_swap_page` → `dev_pagemap_ops.migrate_to_ram`).
   */
  const migrateForeign = (r: HmmRange): Effect.Effect<void, BadAddress> =>
    migrateToRam(st, r.start, r.end, (pte) => pte.owner !== r.devicePrivateOwner || (r.write && !pte.writable), "hmm_range_fault: ")

  const rangeFault = Effect.fnUntraced(function*(
    r: HmmRange
  ): Effect.fn.Return<ReadonlyArray<HmmPfn>, Busy | BadAddress | PermissionDenied> {
    // a void point (no schedule, no explorer) never yields: skipped, one step less (SeededYields.afterPoint)
    if (point !== Effect.void) yield* point
    const early = hmmPrologue(st, r)
    if (early !== undefined) return yield* early
    if (!r.fault) {
      const out = hmmWalk(st, r.start, r.end, false, false, r.devicePrivateOwner)
      const moved = movedDuringWalk(st, r)
      if (moved !== undefined) return yield* moved
      return out
    }
    // kernel-semantics §11.5: the walk goes in address order and what it did before an error stands. The
    // first error (hole, PROT_NONE / VM_PFNMAP VMA, write to a read-only VMA) ends the walk at `stop`; every
    // page below it is processed first (device pages migrated back, COW broken, pages faulted in) and stays so.
    const err = checkHmmFault(st.vmas.intersecting(r.start, r.end), r.start, r.end, r.write)
    const stop = err === undefined ? r.end : Math.max(r.start, err.addr ?? r.start)
    if (stop > r.start) {
      const head: HmmRange = stop === r.end ? r : { ...r, end: stop }
      // §11.17 hmm_vma_handle_pte: a device-exclusive entry with fault asked is `goto fault` → do_swap_page →
      // remove_device_exclusive_entry (EXCLUSIVE, no owner: the sequence moves, so this call ends Busy).
      if (st.exclusivePtes > 0) yield* revokeExclusive(st, head.start, head.end)
      if (st.devicePtes > 0) yield* migrateForeign(head)
      if (r.write) {
        const cow = cowExtent(st, r.start, stop)
        if (cow !== undefined) yield* notifiers.invalidate(cow[0], cow[1], "clear", Effect.void)
      }
    }
    const out = stop > r.start ? hmmWalk(st, r.start, stop, true, r.write, r.devicePrivateOwner) : []
    // A migration or COW break above moved the caller's sequence: EBUSY first (the kernel's walk restarts
    // and `mmu_interval_check_retry` ends it), as hmm_range_fault does before reaching the error.
    const moved = movedDuringWalk(st, r)
    if (moved !== undefined) return yield* moved
    if (err !== undefined) return yield* err
    return out
  })

  /**
   * {@link rangeFault} in the calling step (issue #16): only where it would pass no point, consume no
   * injection, meet no error or moved sequence, revoke no device-exclusive entry, migrate nothing back to
   * RAM and break no COW — the walk alone, the same `hmmWalk` the Effect version ends with.
   */
  const rangeFaultNow = (r: HmmRange): Now<ReadonlyArray<HmmPfn>> => {
    if (point !== Effect.void || st.inject.hmmBusy > 0 || checkHmmRange(r) !== undefined || !st.alive) return NOT_NOW
    if (notifiers.moved(r.notifier, r.notifierSeq)) return NOT_NOW
    if (r.fault) {
      if (checkHmmFault(st.vmas.intersecting(r.start, r.end), r.start, r.end, r.write) !== undefined) return NOT_NOW
      if (hasExclusive(st, r.start, r.end)) return NOT_NOW
      if (wantsMigrateToRam(st, r.start, r.end, (pte) => pte.owner !== r.devicePrivateOwner || (r.write && !pte.writable))) return NOT_NOW
      if (r.write && cowExtent(st, r.start, r.end) !== undefined) return NOT_NOW
    }
    const out = hmmWalk(st, r.start, r.end, r.fault, r.fault && r.write, r.devicePrivateOwner)
    // as the Effect version's last check; a walk that moved the sequence is redone there (idempotent)
    return notifiers.moved(r.notifier, r.notifierSeq) ? NOT_NOW : out
  }

  /**
   * `make_device_exclusive` of the page at `addr` (kernel-semantics §11.17, mm/rmap.c): GUP with
   * `FOLL_WRITE | FOLL_SPLIT_PMD`, the anonymous-folio check, then the EXCLUSIVE invalidation owned by
   * `owner` inside which the still-present, writable PTE becomes a device-exclusive entry.
   */
  const exclusiveOne = Effect.fnUntraced(function*(addr: number, owner: string) {
    const vma = st.vmas.find(addr)
    // GUP's check_vma_flags with FOLL_WRITE: no VMA, VM_PFNMAP / PROT_NONE, or no VM_WRITE → -EFAULT
    if (vma === undefined || vma.kind === "special" || !vma.prot.write) {
      return yield* new BadAddress({ reason: "make_device_exclusive: no writable VMA at the address (GUP FOLL_WRITE)", addr })
    }
    const vpn = vpnOf(addr)
    // GUP faults the page in for writing: an entry some device holds exclusively is revoked first (a
    // second device taking it), a device-private page migrates back, COW breaks (CLEAR), THP splits.
    yield* revokeExclusive(st, addr, addr + PAGE_SIZE)
    if (st.devicePtes > 0) yield* migrateToRam(st, addr, addr + PAGE_SIZE, anyDevicePage, "make_device_exclusive: ")
    const cow = cowExtent(st, addr, addr + PAGE_SIZE)
    const fault = Effect.sync(() => {
      const v = st.vmas.find(addr)
      if (v === undefined) return
      faultPage(st, v, vpn, true)
      st.pt.splitBlock(vpn) // FOLL_SPLIT_PMD
    })
    yield* cow === undefined ? fault : notifiers.invalidate(cow[0], cow[1], "clear", fault)
    // `!folio_test_anon(folio) || folio_test_hugetlb(folio)` → -EOPNOTSUPP (a private file page is anonymous after the COW above)
    if (vma.shared || vma.kind === "hugetlb") {
      return yield* new InvalidArgument({
        reason: `make_device_exclusive: not an anonymous folio (a ${vma.shared ? "shared " : ""}${vma.kind} mapping; Linux's EOPNOTSUPP)`,
        addr
      })
    }
    const done = yield* notifiers.invalidate(
      addr,
      addr + PAGE_SIZE,
      "exclusive",
      Effect.sync(() => {
        // the second walk (folio_walk_start): still the same present, writable, PTE-mapped page?
        const pte = st.pt.get(vpn)
        if (pte === undefined || pte.kind !== "system" || !pte.writable || pte.order !== 0) return false
        st.pt.set(vpn, { kind: "exclusive", pfn: pte.pfn, owner, writable: true, order: 0 })
        st.exclusivePtes++
        return true
      }),
      owner
    )
    if (!done) return yield* new Busy({ reason: "make_device_exclusive: the page changed under the call", addr })
  })

  const makeDeviceExclusive = Effect.fnUntraced(function*(
    start: number,
    end: number,
    owner: string
  ): Effect.fn.Return<void, BadAddress | Busy | InvalidArgument> {
    if (point !== Effect.void) yield* point
    if (!isWindow(start, end) || start % PAGE_SIZE !== 0 || end % PAGE_SIZE !== 0) {
      return yield* new InvalidArgument({ reason: "make_device_exclusive: [start, end) must be a non-empty page-aligned window", addr: start })
    }
    if (!st.alive) return yield* new BadAddress({ reason: "make_device_exclusive: the address space has exited", addr: start })
    for (let a = start; a < end; a += PAGE_SIZE) yield* exclusiveOne(a, owner)
  })

  return withNow(Hmm.of({ rangeFault, makeDeviceExclusive }), { rangeFaultNow })
}
