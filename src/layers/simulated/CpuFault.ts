/**
 * Page faults and page-table teardown of the simulated address space: the
 * synchronous core shared by `Cpu` accesses and `hmm_range_fault`
 * (`handle_mm_fault`, `do_anonymous_page`, `do_read_fault`, `do_cow_fault`,
 * `do_wp_page`, `do_huge_pmd_anonymous_page`, `hugetlb_fault`,
 * `zap_page_range`).
 *
 * Fault policy by VMA:
 * - private anonymous (and `special`): a read fault maps the shared zero page
 *   read-only; a write fault maps a fresh zeroed frame; inside a 2 MiB-aligned
 *   block wholly within an anonymous VMA with no page of the block present,
 *   any fault maps a fresh 2 MiB frame as one PMD mapping (order 9, THP).
 * - hugetlb: any fault maps a 2 MiB frame (private: fresh; shared: the shmem
 *   object's), order 9.
 * - shared anonymous / shared file: the object's page, writable iff the VMA is.
 * - private file: a read maps the page-cache page read-only; a write copies it
 *   into a fresh anonymous frame (COW).
 * - a write to a present read-only entry in a writable VMA: reuse the frame if
 *   the process owns it exclusively (shared mapping, or private anonymous),
 *   else copy (zero page, page-cache page): the COW break. A copy changes the
 *   pfn, so callers raise a CLEAR invalidation over the pages
 *   {@link cowExtent} reports *before* calling {@link faultPage}.
 *
 * All functions are synchronous and assume validated input; callers hold the
 * mmap lock (read for faults, write for teardown).
 *
 * @since 0.1.0
 */
import { NOT_NOW, type Now } from "../../domain/Now.ts"
import { Effect } from "effect"
import { HUGE_PAGE_ORDER, HUGE_PAGE_SIZE, PAGE_SIZE } from "../../domain/Address.ts"
import { BadAddress } from "../../domain/Errors.ts"
import type { HmmPfn } from "../../domain/HmmPfn.ts"
import { NOT_VALID } from "../../domain/HmmPfn.ts"
import { ZERO_PFN } from "./Frames.ts"
import type { MachineState } from "./MachineState.ts"
import { type DevicePte, type ExclusivePte, HUGE_PAGES, type Pte, type SystemPte, vpnOf } from "./PageTable.ts"
import type { VmaRec } from "./Vmas.ts"
import type { DevAllocation } from "./Vram.ts"

/**
 * Does a write to present entry `pte` in `vma` have to copy (COW) rather than reuse?
 *
 * @category functions
 */
export const needsCopy = (st: MachineState, vma: VmaRec, pte: SystemPte): boolean => {
  if (pte.writable || vma.shared) return false
  if (pte.pfn === ZERO_PFN) return true
  const f = st.frames.frameOf(pte.pfn)
  if (f === undefined || f.cacheRef) return true
  // kernel-semantics §11.17: a KSM page is never reused (wp_can_reuse_anon_folio: folio_test_ksm → copy);
  // a frame fork shares with another address space is copied
  if (f.ksm === true) return true
  return f.order === 0 ? f.mapcount > 1 : f.forked === true
}

/**
 * The smallest window covering every page of `[start, end)` whose write fault
 * would copy (COW break), or `undefined`. Only pages of writable VMAs count.
 *
 * @category functions
 */
export const cowExtent = (st: MachineState, start: number, end: number): readonly [number, number] | undefined => {
  let lo = -1
  let hi = -1
  for (const v of st.vmas.intersecting(start, end)) {
    if (!v.prot.write || v.shared) continue
    const s = vpnOf(Math.max(start, v.start))
    const e = vpnOf(Math.min(end, v.end))
    st.pt.forEachIn(s, e, (vpn, pte) => {
      if (pte.kind === "system" && needsCopy(st, v, pte)) {
        // a hugetlb COW copies the whole huge page (hugetlb_wp)
        const [a, b] = v.kind === "hugetlb" ? [vpn - (vpn % HUGE_PAGES), vpn - (vpn % HUGE_PAGES) + HUGE_PAGES] : [vpn, vpn + 1]
        if (lo < 0 || a < lo) lo = a
        if (b > hi) hi = b
      }
    })
  }
  return lo < 0 ? undefined : [lo * PAGE_SIZE, hi * PAGE_SIZE]
}

/** Is the 2 MiB block of `vpn` eligible for a THP fault in `vma` (no page of it present)? */
const thpEligible = (st: MachineState, vma: VmaRec, vpn: number): boolean => {
  if (!st.thp || vma.kind !== "anonymous" || vma.shared) return false
  const head = vpn - (vpn % HUGE_PAGES)
  const start = head * PAGE_SIZE
  if (start < vma.start || start + HUGE_PAGE_SIZE > vma.end) return false
  for (let v = head; v < head + HUGE_PAGES; v++) if (st.pt.get(v) !== undefined || st.swap.has(v)) return false
  return true
}

/** Maps all 512 pages of the block of `vpn` to the compound frame whose head is `headPfn`, order 9. */
const mapHugeBlock = (st: MachineState, vpn: number, headPfn: number, writable: boolean): void => {
  const head = vpn - (vpn % HUGE_PAGES)
  const f = st.frames.frameOf(headPfn)!
  for (let i = 0; i < HUGE_PAGES; i++) {
    st.pt.set(head + i, { kind: "system", pfn: headPfn + i, writable, order: HUGE_PAGE_ORDER })
  }
  f.mapcount += HUGE_PAGES
}

/** Maps a fresh zeroed order-0 frame at `vpn`. */
const mapFresh = (st: MachineState, vpn: number, writable: boolean): SystemPte => {
  const f = st.frames.alloc(0)
  f.mapcount++
  const pte: SystemPte = { kind: "system", pfn: f.head, writable, order: 0 }
  st.pt.set(vpn, pte)
  return pte
}

/** The backing object of an object-backed VMA. */
const objectOf = (st: MachineState, vma: VmaRec) => st.cache.objects.get(vma.object)

/** Byte offset into `vma`'s object of page `vpn`. */
const objectOffset = (vma: VmaRec, vpn: number): number => vma.pgoff + (vpn * PAGE_SIZE - vma.start)

/**
 * `handle_mm_fault` for one page: makes `vpn` present (and writable if
 * `write`) according to the policy above, returning its entry. The caller
 * checked access rights and raised the COW invalidation where needed.
 *
 * @category functions
 */
export const faultPage = (st: MachineState, vma: VmaRec, vpn: number, write: boolean): Pte => {
  const pte = st.pt.get(vpn)
  if (pte !== undefined) {
    // A device-private entry is returned as is: its migration (the
    // `cpuTouchedDevicePage` hook) is the caller's job, before this step; so is
    // the revocation of a device-exclusive one (revokeExclusive, §11.17).
    if (pte.kind === "system" && write && !pte.writable) breakCow(st, vma, vpn, pte)
    return pte
  }
  const w = vma.prot.write
  // kernel-semantics §11.17: a swap entry left by reclaim (`KernelMoves.ts`) swaps in (`do_swap_page`)
  if (st.swap.size > 0 && st.swap.has(vpn)) return swapIn(st, vma, vpn)
  if (vma.kind === "hugetlb") {
    const head = vpn - (vpn % HUGE_PAGES)
    if (vma.shared) {
      const o = objectOf(st, vma)!
      const { frame } = st.cache.pfnAt(o, objectOffset(vma, head))
      mapHugeBlock(st, vpn, frame.head, w)
    } else {
      mapHugeBlock(st, vpn, st.frames.alloc(HUGE_PAGE_ORDER).head, w)
    }
    return st.pt.get(vpn)!
  }
  if (vma.shared) {
    const o = objectOf(st, vma)!
    const { frame, pfn } = st.cache.pfnAt(o, objectOffset(vma, vpn))
    frame.mapcount++
    const e: SystemPte = { kind: "system", pfn, writable: w, order: 0 }
    st.pt.set(vpn, e)
    return e
  }
  if (vma.kind === "file") {
    const o = objectOf(st, vma)!
    const { frame, pfn } = st.cache.pfnAt(o, objectOffset(vma, vpn))
    if (write) {
      const e = mapFresh(st, vpn, true)
      st.frames.copyPage(pfn, e.pfn)
      return e
    }
    frame.mapcount++
    const e: SystemPte = { kind: "system", pfn, writable: false, order: 0 }
    st.pt.set(vpn, e)
    return e
  }
  if (thpEligible(st, vma, vpn)) {
    mapHugeBlock(st, vpn, st.frames.alloc(HUGE_PAGE_ORDER).head, w)
    return st.pt.get(vpn)!
  }
  if (!write) {
    const e: SystemPte = { kind: "system", pfn: ZERO_PFN, writable: false, order: 0 }
    st.pt.set(vpn, e)
    return e
  }
  return mapFresh(st, vpn, true)
}

/**
 * `do_swap_page` for an anonymous swap entry: a NEW order-0 frame with the saved bytes, writable
 * iff the VMA is (the folio is exclusive: 6.x maps it writable on read faults too, `pte_mkwrite`
 * under `VM_WRITE`). No MMU notifier event (the entry was not present).
 */
const swapIn = (st: MachineState, vma: VmaRec, vpn: number): SystemPte => {
  const saved = st.swap.get(vpn)
  st.swap.delete(vpn)
  const e = mapFresh(st, vpn, vma.prot.write)
  if (saved !== undefined) st.frames.write(e.pfn, 0, saved, 0, PAGE_SIZE)
  return e
}

/** `do_wp_page`: reuse the frame (make the entry, or the whole intact 2 MiB block, writable) or copy it. */
const breakCow = (st: MachineState, vma: VmaRec, vpn: number, pte: SystemPte): void => {
  if (!needsCopy(st, vma, pte)) {
    if (pte.order === HUGE_PAGE_ORDER) {
      const head = vpn - (vpn % HUGE_PAGES)
      for (let v = head; v < head + HUGE_PAGES; v++) {
        const e = st.pt.get(v)
        if (e !== undefined) e.writable = true
      }
    } else {
      pte.writable = true
    }
    return
  }
  if (vma.kind === "hugetlb") return copyHugeBlock(st, vpn, pte)
  if (pte.order !== 0) st.pt.splitBlock(vpn)
  const old = pte.pfn
  const f = st.frames.alloc(0)
  f.mapcount++
  st.frames.copyPage(old, f.head)
  pte.pfn = f.head
  pte.writable = true
  pte.order = 0
  if (old !== ZERO_PFN) {
    const of = st.frames.frameOf(old)
    if (of !== undefined) st.frames.unmap(of)
  }
}

/** `hugetlb_wp` (kernel-semantics §11.17: a hugetlb page fork shared): the whole 2 MiB page is copied into a fresh huge frame. */
const copyHugeBlock = (st: MachineState, vpn: number, pte: SystemPte): void => {
  const head = vpn - (vpn % HUGE_PAGES)
  const oldHead = pte.pfn - (vpn - head)
  const f = st.frames.alloc(HUGE_PAGE_ORDER)
  for (let i = 0; i < HUGE_PAGES; i++) st.frames.copyPage(oldHead + i, f.head + i)
  const old = st.frames.frameOf(oldHead)
  for (let i = 0; i < HUGE_PAGES; i++) {
    const e = st.pt.get(head + i)
    if (e !== undefined && e.kind === "system") {
      e.pfn = f.head + i
      e.writable = true
      if (old !== undefined) st.frames.unmap(old)
    }
  }
  f.mapcount += HUGE_PAGES
}

/**
 * `zap_page_range`: removes every entry of `[start, end)` (page aligned),
 * dropping frame map counts (frames nothing else holds are freed and
 * poisoned). Huge mappings straddling the edges are split first.
 *
 * @category functions
 */
export const zapRange = (st: MachineState, start: number, end: number): void => {
  st.pt.splitAt(start)
  st.pt.splitAt(end)
  const doomed: Array<number> = []
  st.pt.forEachIn(vpnOf(start), vpnOf(end), (vpn, pte) => {
    doomed.push(vpn)
    // a device-exclusive entry holds its frame like a present one (§11.17: zap_nonpresent_ptes drops it)
    if (pte.kind === "system" || pte.kind === "exclusive") {
      if (pte.kind === "exclusive") st.exclusivePtes--
      if (pte.pfn !== ZERO_PFN) {
        const f = st.frames.frameOf(pte.pfn)
        if (f !== undefined) st.frames.unmap(f)
      }
    } else {
      // A device-private entry: its device page is freed (and the allocation's blocks with its last page).
      st.devicePtes--
      st.devmem.entryGone(pte)
    }
  })
  for (const v of doomed) st.pt.delete(v)
  // swap entries of the window go too (free_swap_and_cache), kernel-semantics §11.17
  if (st.swap.size > 0) for (const v of [...st.swap.keys()]) if (v >= vpnOf(start) && v < vpnOf(end)) st.swap.delete(v)
}

/**
 * The page-table and VMA part of `munmap`: zaps `[start, end)`, removes the
 * VMAs (splitting edge VMAs) and releases shmem objects no VMA refers to any
 * more. Raising the UNMAP invalidation is the caller's job.
 *
 * @category functions
 */
export const unmapRange = (st: MachineState, start: number, end: number): void => {
  zapRange(st, start, end)
  const removed = st.vmas.remove(start, end)
  releaseOrphans(st, removed)
}

/**
 * Releases the shmem objects of `removed` that no remaining VMA refers to.
 *
 * @category functions
 */
export const releaseOrphans = (st: MachineState, removed: ReadonlyArray<VmaRec>): void => {
  const ids = new Set<number>()
  for (const r of removed) {
    if (r.object !== 0 && st.cache.objects.get(r.object)?.kind === "shmem") ids.add(r.object)
  }
  releaseClosedBos(st, removed)
  if (ids.size === 0) return
  // kernel-semantics §11.17: another process (a fork child) may still map the object
  for (const p of st.world.processes) for (const r of p.vmas.list) ids.delete(r.object)
  for (const id of ids) st.cache.release(id)
}

/**
 * Does any VMA of any process of the machine still map allocation `alloc` (a BO mapping)?
 *
 * @category functions
 */
export const boMapped = (st: MachineState, alloc: DevAllocation): boolean => {
  for (const p of st.world.processes) for (const r of p.vmas.list) if (r.device?.alloc === alloc) return true
  return false
}

/**
 * The last CPU mapping of a closed buffer object went (`removed` held some): its device memory
 * is released (the VMA's reference on the GEM object was the last; kernel-semantics §11.17).
 * Synchronous; mmap write lock held.
 *
 * @category functions
 */
export const releaseClosedBos = (st: MachineState, removed: ReadonlyArray<VmaRec>): void => {
  for (const r of removed) {
    const d = r.device
    if (d === undefined || !d.vram.closedBos.has(d.alloc) || boMapped(st, d.alloc)) continue
    d.vram.closedBos.delete(d.alloc)
    d.vram.release(d.alloc)
  }
}

/**
 * An `HMM_PFN_ERROR` entry (hole or inaccessible VMA without FAULT).
 *
 * @category constants
 */
export const ERROR_ENTRY: HmmPfn = { valid: false, write: false, error: true, order: 0, page: undefined }

/**
 * The walk of `hmm_range_fault` (after `checkHmmFault` (common/HmmPrologue.ts) passed when
 * `fault`): one entry per page of `[start, end)`. With `fault`, missing pages
 * are faulted in (and made writable with `write`); without, missing pages are
 * not valid and holes / inaccessible VMAs are error entries. Device-private
 * entries owned by `owner` are reported as device pages; others are not valid
 * (the caller migrated them first when faulting).
 *
 * @category functions
 */
export const hmmWalk = (
  st: MachineState,
  start: number,
  end: number,
  fault: boolean,
  write: boolean,
  owner: string | undefined
): Array<HmmPfn> => {
  const n = (end - start) / PAGE_SIZE
  const out: Array<HmmPfn> = new Array(n)
  const base = vpnOf(start)
  let i = 0
  for (const v of st.vmas.intersecting(start, end)) {
    const vs = vpnOf(Math.max(start, v.start)) - base
    for (; i < vs; i++) out[i] = ERROR_ENTRY
    const ve = vpnOf(Math.min(end, v.end)) - base
    if (!v.prot.read || v.kind === "special") {
      for (; i < ve; i++) out[i] = ERROR_ENTRY
      continue
    }
    for (; i < ve; i++) {
      const vpn = base + i
      const pte = fault ? faultPage(st, v, vpn, write) : st.pt.get(vpn)
      if (pte === undefined) {
        out[i] = NOT_VALID
      } else if (pte.kind === "system") {
        out[i] = { valid: true, write: pte.writable, error: false, order: pte.order, page: { _tag: "System", pfn: pte.pfn } }
      } else if (pte.kind === "exclusive") {
        // §11.17 hmm_vma_handle_pte: a device-exclusive entry is "0" (not valid) when no fault is asked;
        // with fault the caller revoked it first (revokeExclusive), like the kernel's `goto fault`.
        out[i] = NOT_VALID
      } else if (owner !== undefined && pte.owner === owner) {
        out[i] = {
          valid: true,
          write: pte.writable,
          error: false,
          order: pte.order,
          page: { _tag: "Device", pagemap: pte.pagemap, devicePfn: pte.devicePfn, allocation: pte.allocation, owner: pte.owner }
        }
      } else {
        out[i] = NOT_VALID
      }
    }
  }
  for (; i < n; i++) out[i] = ERROR_ENTRY
  return out
}

/**
 * `do_swap_page` → `dev_pagemap_ops.migrate_to_ram` for the device-private
 * entries of `[start, end)` that `wanted` selects, through the machine's
 * `cpuTouchedDevicePage` hook (`SimPagemap.ts`), mmap read lock held: the
 * first call for an allocation migrates its pages of the VMA back (after its
 * timeslice), later calls for entries already replaced return at once. No
 * hook registered: `BadAddress` (`call` prefixes the reason).
 *
 * @category functions
 */
export const migrateToRam = (
  st: MachineState,
  start: number,
  end: number,
  wanted: (pte: DevicePte) => boolean,
  call: string
): Effect.Effect<void, BadAddress> =>
  Effect.suspend(() => {
    if (st.devicePtes === 0) return Effect.void
    const hits: Array<[number, Pte]> = []
    st.pt.forEachIn(vpnOf(start), vpnOf(end), (vpn, pte) => {
      if (pte.kind === "device" && wanted(pte)) hits.push([vpn, pte])
    })
    return Effect.forEach(hits, ([vpn, pte]) => {
      const hook = st.hooks.cpuTouchedDevicePage
      if (pte.kind !== "device") return Effect.void
      return hook === undefined
        ? Effect.fail(new BadAddress({ reason: `${call}device-private page and no migrate_to_ram hook`, addr: vpn * PAGE_SIZE }))
        : hook(vpn * PAGE_SIZE, pte)
    }, { discard: true })
  })

/**
 * {@link migrateToRam} in the calling step (issue #16): every wanted device-private entry of
 * `[start, end)` migrated back through the `cpuTouchedDevicePageNow` hook, or `NOT_NOW` as soon as one
 * cannot be (those before it stay migrated, as the Effect version, run next, would leave them).
 *
 * @category functions
 */
export const migrateToRamNow = (st: MachineState, start: number, end: number, wanted: (pte: DevicePte) => boolean): Now<void> => {
  if (st.devicePtes === 0) return
  const hook = st.hooks.cpuTouchedDevicePageNow
  if (hook === undefined) return NOT_NOW
  const hits: Array<[number, DevicePte]> = []
  st.pt.forEachIn(vpnOf(start), vpnOf(end), (vpn, pte) => {
    if (pte.kind === "device" && wanted(pte)) hits.push([vpn, pte])
  })
  for (const [vpn, pte] of hits) if (hook(vpn * PAGE_SIZE, pte) === NOT_NOW) return NOT_NOW
}

/**
 * Would {@link migrateToRam} over `[start, end)` with `wanted` move anything (a device-private entry it
 * wants)? The synchronous check of the HMM fast path (issue #16).
 *
 * @category functions
 */
export const wantsMigrateToRam = (st: MachineState, start: number, end: number, wanted: (pte: DevicePte) => boolean): boolean => {
  if (st.devicePtes === 0) return false
  let found = false
  st.pt.forEachIn(vpnOf(start), vpnOf(end), (_vpn, pte) => {
    if (pte.kind === "device" && wanted(pte)) found = true
  })
  return found
}

/**
 * Does `[start, end)` hold a device-exclusive entry (kernel-semantics §11.17)?
 *
 * @category functions
 */
export const hasExclusive = (st: MachineState, start: number, end: number): boolean => {
  if (st.exclusivePtes === 0) return false
  let found = false
  st.pt.forEachIn(vpnOf(start), vpnOf(end), (_vpn, pte) => {
    if (pte.kind === "exclusive") found = true
  })
  return found
}

/**
 * `restore_exclusive_pte` of the entry at `vpn` if it is still the
 * device-exclusive entry `pte` (the kernel's `pte_same` check): a present PTE
 * of the same frame, writable iff the VMA is (`can_change_pte_writable`, 6.15+),
 * order 0. Synchronous; mmap lock held.
 *
 * @category functions
 */
export const restoreExclusive = (st: MachineState, vpn: number, pte: ExclusivePte): void => {
  if (st.pt.get(vpn) !== pte) return
  const vma = st.vmas.find(vpn * PAGE_SIZE)
  st.pt.set(vpn, { kind: "system", pfn: pte.pfn, writable: vma !== undefined && vma.prot.write, order: 0 })
  st.exclusivePtes--
}

/**
 * `do_swap_page` → `remove_device_exclusive_entry` for every device-exclusive
 * entry of `[start, end)` (kernel-semantics §11.17), mmap read lock held: per
 * page, an EXCLUSIVE invalidation over that page with no owner (so every
 * notifier, the device's own included, drops its mapping: the device loses its
 * atomic access), inside which the normal PTE is restored. An entry another
 * fault restored meanwhile is left alone. The caller re-checks and repeats
 * (the kernel's fault retry) before touching the pages.
 *
 * @category functions
 */
export const revokeExclusive = (st: MachineState, start: number, end: number): Effect.Effect<void> =>
  Effect.suspend(() => {
    if (st.exclusivePtes === 0) return Effect.void
    const hits: Array<[number, ExclusivePte]> = []
    st.pt.forEachIn(vpnOf(start), vpnOf(end), (vpn, pte) => {
      if (pte.kind === "exclusive") hits.push([vpn, pte])
    })
    return Effect.forEach(hits, ([vpn, pte]) =>
      st.notifiers.invalidate(vpn * PAGE_SIZE, (vpn + 1) * PAGE_SIZE, "exclusive", Effect.sync(() => restoreExclusive(st, vpn, pte))), { discard: true })
  })

/**
 * Revoke rounds a CPU access makes before giving up when a device keeps re-taking its pages (SimCpu's
 * `touchPages`, kernel-semantics §11.17).
 *
 * @category constants
 */
export const MAX_REVOKE_ROUNDS = 1000
