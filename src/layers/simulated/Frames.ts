/**
 * System memory of the simulated machine: page frames with map counts, lazily
 * materialised bytes, poisoning, and the DMA pin accounting the IOMMU model
 * uses to catch "frame freed while still mapped".
 *
 * - Page-frame numbers come from a monotonically increasing counter and are
 *   never reused, so a stale pfn is always detectable: a pfn below the counter
 *   that is not live was freed (poisoned). pfn 0 is the shared zero page
 *   (`ZERO_PAGE(0)`), never freed, never written.
 * - A frame is order 0 (4 KiB) or order 9 (a 2 MiB compound frame of 512
 *   contiguous pfns, head aligned to 512), like `alloc_pages(order)` /
 *   `folio_alloc`. Map counts (`folio_mapcount`) count page-table entries that
 *   map any of its base pages; a page-cache reference keeps file and shmem
 *   pages alive. A frame is freed (`folio_put` to zero) when both are gone.
 * - Contents are held per 4 KiB base page, only once written (in buffers
 *   carved from 2 MiB slabs, {@link PageStore}): an unwritten
 *   page reads as zeros, or as its file's bytes for page-cache frames (a
 *   deterministic function of the file seed and offset, {@link fileByte}).
 *
 * Plain synchronous code, run inside one `Effect.sync` step of a service call
 * (callers hold the mmap lock as the operation requires). Violations are
 * reported through the `onViolation` callback, never thrown.
 *
 * @since 0.1.0
 */
import { HUGE_PAGE_ORDER, PAGE_SIZE, orderPages } from "../../domain/Address.ts"
import type { Violation } from "../../services/Machine.ts"
import { PageSlots } from "./PageSlots.ts"

/**
 * pfn of the shared zero page.
 *
 * @category constants
 */
export const ZERO_PFN = 0

/**
 * Where an unwritten page-cache frame's bytes come from: file `seed` at byte `offset` (of the head page).
 *
 * @category models
 */
export interface FileFill {
  readonly seed: number
  readonly offset: number
}

/**
 * One allocation of system memory (a folio).
 *
 * @category models
 */
export interface Frame {
  /** First pfn. */
  readonly head: number
  /** 0 or 9. */
  readonly order: number
  /** Page-table entries mapping any base page of this frame. */
  mapcount: number
  /** Held by a page cache (file or shmem object). */
  cacheRef: boolean
  /** Source of unwritten bytes (page-cache frames of a file). */
  readonly fill: FileFill | undefined
  /**
   * A compound (2 MiB) anonymous frame fork shared between two address spaces
   * (kernel-semantics §11.17): a write to it copies from then on (Linux clears
   * `PageAnonExclusive` at fork and does not reuse a large folio it cannot
   * prove exclusive).
   */
  forked?: boolean
  /** A KSM stable page (`folio_test_ksm`, kernel-semantics §11.17): never reused by a write fault, always copied. */
  ksm?: boolean
}

/**
 * The byte at `offset` of the simulated file with seed `seed`. Arithmetic
 * only (no 32-bit bit operations), exact for any safe offset.
 *
 * @category functions
 */
export const fileByte = (seed: number, offset: number): number =>
  ((seed % 256) * 31 + (offset % 256) * 7 + (Math.floor(offset / PAGE_SIZE) % 256) * 13 + 1) % 256

const ZEROS = new Uint8Array(PAGE_SIZE)
const HUGE_PAGES = orderPages(HUGE_PAGE_ORDER)
const SLAB_PAGES = 512

/**
 * Page-content buffers carved from 2 MiB slabs: a 4 KiB view of a shared
 * `ArrayBuffer` costs far less than a `Uint8Array` with its own backing store.
 * Released buffers are recycled (zeroed on reuse); slabs are never returned.
 *
 * @category models
 */
export class PageStore {
  private slab: ArrayBuffer | undefined
  private slabPages = 0
  private next = 0
  private readonly free: Array<Uint8Array> = []
  /** Slabs allocated so far. */
  slabs = 0

  /**
   * A zeroed 4 KiB buffer (`zero: false`: contents unspecified, for a caller
   * that overwrites all of it). Slabs start at 16 pages and double up to
   * 2 MiB, so a machine that touches a few pages (the explorer builds one per
   * schedule) does not allocate and zero 2 MiB.
   */
  take(zero = true): Uint8Array {
    const r = this.free.pop()
    if (r !== undefined) return zero ? r.fill(0) : r
    if (this.slab === undefined || this.next === this.slabPages) {
      this.slabPages = Math.min(SLAB_PAGES, this.slabPages === 0 ? 16 : this.slabPages * 2)
      this.slab = new ArrayBuffer(this.slabPages * PAGE_SIZE)
      this.slabs++
      this.next = 0
    }
    return new Uint8Array(this.slab, PAGE_SIZE * this.next++, PAGE_SIZE)
  }

  /** Returns a buffer for reuse. */
  give(b: Uint8Array): void {
    this.free.push(b)
  }
}

/**
 * A count per base pfn (how many live DMA mappings cover it), on 512-page
 * typed-array blocks instead of one Map entry per page (issue #16); a block
 * is dropped when its last count returns to zero.
 *
 * @category models
 */
export class PageCounts {
  private readonly blocks = new Map<number, { readonly c: Int32Array; nonzero: number }>()

  /** The count of `pfn` (0 when none). */
  get(pfn: number): number {
    const b = this.blocks.get(Math.floor(pfn / HUGE_PAGES))
    return b === undefined ? 0 : b.c[pfn % HUGE_PAGES]!
  }

  /** Adds `delta` to the counts of `n` pages from `pfn`; a count never goes below zero. */
  add(pfn: number, n: number, delta: number): void {
    for (let p = pfn, end = pfn + n; p < end;) {
      const bi = Math.floor(p / HUGE_PAGES)
      let b = this.blocks.get(bi)
      const stop = Math.min(end, (bi + 1) * HUGE_PAGES)
      if (b === undefined) {
        if (delta <= 0) {
          p = stop
          continue
        }
        b = { c: new Int32Array(HUGE_PAGES), nonzero: 0 }
        this.blocks.set(bi, b)
      }
      for (let i = p - bi * HUGE_PAGES, j = stop - bi * HUGE_PAGES; i < j; i++) {
        const old = b.c[i]!
        const next = Math.max(0, old + delta)
        b.c[i] = next
        if (old === 0 && next !== 0) b.nonzero++
        else if (old !== 0 && next === 0) b.nonzero--
      }
      if (b.nonzero === 0) this.blocks.delete(bi)
      p = stop
    }
  }
}

/**
 * System page frames.
 *
 * @category models
 */
export class Frames {
  /** Next pfn to hand out (never decreases). */
  private nextPfn = 1
  /** Live frames by head pfn (512-slot blocks: a frame is allocated and freed per page migrated, issue #16). */
  private readonly frames = new PageSlots<Frame>()
  /** Materialised contents per base pfn. */
  private readonly bytes = new PageSlots<Uint8Array>()
  /** Where content buffers come from. */
  readonly store = new PageStore()
  /** Live DMA mappings covering each base pfn (the IOMMU's view). */
  readonly dmaRefs = new PageCounts()
  /** Live base pages (a compound frame counts 512). */
  liveBasePages = 0
  /** Frames freed so far. */
  freedFrames = 0
  /** The most recently freed heads (bounded log, newest last: the last 1024 to 2048; trimmed in one splice, not a `shift` per free). */
  readonly freedLog: Array<number> = []

  private readonly onViolation: (v: Violation) => void

  constructor(onViolation: (v: Violation) => void) {
    this.onViolation = onViolation
  }

  /** `alloc_pages(order)`: a fresh frame (zeroed or file-filled), map count 0. */
  alloc(order: number, fill?: FileFill): Frame {
    const pages = orderPages(order)
    // integer arithmetic only (no division): pfns stay small integers (V8 Smis), so the `pfn` / `head` fields of
    // the page-table entries and frames holding them are not boxed as heap numbers (issue #16, 16 bytes each)
    const head = order === 0 ? this.nextPfn : this.nextPfn + ((pages - (this.nextPfn % pages)) % pages)
    this.nextPfn = head + pages
    const f: Frame = { head, order, mapcount: 0, cacheRef: false, fill }
    this.frames.set(head, f)
    this.liveBasePages += pages
    return f
  }

  /** The live frame containing base pfn `pfn` (`pfn_folio`), if any. */
  frameOf(pfn: number): Frame | undefined {
    const f = this.frames.get(pfn)
    if (f !== undefined) return f
    const h = this.frames.get(pfn - (pfn % HUGE_PAGES))
    return h !== undefined && h.order === HUGE_PAGE_ORDER ? h : undefined
  }

  /** Is `pfn` the zero page or a base page of a live frame? */
  isLive(pfn: number): boolean {
    return pfn === ZERO_PFN || this.frameOf(pfn) !== undefined
  }

  /** Was `pfn` handed out once and freed since (poisoned)? */
  isFreed(pfn: number): boolean {
    return pfn > ZERO_PFN && pfn < this.nextPfn && this.frameOf(pfn) === undefined
  }

  /** One more page-table entry maps (a base page of) `f`. */
  map(f: Frame): void {
    f.mapcount++
  }

  /** One page-table entry of `f` went away; frees it when nothing holds it. */
  unmap(f: Frame): void {
    f.mapcount--
    this.maybeFree(f)
  }

  /** Drops the page-cache reference of `f`; frees it when nothing holds it. */
  uncache(f: Frame): void {
    f.cacheRef = false
    this.maybeFree(f)
  }

  private maybeFree(f: Frame): void {
    if (f.mapcount <= 0 && !f.cacheRef && this.frames.get(f.head) === f) this.free(f)
  }

  /** Frees and poisons `f`; records `frame-freed-while-mapped` for every base page a live DMA mapping covers. */
  private free(f: Frame): void {
    this.frames.delete(f.head)
    const pages = orderPages(f.order)
    this.liveBasePages -= pages
    this.freedFrames++
    this.freedLog.push(f.head)
    if (this.freedLog.length > 2048) this.freedLog.splice(0, this.freedLog.length - 1024)
    let mapped = 0
    for (let i = 0; i < pages; i++) {
      const pfn = f.head + i
      const b = this.bytes.get(pfn)
      if (b !== undefined) {
        this.bytes.delete(pfn)
        this.store.give(b)
      }
      if (this.dmaRefs.get(pfn) > 0) mapped++
    }
    if (mapped > 0) {
      this.onViolation({
        invariant: "frame-freed-while-mapped",
        detail: `frame pfn ${f.head} (order ${f.order}) freed while ${mapped} of its pages had live DMA mappings`
      })
    }
  }

  /** Copies `len` bytes of base page `pfn` from `offset` into `dst` at `dstOff`. */
  read(pfn: number, offset: number, dst: Uint8Array, dstOff: number, len: number): void {
    const b = this.bytes.get(pfn)
    if (b !== undefined) {
      dst.set(b.subarray(offset, offset + len), dstOff)
      return
    }
    const f = pfn === ZERO_PFN ? undefined : this.frameOf(pfn)
    if (f?.fill !== undefined) {
      const base = f.fill.offset + (pfn - f.head) * PAGE_SIZE
      for (let i = 0; i < len; i++) dst[dstOff + i] = fileByte(f.fill.seed, base + offset + i)
      return
    }
    dst.set(ZEROS.subarray(0, len), dstOff)
  }

  /** The whole contents of base page `pfn` (a copy). */
  readPage(pfn: number): Uint8Array {
    const out = new Uint8Array(PAGE_SIZE)
    this.read(pfn, 0, out, 0, PAGE_SIZE)
    return out
  }

  /** The materialised buffer of base page `pfn` (created from its fill on first write). */
  private buffer(pfn: number): Uint8Array {
    let b = this.bytes.get(pfn)
    if (b === undefined) {
      b = this.store.take()
      const f = this.frameOf(pfn)
      if (f?.fill !== undefined) this.read(pfn, 0, b, 0, PAGE_SIZE)
      this.bytes.set(pfn, b)
    }
    return b
  }

  /** Writes `len` bytes of `src` from `srcOff` into base page `pfn` at `offset`. The zero page is never written. */
  write(pfn: number, offset: number, src: Uint8Array, srcOff: number, len: number): void {
    if (pfn === ZERO_PFN) {
      this.onViolation({ invariant: "zero-page-written", detail: "a write reached the shared zero page" })
      return
    }
    if (len === PAGE_SIZE && this.bytes.get(pfn) === undefined) {
      // a whole-page write overwrites every byte (and any fill): no zeroing, no fill read (issue #16)
      const b = this.store.take(false)
      b.set(src.subarray(srcOff, srcOff + len))
      this.bytes.set(pfn, b)
      return
    }
    this.buffer(pfn).set(src.subarray(srcOff, srcOff + len), offset)
  }

  /** `copy_user_highpage`: copies base page `from` into base page `to` (only if `from` holds anything). */
  copyPage(from: number, to: number): void {
    const b = this.bytes.get(from)
    const f = from === ZERO_PFN ? undefined : this.frameOf(from)
    if (b === undefined && f?.fill === undefined) return
    const dst = this.store.take()
    this.read(from, 0, dst, 0, PAGE_SIZE)
    this.bytes.set(to, dst)
  }

  /**
   * Does base page `pfn` read as all zeros without holding anything (no
   * materialised bytes, no file fill, or the zero page)? Migration skips the
   * copy of such pages.
   */
  isBlank(pfn: number): boolean {
    if (pfn === ZERO_PFN) return true
    if (this.bytes.has(pfn)) return false
    return this.frameOf(pfn)?.fill === undefined
  }

  /**
   * Installs `buf` (a 4 KiB buffer taken from {@link Frames.store}) as the
   * contents of base page `pfn` of a live frame, replacing (and recycling) any
   * previous contents: the commit step of a migration back to system memory.
   */
  adopt(pfn: number, buf: Uint8Array): void {
    const old = this.bytes.get(pfn)
    if (old !== undefined) this.store.give(old)
    this.bytes.set(pfn, buf)
  }

  /**
   * The materialised buffer of base page `pfn` of an order-0 frame that only one entry maps and nothing
   * else holds (so unmapping that entry frees it), removed from the frame and handed to the caller;
   * `undefined` otherwise. A migration moves such a page's buffer instead of copying it and then
   * freeing the original (issue #16: no double copy); the frame reads as blank from then on, which no
   * one sees, since it is freed next.
   */
  takeSoleBytes(pfn: number): Uint8Array | undefined {
    const f = this.frames.get(pfn)
    if (f === undefined || f.order !== 0 || f.mapcount !== 1 || f.cacheRef) return undefined
    const b = this.bytes.get(pfn)
    if (b !== undefined) this.bytes.delete(pfn)
    return b
  }

  /** Would {@link takeSoleBytes} hand out the buffer of `pfn`? */
  hasSoleBytes(pfn: number): boolean {
    const f = this.frames.get(pfn)
    return f !== undefined && f.order === 0 && f.mapcount === 1 && !f.cacheRef && this.bytes.has(pfn)
  }

  /** Bytes of contents actually held. */
  get bytesHeld(): number {
    return this.bytes.size * PAGE_SIZE
  }

  /** Number of live frames (allocations). */
  get liveFrames(): number {
    return this.frames.size
  }

  /** Every live frame (for teardown and tests). */
  allFrames(): Array<Frame> {
    return [...this.frames.values()]
  }
}
