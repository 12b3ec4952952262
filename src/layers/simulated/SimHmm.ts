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
 * The caller holds the mmap read lock (`Mm.withReadLock`), as in the kernel.
 *
 * @since 0.1.0
 */
import { Effect } from "effect"
import { BadAddress, type Busy, type PermissionDenied } from "../../domain/Errors.ts"
import type { HmmPfn } from "../../domain/HmmPfn.ts"
import { Hmm, type HmmRange } from "../../services/Hmm.ts"
import { checkHmmFault, hmmPrologue, movedDuringWalk } from "../common/HmmPrologue.ts"
import { cowExtent, hmmWalk, migrateToRam } from "./CpuFault.ts"
import type { MachineState } from "./MachineState.ts"

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

  return Hmm.of({ rangeFault })
}
