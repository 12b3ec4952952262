/**
 * The VMA list of the simulated address space (`mm->mm_mt`): a sorted array of
 * non-overlapping mutable VMA records with Linux-like splitting and merging.
 *
 * - Splitting (`__split_vma`): {@link Vmas.carve} cuts records at the window
 *   edges so every record lies wholly inside or outside the window.
 * - Merging (`vma_merge`): after every change {@link Vmas.mergeAround} merges
 *   adjacent records that are "the same mapping": equal protection, kind,
 *   shared flag, name, backing object, and (for object-backed mappings)
 *   contiguous object offsets, and the same VM_LOCKED flag (kernel-semantics
 *   §11.17: a locked VMA never merges with an unlocked one). `special` VMAs
 *   (VM_PFNMAP) never merge.
 * - Placement (`get_unmapped_area`): first fit upward from {@link MMAP_BASE},
 *   below {@link MMAP_LIMIT} (2^47, the x86-64 user space top).
 *
 * Plain synchronous code; the callers hold the mmap lock (for writing when
 * they change the list). No errors: callers validate first.
 *
 * @since 0.1.0
 */
import { HUGE_PAGE_SIZE, alignUp } from "../../domain/Address.ts"
import * as Prot from "../../domain/Prot.ts"
import type { Vma, VmaKind } from "../../domain/Vma.ts"
import type { DevAllocation, Vram } from "./Vram.ts"

/**
 * Lowest address default placement considers: 4 GiB.
 *
 * @category constants
 */
export const MMAP_BASE = 0x1_0000_0000

/**
 * Exclusive top of placeable user space: 2^47 (x86-64 `TASK_SIZE`).
 *
 * @category constants
 */
export const MMAP_LIMIT = 2 ** 47

/**
 * One VMA as the machine keeps it. `object` is the backing object id (0 for
 * private anonymous / hugetlb / special memory, whose pages live only in the
 * page table); `pgoff` is the byte offset into that object of `start`
 * (`vm_pgoff << PAGE_SHIFT`).
 *
 * @category models
 */
export interface VmaRec {
  start: number
  end: number
  prot: Prot.Prot
  readonly kind: VmaKind
  readonly shared: boolean
  readonly name: string | undefined
  readonly object: number
  pgoff: number
  readonly fileSeed: number | undefined
  /** VM_LOCKED (`mlock` / `MAP_LOCKED`, kernel-semantics §11.17); absent = unlocked. */
  locked?: boolean
  /**
   * A `special` VMA mapping a buffer object's device memory (`xe_bo_map_fixed`, kernel-semantics
   * §11.17): its pages are the allocation's pfns from byte `pgoff` on; CPU accesses read and write
   * them directly, no page-table entry is made.
   */
  readonly device?: DeviceBacking
}

/**
 * The device memory behind a BO mapping: the pagemap's memory and the BO's pinned allocation.
 *
 * @category models
 */
export interface DeviceBacking {
  readonly vram: Vram
  readonly alloc: DevAllocation
}

/**
 * The public `Vma` value of a record.
 *
 * @category functions
 */
export const toVma = (r: VmaRec): Vma =>
  r.name === undefined
    ? { start: r.start, end: r.end, prot: r.prot, kind: r.kind, shared: r.shared }
    : { start: r.start, end: r.end, prot: r.prot, kind: r.kind, shared: r.shared, name: r.name }

/**
 * May `a` (ending where `b` starts) and `b` merge into one VMA (`is_mergeable_vma`)?
 *
 * @category functions
 */
export const mergeable = (a: VmaRec, b: VmaRec): boolean =>
  a.end === b.start &&
  a.kind !== "special" &&
  a.kind === b.kind &&
  a.shared === b.shared &&
  a.name === b.name &&
  a.object === b.object &&
  a.fileSeed === b.fileSeed &&
  (a.locked === true) === (b.locked === true) && // §11.17: vm_flags differ in VM_LOCKED
  Prot.equals(a.prot, b.prot) &&
  (a.object === 0 || b.pgoff === a.pgoff + (a.end - a.start))

/**
 * The sorted VMA list.
 *
 * @category models
 */
export class Vmas {
  /** Records sorted by start, non-overlapping. */
  readonly list: Array<VmaRec> = []

  /** Index of the first record with `end > addr` (binary search); `list.length` if none. */
  lowerBound(addr: number): number {
    let lo = 0
    let hi = this.list.length
    while (lo < hi) {
      const mid = (lo + hi) >>> 1 // array indices, not addresses
      if (this.list[mid]!.end <= addr) lo = mid + 1
      else hi = mid
    }
    return lo
  }

  /** `vma_lookup`: the record containing `addr`. */
  find(addr: number): VmaRec | undefined {
    const r = this.list[this.lowerBound(addr)]
    return r !== undefined && r.start <= addr ? r : undefined
  }

  /** `find_vma_intersection`: the first record intersecting `[start, end)`. */
  firstIntersecting(start: number, end: number): VmaRec | undefined {
    const r = this.list[this.lowerBound(start)]
    return r !== undefined && r.start < end ? r : undefined
  }

  /** Every record intersecting `[start, end)`, in order. */
  intersecting(start: number, end: number): Array<VmaRec> {
    const out: Array<VmaRec> = []
    for (let i = this.lowerBound(start); i < this.list.length; i++) {
      const r = this.list[i]!
      if (r.start >= end) break
      out.push(r)
    }
    return out
  }

  /** Is `[start, end)` covered by VMAs with no hole? */
  covers(start: number, end: number): boolean {
    let at = start
    for (let i = this.lowerBound(start); i < this.list.length && at < end; i++) {
      const r = this.list[i]!
      if (r.start > at) return false
      at = r.end
    }
    return at >= end
  }

  /** Is `[start, end)` free of VMAs? */
  isFree(start: number, end: number): boolean {
    return this.firstIntersecting(start, end) === undefined
  }

  /** `__split_vma` at `addr` if a record straddles it. */
  splitAt(addr: number): void {
    const i = this.lowerBound(addr)
    const r = this.list[i]
    if (r === undefined || r.start >= addr) return
    const tail: VmaRec = { ...r, start: addr, pgoff: r.pgoff + (addr - r.start) }
    r.end = addr
    this.list.splice(i + 1, 0, tail)
  }

  /** Splits at both edges so no record crosses `start` or `end`. */
  carve(start: number, end: number): void {
    this.splitAt(start)
    this.splitAt(end)
  }

  /** Removes `[start, end)` (splitting edge records); returns the removed pieces. */
  remove(start: number, end: number): Array<VmaRec> {
    this.carve(start, end)
    const i = this.lowerBound(start)
    let j = i
    while (j < this.list.length && this.list[j]!.start < end) j++
    return this.list.splice(i, j - i)
  }

  /** Inserts a record into a free window and merges it with its neighbours. */
  insert(r: VmaRec): void {
    const i = this.lowerBound(r.start)
    this.list.splice(i, 0, r)
    this.mergeAround(r.start, r.end)
  }

  /** `vma_merge` pass over the records touching `[start, end]`. */
  mergeAround(start: number, end: number): void {
    let i = Math.max(0, this.lowerBound(start) - 1)
    while (i + 1 < this.list.length) {
      const a = this.list[i]!
      if (a.start > end) break
      const b = this.list[i + 1]!
      if (mergeable(a, b)) {
        a.end = b.end
        this.list.splice(i + 1, 1)
      } else {
        i++
      }
    }
  }

  /**
   * `get_unmapped_area`: the lowest `align`-aligned free window of `length`
   * bytes at or above `hint` (or {@link MMAP_BASE}), below {@link MMAP_LIMIT}.
   * Hugetlb requests use at least 2 MiB alignment.
   */
  findGap(length: number, align: number, hint: number | undefined): number | undefined {
    const base = hint !== undefined && hint >= MMAP_BASE ? hint : MMAP_BASE
    let at = alignUp(base, align)
    for (let i = this.lowerBound(at); i <= this.list.length; i++) {
      const r = this.list[i]
      const gapEnd = r === undefined ? MMAP_LIMIT : r.start
      if (at + length <= gapEnd && at + length <= MMAP_LIMIT) return at
      if (r === undefined) return undefined
      at = alignUp(Math.max(at, r.end), align)
    }
    return undefined
  }

  /** Snapshot of the public values. */
  snapshot(): ReadonlyArray<Vma> {
    return this.list.map(toVma)
  }

  /** Number of records. */
  get size(): number {
    return this.list.length
  }
}

/**
 * Minimum alignment of a kind: 2 MiB for hugetlb, else 4 KiB.
 *
 * @category functions
 */
export const kindAlign = (kind: VmaKind): number => (kind === "hugetlb" ? HUGE_PAGE_SIZE : 4096)
