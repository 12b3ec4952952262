/**
 * `fork(2)` of a simulated process (kernel-semantics §11.17): `dup_mmap` +
 * `copy_page_range` into a new process of the same machine.
 *
 * What Linux does, and this file follows:
 * - the parent's mmap lock is held for writing for the whole copy
 *   (`dup_mmap`: `mmap_write_lock_killable(oldmm)`);
 * - every VMA is copied one to one (no merging); `VM_LOCKED` is not inherited
 *   (`dup_mmap` clears `VM_LOCKED_MASK` in the child: mlock(2) "memory locks
 *   are not inherited by a child created via fork");
 * - shared mappings (shared anonymous / shmem, shared file, shared hugetlb)
 *   copy no page-table entries (`vma_needs_copy` is false): the child faults
 *   them in from the same object, so both keep seeing each other's writes;
 * - a private mapping is a COW mapping (`is_cow_mapping`): the parent's
 *   notifiers get one `MMU_NOTIFY_PROTECTION_PAGE` invalidation over the VMA
 *   (`copy_page_range` → `mmu_notifier_range_init(PROTECTION_PAGE, …)`), and
 *   inside it every present entry is write-protected in the parent and copied
 *   read-only into the child (`copy_present_pte` / `copy_huge_pmd`: the frame
 *   gains a mapping, so a later write by either side breaks the COW with a
 *   CLEAR — `CpuFault.needsCopy`);
 * - a device-exclusive entry is restored to a present PTE first
 *   (`try_restore_exclusive_pte`, HMM selftest `exclusive_cow`) and then
 *   copied as any COW page;
 * - a device-private entry of a COW mapping is made read-only in the parent
 *   (`copy_nonpresent_pte`: `make_readable_device_private_entry`), so a parent
 *   write goes through `migrate_to_ram` and breaks the COW back to RAM.
 *
 * One documented difference: Linux maps the same device-private page
 * read-only in the child too (one device page, two mappings) and migrates it
 * back for both on the first CPU touch. Here the child's copy of a
 * device-private page is materialised at fork in a fresh system frame (the
 * same bytes, read-only, private to the child): the bytes either side sees
 * and the parent's behaviour are the same; the child holds no device memory.
 *
 * Locking: parent's mmap write lock; the child is not visible to anyone
 * until `fork` returns. Errors: none beyond the caller's `alive` check (the
 * machine has no memory limit).
 *
 * @since 0.4.0
 */
import { Effect } from "effect"
import { PAGE_SIZE } from "../../domain/Address.ts"
import { restoreExclusive } from "./CpuFault.ts"
import { ZERO_PFN } from "./Frames.ts"
import type { MachineState } from "./MachineState.ts"
import { type Pte, vpnOf } from "./PageTable.ts"
import type { VmaRec } from "./Vmas.ts"

/** The child's entry for the parent's `pte` (write-protecting the parent's where needed). */
const copyEntry = (parent: MachineState, child: MachineState, vpn: number, entry: Pte): void => {
  let pte = entry
  if (pte.kind === "exclusive") {
    // copy_nonpresent_pte → try_restore_exclusive_pte (HMM selftest exclusive_cow): the device-exclusive
    // entry becomes a present PTE again (the device was invalidated by the PROTECTION_PAGE already), then
    // it is copied as any COW page
    restoreExclusive(parent, vpn, pte)
    const restored = parent.pt.get(vpn)
    if (restored === undefined) return
    pte = restored
  }
  if (pte.kind === "exclusive") return
  if (pte.kind === "system") {
    pte.writable = false
    if (pte.pfn !== ZERO_PFN) {
      const f = parent.frames.frameOf(pte.pfn)
      if (f !== undefined) {
        f.mapcount++
        if (f.order > 0) f.forked = true
      }
    }
    child.pt.set(vpn, { kind: "system", pfn: pte.pfn, writable: false, order: pte.order })
    return
  }
  // A device-private entry (see the file comment): read-only in the parent, a system copy in the child.
  pte.writable = false
  const f = child.frames.alloc(0)
  f.mapcount++
  const bytes = parent.devmem.of(pte)?.bytes.get(pte.devicePfn)
  if (bytes !== undefined) child.frames.write(f.head, 0, bytes, 0, PAGE_SIZE)
  child.pt.set(vpn, { kind: "system", pfn: f.head, writable: false, order: 0 })
}

/** `copy_page_range` of one private VMA (inside the PROTECTION_PAGE invalidation). */
const copyPrivate = (parent: MachineState, child: MachineState, v: VmaRec): void => {
  const lo = vpnOf(v.start)
  const hi = vpnOf(v.end)
  parent.pt.forEachIn(lo, hi, (vpn, pte) => copyEntry(parent, child, vpn, pte))
}

/**
 * `fork(2)`: a new process on `parent`'s machine with a copy of its address
 * space (see the file comment). The caller checked the parent is alive and
 * holds nothing; this takes the parent's mmap write lock.
 *
 * @category functions
 * @since 0.4.0
 */
export const forkProcess = (parent: MachineState): Effect.Effect<MachineState> =>
  parent.lock.withWrite(Effect.suspend(() => {
    const child = parent.spawn()
    const cow: Array<VmaRec> = []
    for (const v of parent.vmas.list) {
      const { locked: _locked, ...rest } = v
      child.vmas.list.push({ ...rest }) // one to one, in order: dup_mmap merges nothing
      if (!v.shared) cow.push(v)
    }
    return Effect.as(
      Effect.forEach(cow, (v) =>
        parent.notifiers.invalidate(v.start, v.end, "protection-page", Effect.sync(() => copyPrivate(parent, child, v))), {
        discard: true
      }),
      child
    )
  }))
