/**
 * Pages the kernel moves on its own (kernel-semantics §11.17): the five
 * kernel-initiated page moves of the simulated machine, each a machine
 * operation on a window of the address space that follows Linux 6.x mm:
 *
 * - `reclaim` (`shrink_folio_list` → `try_to_unmap_one`): private anonymous
 *   pages of VMAs that are not VM_LOCKED (mlocked pages are unevictable) are
 *   swapped out: the entry becomes a swap entry (`MachineState.swap`, the
 *   saved bytes), the frame is freed. A THP is split first (the whole folio
 *   goes). A later CPU touch or faulting `hmm_range_fault` swaps in to a NEW
 *   frame with the same bytes (`do_swap_page`, `CpuFault.faultPage`).
 * - `compact` (compaction / NUMA balancing, `migrate_pages` →
 *   `try_to_migrate_one`, which raises MMU_NOTIFY_CLEAR, not MIGRATE): every
 *   private anonymous folio (mlocked ones too: `compact_unevictable_allowed`
 *   is 1) whose mappings all lie in the invalidated window moves to a new
 *   frame of the same order: new pfns, same bytes, old frame freed.
 * - `collapse` (khugepaged, `collapse_huge_page`): each 2 MiB-aligned block
 *   of a private anonymous VMA that the window touches, not already one PMD
 *   mapping, holding at least one page and no device-private entry, becomes
 *   one fresh 2 MiB frame mapped order 9 (swapped pages are swapped in,
 *   `__collapse_huge_page_swapin`); CLEAR over the 2 MiB.
 * - `ksm-merge` (ksmd, `try_to_merge_one_page`: `write_protect_page` then
 *   `replace_page`, both CLEAR): identical private anonymous pages of the
 *   window are merged into one read-only KSM frame (`Frame.ksm`); a later
 *   write breaks the COW (a copy, CLEAR first: `wp_page_copy`). The explicit
 *   step stands for `madvise(MADV_MERGEABLE)` plus a ksmd pass. One CLEAR
 *   covers the merged pages of a pass (the kernel raises one per page; the
 *   extent is a superset).
 * - `split-thp` (`split_huge_pmd`): each intact 2 MiB anonymous THP mapping
 *   the window touches becomes 512 PTEs, same frames; CLEAR over the 2 MiB.
 *   A partial munmap / mprotect / madvise / mremap of a THP does the same
 *   first ({@link splitStraddling}, called by `SimCpu.ts`:
 *   `vma_adjust_trans_huge` / `zap_pmd_range` → `__split_huge_pmd`).
 *
 * Device-private entries are skipped by all of them (they are not LRU pages);
 * so are shared, file-backed and hugetlb mappings and the shared zero page.
 * Every move raises its CLEAR before it changes anything and recomputes what it
 * changes inside the invalidation, restricted to the invalidated window, so a
 * GPU SVM range whose pages were DMA-mapped is unmapped (its callback ran)
 * before any frame is freed; `Frames.free` records `frame-freed-while-mapped`
 * if a model bug frees a DMA-mapped frame.
 *
 * Locking: the kernel uses the rmap locks (folio lock, anon_vma lock, PT lock)
 * for reclaim, migration and THP split, and the mmap read lock for ksmd's scan;
 * the simulation takes the mmap read lock for those (the change is one
 * synchronous step, so it is atomic against faults, which also hold it for
 * reading). khugepaged takes the mmap write lock for the collapse itself
 * (`collapse_huge_page`: `mmap_write_lock`), and so does `collapse` here.
 *
 * @since 0.3.0
 */
import { Effect } from "effect"
import { HUGE_PAGE_ORDER, HUGE_PAGE_SIZE, PAGE_SIZE, alignDown, isWindow } from "../../domain/Address.ts"
import { InvalidArgument } from "../../domain/Errors.ts"
import type { KernelMoveKind, KernelMoveOutcome } from "../../services/Machine.ts"
import { type Frame, ZERO_PFN } from "./Frames.ts"
import type { MachineState } from "./MachineState.ts"
import { HUGE_PAGES, type SystemPte, vpnOf } from "./PageTable.ts"
import type { VmaRec } from "./Vmas.ts"

/** A window `[start, end)` (bytes). */
type Extent = readonly [number, number]

/** Is `v` private anonymous memory (the LRU pages the moves act on)? */
const isPrivateAnon = (v: VmaRec | undefined): v is VmaRec => v !== undefined && v.kind === "anonymous" && !v.shared

/** The system entries of private anonymous VMAs in `[start, end)` that `keep` accepts, with their VMA. */
const anonPages = (
  st: MachineState,
  start: number,
  end: number,
  keep: (v: VmaRec, pte: SystemPte) => boolean,
  f: (vpn: number, pte: SystemPte, v: VmaRec) => void
): void => {
  for (const v of st.vmas.intersecting(start, end)) {
    if (!isPrivateAnon(v)) continue
    st.pt.forEachIn(vpnOf(Math.max(start, v.start)), vpnOf(Math.min(end, v.end)), (vpn, pte) => {
      if (pte.kind === "system" && pte.pfn !== ZERO_PFN && keep(v, pte)) f(vpn, pte, v)
    })
  }
}

/** Widens an extent to the 2 MiB block of `vpn` when its entry is part of a PMD mapping. */
const widen = (lo: number, hi: number, vpn: number, pte: SystemPte): Extent => {
  if (pte.order !== HUGE_PAGE_ORDER) return [Math.min(lo, vpn * PAGE_SIZE), Math.max(hi, (vpn + 1) * PAGE_SIZE)]
  const b = alignDown(vpn * PAGE_SIZE, HUGE_PAGE_SIZE)
  return [Math.min(lo, b), Math.max(hi, b + HUGE_PAGE_SIZE)]
}

/** The smallest extent covering every page `scan` reports, each widened to its PMD block. */
const extentOf = (scan: (visit: (vpn: number, pte: SystemPte) => void) => void): Extent | undefined => {
  let lo = Infinity
  let hi = -Infinity
  scan((vpn, pte) => {
    ;[lo, hi] = widen(lo, hi, vpn, pte)
  })
  return lo < hi ? [lo, hi] : undefined
}

/** Drops a page-table entry's reference on its frame (freed when nothing else holds it). */
const dropRef = (st: MachineState, pfn: number): void => {
  if (pfn === ZERO_PFN) return
  const f = st.frames.frameOf(pfn)
  if (f !== undefined) st.frames.unmap(f)
}

const count = (st: MachineState, kind: KernelMoveKind, pages: number): number => {
  st.kernelMoves[kind] = (st.kernelMoves[kind] ?? 0) + pages
  return pages
}

/** Reclaimable: private anonymous, not VM_LOCKED (`folio_evictable`). */
const evictable = (v: VmaRec): boolean => v.locked !== true

/** `try_to_unmap_one` + `add_to_swap` for every evictable page of `[s, e)` (inside the CLEAR). */
const swapOut = (st: MachineState, s: number, e: number): number => {
  const hits: Array<number> = []
  anonPages(st, s, e, evictable, (vpn, pte) => {
    if (pte.order !== 0) st.pt.splitBlock(vpn) // split_huge_pmd: the folio is swapped out page by page
    hits.push(vpn)
  })
  for (const vpn of hits) {
    const pte = st.pt.get(vpn) as SystemPte
    st.swap.set(vpn, st.frames.isBlank(pte.pfn) ? undefined : st.frames.readPage(pte.pfn))
    st.pt.delete(vpn)
    dropRef(st, pte.pfn)
  }
  return hits.length
}

/** The reverse map of system frames: vpns mapping each live frame (by head), over the whole page table. */
const rmap = (st: MachineState): Map<number, Array<number>> => {
  const m = new Map<number, Array<number>>()
  for (const [vpn, pte] of st.pt.entries.entries()) {
    if (pte.kind !== "system" || pte.pfn === ZERO_PFN) continue
    const f = st.frames.frameOf(pte.pfn)
    if (f === undefined) continue
    const l = m.get(f.head)
    if (l === undefined) m.set(f.head, [vpn])
    else l.push(vpn)
  }
  return m
}

/** The private anonymous folios with a page in `[s, e)`, and every vpn mapping each. */
const foliosIn = (st: MachineState, s: number, e: number): Array<{ readonly frame: Frame; readonly vpns: ReadonlyArray<number> }> => {
  const all = rmap(st)
  const seen = new Map<number, Frame>()
  anonPages(st, s, e, () => true, (_vpn, pte) => {
    const f = st.frames.frameOf(pte.pfn)
    if (f !== undefined && !f.cacheRef) seen.set(f.head, f)
  })
  return [...seen.values()].map((frame) => ({ frame, vpns: all.get(frame.head) ?? [] }))
}

/** `migrate_folio` of every folio of `[s, e)` whose mappings all lie in `[s, e)` (inside the CLEAR). */
const migrate = (st: MachineState, s: number, e: number): number => {
  let pages = 0
  for (const { frame, vpns } of foliosIn(st, s, e)) {
    if (vpns.some((v) => v * PAGE_SIZE < s || v * PAGE_SIZE >= e)) continue // a mapping outside: not ours to move
    const to = st.frames.alloc(frame.order)
    if (frame.ksm === true) to.ksm = true
    for (let i = 0; i < 2 ** frame.order; i++) st.frames.copyPage(frame.head + i, to.head + i)
    for (const vpn of vpns) {
      const pte = st.pt.get(vpn) as SystemPte
      pte.pfn = to.head + (pte.pfn - frame.head)
      st.frames.map(to)
      st.frames.unmap(frame)
    }
    pages += vpns.length
  }
  return pages
}

/** The 2 MiB blocks (heads, bytes) that `[start, end)` touches. */
const blocksOf = (start: number, end: number): Array<number> => {
  const out: Array<number> = []
  for (let b = alignDown(start, HUGE_PAGE_SIZE); b < end; b += HUGE_PAGE_SIZE) out.push(b)
  return out
}

/** Can khugepaged collapse the block at `b` (`hugepage_vma_check` + `hpage_collapse_scan_pmd`)? Its VMA, or undefined. */
const collapsible = (st: MachineState, b: number): VmaRec | undefined => {
  if (!st.thp) return undefined
  const v = st.vmas.find(b)
  if (!isPrivateAnon(v) || b + HUGE_PAGE_SIZE > v.end) return undefined
  const head = vpnOf(b)
  const first = st.pt.get(head)
  if (first !== undefined && first.kind === "system" && first.order === HUGE_PAGE_ORDER) return undefined // already a PMD mapping
  let present = false
  for (let vpn = head; vpn < head + HUGE_PAGES; vpn++) {
    const pte = st.pt.get(vpn)
    if (pte !== undefined && pte.kind !== "system") return undefined // SCAN_PTE_NON_PRESENT: a device-private entry
    if ((pte !== undefined && pte.pfn !== ZERO_PFN) || st.swap.has(vpn)) present = true
  }
  return present ? v : undefined
}

/** `collapse_huge_page` of the block at `b` (inside the CLEAR, mmap write lock held): a fresh 2 MiB frame, order 9. */
const collapse = (st: MachineState, b: number): number => {
  const v = collapsible(st, b)
  if (v === undefined) return 0
  const to = st.frames.alloc(HUGE_PAGE_ORDER)
  const head = vpnOf(b)
  for (let i = 0; i < HUGE_PAGES; i++) {
    const vpn = head + i
    const pte = st.pt.get(vpn)
    if (pte !== undefined && pte.kind === "system") {
      if (pte.pfn !== ZERO_PFN) st.frames.copyPage(pte.pfn, to.head + i)
      dropRef(st, pte.pfn)
    } else if (st.swap.has(vpn)) {
      const saved = st.swap.get(vpn)
      st.swap.delete(vpn)
      if (saved !== undefined) st.frames.write(to.head + i, 0, saved, 0, PAGE_SIZE)
    }
    st.pt.set(vpn, { kind: "system", pfn: to.head + i, writable: v.prot.write, order: HUGE_PAGE_ORDER })
  }
  to.mapcount += HUGE_PAGES
  return HUGE_PAGES
}

/** Content key of base page `pfn` (exact: the page's bytes as a string). */
const contentKey = (st: MachineState, pfn: number): string =>
  st.frames.isBlank(pfn) ? "" : String.fromCharCode.apply(null, st.frames.readPage(pfn) as unknown as Array<number>)

/** The pages of `[s, e)` KSM may merge, grouped by identical content (groups of two or more, or with a KSM page). */
const mergeGroups = (st: MachineState, s: number, e: number): Array<Array<number>> => {
  const groups = new Map<string, Array<number>>()
  anonPages(st, s, e, () => true, (vpn, pte) => {
    const f = st.frames.frameOf(pte.pfn)
    if (f === undefined || f.cacheRef) return
    const k = contentKey(st, pte.pfn)
    const g = groups.get(k)
    if (g === undefined) groups.set(k, [vpn])
    else g.push(vpn)
  })
  return [...groups.values()].filter((g) => g.length > 1 && !g.every((vpn) => (st.pt.get(vpn) as SystemPte).pfn === (st.pt.get(g[0]!) as SystemPte).pfn))
}

/** `try_to_merge_one_page` for each group of `[s, e)` (inside the CLEAR): one read-only KSM frame per group. */
const merge = (st: MachineState, s: number, e: number): number => {
  let pages = 0
  for (const g of mergeGroups(st, s, e)) {
    // the stable page: an existing KSM page of the group, else the first page (a fresh order-0 frame
    // when it lies in a THP, which KSM splits first: the model cannot split a compound frame)
    const ptes = g.map((vpn) => st.pt.get(vpn) as SystemPte)
    let stable = ptes.map((p) => st.frames.frameOf(p.pfn)!).find((f) => f.ksm === true)
    if (stable === undefined) {
      const f0 = st.frames.frameOf(ptes[0]!.pfn)!
      if (f0.order === 0) stable = f0
      else {
        stable = st.frames.alloc(0)
        st.frames.copyPage(ptes[0]!.pfn, stable.head)
      }
      stable.ksm = true
    }
    g.forEach((vpn, i) => {
      const pte = ptes[i]!
      if (pte.order !== 0) st.pt.splitBlock(vpn)
      pte.writable = false
      if (pte.pfn === stable.head) return
      st.frames.map(stable)
      dropRef(st, pte.pfn)
      pte.pfn = stable.head
      pages++
    })
  }
  return pages
}

/** Is the block at `b` an intact anonymous THP mapping (`pmd_trans_huge`, not hugetlb)? */
const intactThp = (st: MachineState, b: number): boolean => {
  const first = st.pt.get(vpnOf(b))
  return first !== undefined && first.kind === "system" && first.order === HUGE_PAGE_ORDER && st.vmas.find(b)?.kind === "anonymous"
}

/** `split_huge_pmd` of the block at `b` with its CLEAR over the 2 MiB (1 event, or none when it is no intact THP). */
const splitBlock = (st: MachineState, b: number): Effect.Effect<number> =>
  Effect.suspend(() =>
    intactThp(st, b)
      ? st.notifiers.invalidate(b, b + HUGE_PAGE_SIZE, "clear", Effect.sync(() => {
        if (!intactThp(st, b)) return 0
        st.pt.splitBlock(vpnOf(b))
        return HUGE_PAGES
      }))
      : Effect.succeed(0)
  )

/**
 * Splits, each with a CLEAR over its 2 MiB first, the intact THP mappings that an edge of
 * `[start, end)` cuts (`vma_adjust_trans_huge` / `zap_pmd_range` → `__split_huge_pmd`): what a
 * partial munmap, mprotect, madvise or mremap of a THP does before its own event (kernel-semantics
 * §11.17). Caller holds the mmap lock.
 *
 * @category functions
 * @since 0.3.0
 */
export const splitStraddling = (st: MachineState, start: number, end: number): Effect.Effect<void> => {
  const edges = [start, end].filter((a) => a % HUGE_PAGE_SIZE !== 0).map((a) => alignDown(a, HUGE_PAGE_SIZE))
  if (edges.length === 0 || !edges.some((b) => intactThp(st, b))) return Effect.void
  return Effect.forEach([...new Set(edges)], (b) => splitBlock(st, b), { discard: true })
}

/**
 * Moves the swap entries of `[addr, addr + len)` by `dv` pages (`move_page_tables` of `mremap`
 * carries swap entries along). Synchronous; caller holds the mmap write lock.
 *
 * @category functions
 * @since 0.3.0
 */
export const moveSwap = (st: MachineState, addr: number, len: number, dv: number): void => {
  if (st.swap.size === 0 || dv === 0) return
  const s = vpnOf(addr)
  const e = vpnOf(addr + len)
  const moved = [...st.swap].filter(([v]) => v >= s && v < e)
  for (const [v] of moved) st.swap.delete(v)
  for (const [v, b] of moved) st.swap.set(v + dv, b)
}

/** A move whose pages are found by `scan`, changed by `apply` inside one CLEAR over their extent. */
const oneClear = (
  st: MachineState,
  kind: KernelMoveKind,
  scan: (visit: (vpn: number, pte: SystemPte) => void) => void,
  apply: (s: number, e: number) => number
): Effect.Effect<KernelMoveOutcome> =>
  Effect.suspend(() => {
    const ext = extentOf(scan)
    if (ext === undefined) return Effect.succeed(moved(kind, 0, 0))
    return Effect.map(
      st.notifiers.invalidate(ext[0], ext[1], "clear", Effect.sync(() => count(st, kind, apply(ext[0], ext[1])))),
      (pages) => moved(kind, pages, 1)
    )
  })

const moved = (kind: KernelMoveKind, pages: number, events: number): KernelMoveOutcome => ({ _tag: "Moved", kind, pages, events })

/** The moves by kind, once the window is checked (mmap lock taken by the caller as {@link kernelMove} says). */
const moves: Record<KernelMoveKind, (st: MachineState, start: number, end: number) => Effect.Effect<KernelMoveOutcome>> = {
  reclaim: (st, start, end) => oneClear(st, "reclaim", (f) => anonPages(st, start, end, evictable, f), (s, e) => swapOut(st, s, e)),
  compact: (st, start, end) =>
    oneClear(st, "compact", (f) => {
      for (const { vpns } of foliosIn(st, start, end)) for (const v of vpns) f(v, st.pt.get(v) as SystemPte)
    }, (s, e) => migrate(st, s, e)),
  "ksm-merge": (st, start, end) =>
    oneClear(st, "ksm-merge", (f) => {
      for (const g of mergeGroups(st, start, end)) for (const v of g) f(v, st.pt.get(v) as SystemPte)
    }, (s, e) => merge(st, s, e)),
  collapse: (st, start, end) =>
    Effect.map(
      Effect.forEach(blocksOf(start, end).filter((b) => collapsible(st, b) !== undefined), (b) =>
        st.notifiers.invalidate(b, b + HUGE_PAGE_SIZE, "clear", Effect.sync(() => count(st, "collapse", collapse(st, b))))),
      (ps) => moved("collapse", ps.reduce((a, n) => a + n, 0), ps.length)
    ),
  "split-thp": (st, start, end) =>
    Effect.map(
      Effect.forEach(blocksOf(start, end).filter((b) => intactThp(st, b)), (b) => Effect.map(splitBlock(st, b), (n) => count(st, "split-thp", n))),
      (ps) => moved("split-thp", ps.reduce((a, n) => a + n, 0), ps.length)
    )
}

/**
 * `Machine.kernelMove` of the simulated machine: validates the window (page aligned, non-empty:
 * `InvalidArgument` otherwise), then under the mmap lock (write for `collapse`, read for the
 * others; see the module doc) performs the move of kernel-semantics §11.17. An exited process
 * moves nothing.
 *
 * @category functions
 * @since 0.3.0
 */
export const kernelMove = (st: MachineState, kind: KernelMoveKind, start: number, end: number): Effect.Effect<KernelMoveOutcome, InvalidArgument> => {
  if (!isWindow(start, end) || start % PAGE_SIZE !== 0 || end % PAGE_SIZE !== 0) {
    return Effect.fail(new InvalidArgument({ reason: `kernelMove(${kind}): [start, end) must be a non-empty page-aligned window`, addr: start }))
  }
  const move = moves[kind]
  if (move === undefined) return Effect.fail(new InvalidArgument({ reason: `kernelMove: unknown kind ${JSON.stringify(kind)}`, addr: start }))
  const body = Effect.suspend(() => (st.alive ? move(st, start, end) : Effect.succeed(moved(kind, 0, 0))))
  return kind === "collapse" ? st.lock.withWrite(body) : st.lock.withRead(body)
}
