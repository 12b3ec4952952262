/**
 * A buddy allocator for simulated VRAM — the TypeScript counterpart of the
 * kernel's `drm_buddy` (`drivers/gpu/drm/drm_buddy.c`), which Xe's VRAM
 * manager (`xe_ttm_vram_mgr`) uses to hand out device memory (design.md §5
 * "VRAM", kernel-semantics §9).
 *
 * Model:
 * - The managed space is `[0, totalBytes)`. Every block has a size of
 *   `minBlock · 2^order` (the kernel's `chunk_size << drm_buddy_block_order()`)
 *   and is aligned to its size. `order` is relative to `minBlock`, exactly
 *   like the kernel's block order (order 0 = one chunk).
 * - `totalBytes` must be a multiple of `minBlock` but need not be a power of
 *   two: like `drm_buddy_init` it is split into several top-level *roots*,
 *   largest first (12 MiB → an 8 MiB root at 0 and a 4 MiB root at 8 MiB).
 *   Blocks never merge across roots.
 * - Free blocks are always fully coalesced: two free buddies never coexist,
 *   so after freeing everything there is exactly one free block per root.
 *
 * The allocator is a **mutable** object ({@link BuddyAllocator}): allocation
 * and free update it in place (O(log n) per split/merge step), which is what
 * a simulated device with millions of 4 KiB pages needs. It is not
 * thread-safe in the kernel sense; callers that share it between fibers must
 * serialise access themselves (the kernel holds the VRAM manager's mutex).
 *
 * Nothing here throws: bad arguments give `undefined` (or a typed
 * {@link BuddyInitError} from {@link init}), and freeing a block that is not
 * currently allocated from *this* allocator returns `false` and changes
 * nothing.
 *
 * Sizes and offsets are plain JS numbers (safe integers, up to 2^53 − 1); the
 * code never applies 32-bit bitwise operators to them, so a 64 GiB (or
 * 2^40-byte) VRAM works.
 *
 * @since 0.1.0
 */
import * as Result from "effect/Result"

/**
 * The kernel's lower bound on the chunk size (`SZ_4K`, checked by
 * `drm_buddy_init`), also the default {@link make} `minBlock`.
 *
 * @since 0.1.0
 * @category constants
 */
export const MIN_CHUNK_SIZE = 4096

/**
 * One allocated (or, from {@link BuddyAllocator.freeBlocks}, free) block:
 * `[offset, offset + size)` with `size = minBlock · 2^order` and
 * `offset % size === 0`. Mirrors `struct drm_buddy_block` seen through
 * `drm_buddy_block_offset()` / `drm_buddy_block_order()` /
 * `drm_buddy_block_size()`.
 *
 * Blocks returned by `alloc` / `allocPages` are frozen *handles*: `free`
 * identifies a block by object identity (like the kernel's block pointer), so
 * a copy, a stale handle whose space has since been re-allocated, or a block
 * from another allocator is rejected instead of freeing someone else's memory.
 *
 * @since 0.1.0
 * @category models
 */
export interface Block {
  /** Byte offset of the block inside the managed space. */
  readonly offset: number
  /** Block order relative to `minBlock` (0 = one `minBlock`-sized chunk). */
  readonly order: number
  /** Size in bytes: `minBlock · 2^order`. */
  readonly size: number
}

/**
 * Why {@link init} refused its arguments (all are `-EINVAL` in the kernel's
 * `drm_buddy_init`):
 * - `"MinBlockNotPowerOfTwo"` — `minBlock` is not a power-of-two safe integer;
 * - `"MinBlockTooSmall"` — `minBlock` < 4 KiB ({@link MIN_CHUNK_SIZE});
 * - `"InvalidSize"` — `totalBytes` is not a non-negative safe integer;
 * - `"ZeroSize"` — `totalBytes` is 0 (the kernel: `size < chunk_size`);
 * - `"SizeNotMultiple"` — `totalBytes` is not a multiple of `minBlock` (the
 *   kernel silently rounds down instead; here it is an error so a simulated
 *   VRAM never loses its tail unnoticed).
 *
 * @since 0.1.0
 * @category models
 */
export type BuddyInitErrorReason =
  | "MinBlockNotPowerOfTwo"
  | "MinBlockTooSmall"
  | "InvalidSize"
  | "ZeroSize"
  | "SizeNotMultiple"

/**
 * A typed failure value from {@link init} (never thrown). `errno` is the
 * kernel's answer (`EINVAL`) for the same arguments.
 *
 * @since 0.1.0
 * @category models
 */
export interface BuddyInitError {
  readonly _tag: "BuddyInitError"
  readonly reason: BuddyInitErrorReason
  readonly errno: "EINVAL"
  readonly totalBytes: number
  readonly minBlock: number
  readonly message: string
}

// ---------------------------------------------------------------------------
// numeric helpers (no 32-bit bit operations: values may exceed 2^32)
// ---------------------------------------------------------------------------

const isPow2 = (n: number): boolean => {
  if (!Number.isSafeInteger(n) || n < 1) return false
  let p = 1
  while (p < n) p *= 2
  return p === n
}

/** ⌊log2 n⌋ for a safe integer n ≥ 1 (kernel `ilog2` / `fls() − 1`). */
const floorLog2 = (n: number): number => {
  if (n < 2 ** 31) return 31 - Math.clz32(n) // exact for 32-bit integers, no floating-point log (issue #16)
  let k = Math.floor(Math.log2(n))
  if (2 ** k > n) k--
  else if (2 ** (k + 1) <= n) k++
  return k
}

// ---------------------------------------------------------------------------
// a min-heap of offsets per order, with lazy deletion (membership lives in a Set)
// ---------------------------------------------------------------------------

const heapPush = (h: Array<number>, v: number): void => {
  let i = h.length
  h.push(v)
  while (i > 0) {
    const p = Math.floor((i - 1) / 2)
    const pv = h[p]!
    if (pv <= v) break
    h[i] = pv
    i = p
  }
  h[i] = v
}

const heapPop = (h: Array<number>): void => {
  const last = h.pop()!
  const n = h.length
  if (n === 0) return
  let i = 0
  for (;;) {
    const l = 2 * i + 1
    if (l >= n) break
    const r = l + 1
    const c = r < n && h[r]! < h[l]! ? r : l
    if (h[c]! >= last) break
    h[i] = h[c]!
    i = c
  }
  h[i] = last
}

const makeBlock = (offset: number, order: number, size: number): Block => Object.freeze({ offset, order, size })

/**
 * A buddy allocator over `[0, totalBytes)` — the counterpart of
 * `struct drm_buddy`. Create it with {@link make} or {@link init}
 * (`drm_buddy_init`); there is nothing to tear down (`drm_buddy_fini` has no
 * analogue; drop the object).
 *
 * Mutable: {@link BuddyAllocator.alloc}, {@link BuddyAllocator.allocPages},
 * {@link BuddyAllocator.free} and {@link BuddyAllocator.freeList} update it in
 * place. Every read accessor is O(1) except `largestFree` (O(max order)) and
 * the diagnostic listings.
 *
 * @since 0.1.0
 * @category models
 */
export class BuddyAllocator {
  /** Managed size in bytes (`mm->size`). */
  readonly totalBytes: number
  /** Minimum block size in bytes, a power of two ≥ 4 KiB (`mm->chunk_size`). */
  readonly minBlock: number
  /** Order of the largest root (`mm->max_order`); no request above it can succeed. */
  readonly maxOrder: number
  /** The top-level blocks, by ascending offset (= descending size), like `mm->roots`. */
  readonly roots: ReadonlyArray<Block>

  // per order: the set of free block offsets, and a lazily-pruned min-heap over it
  readonly #free: Array<Set<number>>
  readonly #heap: Array<Array<number>>
  // allocated handles by offset (offsets of allocated blocks are distinct)
  readonly #allocated = new Map<number, Block>()
  // block size in bytes per order (minBlock · 2^order), precomputed: `**` is a floating-point pow per call
  readonly #size: Array<number>
  #used = 0
  #freeCount = 0

  private constructor(totalBytes: number, minBlock: number) {
    this.totalBytes = totalBytes
    this.minBlock = minBlock
    const roots: Array<Block> = []
    // drm_buddy_init: carve roots largest first
    let offset = 0
    let rest = totalBytes / minBlock // chunks
    while (rest > 0) {
      const order = floorLog2(rest)
      const chunks = 2 ** order
      roots.push(makeBlock(offset, order, chunks * minBlock))
      offset += chunks * minBlock
      rest -= chunks
    }
    this.roots = roots
    this.maxOrder = roots[0]!.order
    this.#size = Array.from({ length: this.maxOrder + 1 }, (_, o) => minBlock * 2 ** o)
    this.#free = Array.from({ length: this.maxOrder + 1 }, () => new Set<number>())
    this.#heap = Array.from({ length: this.maxOrder + 1 }, () => [])
    for (const r of roots) this.#addFree(r.order, r.offset)
  }

  /** @internal — use {@link init} / {@link make}. */
  static init(totalBytes: number, minBlock: number): Result.Result<BuddyAllocator, BuddyInitError> {
    const fail = (reason: BuddyInitErrorReason, message: string) =>
      Result.fail<BuddyInitError>({ _tag: "BuddyInitError", reason, errno: "EINVAL", totalBytes, minBlock, message })
    if (!isPow2(minBlock)) return fail("MinBlockNotPowerOfTwo", `minBlock ${minBlock} is not a power of two`)
    if (minBlock < MIN_CHUNK_SIZE) {
      return fail("MinBlockTooSmall", `minBlock ${minBlock} is below ${MIN_CHUNK_SIZE} bytes`)
    }
    if (!Number.isSafeInteger(totalBytes) || totalBytes < 0) {
      return fail("InvalidSize", `totalBytes ${totalBytes} is not a non-negative safe integer`)
    }
    if (totalBytes === 0) return fail("ZeroSize", "totalBytes is 0")
    if (totalBytes % minBlock !== 0) {
      return fail("SizeNotMultiple", `totalBytes ${totalBytes} is not a multiple of minBlock ${minBlock}`)
    }
    return Result.succeed(new BuddyAllocator(totalBytes, minBlock))
  }

  // -------------------------------------------------------------------------
  // accessors
  // -------------------------------------------------------------------------

  /** Bytes currently allocated (sum of live block sizes). */
  get usedBytes(): number {
    return this.#used
  }

  /** Bytes currently free: `totalBytes − usedBytes` (`mm->avail`). */
  get freeBytes(): number {
    return this.totalBytes - this.#used
  }

  /** Size in bytes of the largest free block (0 when full): the largest request `alloc` can satisfy now. */
  get largestFree(): number {
    for (let o = this.maxOrder; o >= 0; o--) {
      if (this.#free[o]!.size > 0) return this.minBlock * 2 ** o
    }
    return 0
  }

  /** Number of free blocks (after full coalescing); equals `roots.length` when nothing is allocated. */
  get freeBlockCount(): number {
    return this.#freeCount
  }

  /** Number of live allocated blocks. */
  get allocatedCount(): number {
    return this.#allocated.size
  }

  /**
   * The order `alloc(bytes)` would use: the smallest `o` with
   * `minBlock · 2^o ≥ bytes` (`bytes ≤ minBlock` → 0). `undefined` for a
   * non-positive / non-finite `bytes`. May exceed {@link maxOrder}.
   */
  orderFor(bytes: number): number | undefined {
    if (!(bytes > 0) || !Number.isFinite(bytes)) return undefined
    let o = 0
    let s = this.minBlock
    while (s < bytes) {
      s *= 2
      o++
    }
    return o
  }

  /** Whether `block` is a live handle returned by this allocator. */
  isAllocated(block: Block): boolean {
    return typeof block === "object" && block !== null && this.#allocated.get(block.offset) === block
  }

  /** The free blocks, by ascending offset (fresh objects; diagnostics and tests). */
  freeBlocks(): Array<Block> {
    const out: Array<Block> = []
    for (let o = 0; o <= this.maxOrder; o++) {
      const size = this.minBlock * 2 ** o
      for (const off of this.#free[o]!) out.push(makeBlock(off, o, size))
    }
    return out.sort((a, b) => a.offset - b.offset)
  }

  /** The live allocated handles, by ascending offset (diagnostics and tests). */
  allocatedBlocks(): Array<Block> {
    return Array.from(this.#allocated.values()).sort((a, b) => a.offset - b.offset)
  }

  // -------------------------------------------------------------------------
  // allocation
  // -------------------------------------------------------------------------

  /**
   * Allocates one block of at least `bytes`: the request is rounded up to a
   * power of two ≥ `minBlock`, then the lowest-addressed free block of the
   * smallest sufficient order is taken and split down (keeping the lower
   * half each time, the upper halves become free buddies). Mirrors
   * `drm_buddy_alloc_blocks(…, DRM_BUDDY_CONTIGUOUS_ALLOCATION)` for a
   * power-of-two size / `__alloc_from_freelist` + `split_block`, with a
   * deterministic lowest-address choice.
   *
   * Returns `undefined` (never throws) when `bytes` is not a positive finite
   * number (`-EINVAL`), exceeds the largest root (`-EINVAL`), or no free block
   * is large enough (`-ENOSPC`). A successful allocation succeeds whenever an
   * aligned, entirely free region of the rounded size exists inside a root.
   */
  alloc(bytes: number): Block | undefined {
    const order = this.orderFor(bytes)
    if (order === undefined || order > this.maxOrder) return undefined
    return this.#allocOrder(order)
  }

  /**
   * Allocates `bytes` rounded up to a multiple of `minBlock` as possibly
   * several blocks whose sizes sum exactly to the rounded request — the
   * kernel's `drm_buddy_alloc_blocks` without `CONTIGUOUS`: it repeatedly
   * takes the largest power of two not exceeding what is left (capped at
   * {@link maxOrder}), falling back to smaller orders (monotonically) when no
   * such block is free. The blocks are returned in allocation order
   * (non-increasing sizes).
   *
   * All-or-nothing: returns `undefined` and leaves the allocator unchanged
   * when `bytes` is not a positive finite number (`-EINVAL`) or fewer than
   * the rounded bytes are free (`-ENOSPC`; the kernel frees the partial list
   * in `err_free`). Because it may fall back to single chunks, it succeeds
   * exactly when `freeBytes` ≥ the rounded request.
   */
  allocPages(bytes: number): ReadonlyArray<Block> | undefined {
    if (!(bytes > 0) || !Number.isFinite(bytes)) return undefined
    let pages = Math.ceil(bytes / this.minBlock)
    if (pages * this.minBlock > this.freeBytes) return undefined
    const out: Array<Block> = []
    let order = Math.min(floorLog2(pages), this.maxOrder)
    while (pages > 0) {
      order = Math.min(order, floorLog2(pages))
      let block = this.#allocOrder(order)
      while (block === undefined) {
        if (order === 0) {
          // unreachable given the freeBytes check; kept so a bug can never leak a partial allocation
          for (const b of out) this.free(b)
          return undefined
        }
        order--
        block = this.#allocOrder(order)
      }
      out.push(block)
      pages -= 2 ** order
    }
    return out
  }

  // -------------------------------------------------------------------------
  // free
  // -------------------------------------------------------------------------

  /**
   * Frees a block returned by {@link alloc} / {@link allocPages} and merges
   * it with its buddy as long as the buddy is free, recursively up to the
   * root — `drm_buddy_free_block` / `__drm_buddy_free`.
   *
   * Returns `false` and changes nothing for a block that is not a live handle
   * of this allocator: a double free, a stale handle, a copy, or a block from
   * another allocator (the kernel would `BUG_ON(!drm_buddy_block_is_allocated)`).
   */
  free(block: Block): boolean {
    if (!this.isAllocated(block)) return false
    this.#allocated.delete(block.offset)
    this.#used -= block.size
    let offset = block.offset
    let order = block.order
    const rootOrder = this.#rootOrderAt(offset)
    while (order < rootOrder) {
      const size = this.#size[order]!
      // the parity of offset / size as a 32-bit bit test where it fits (a double `%` is a libm call)
      const q = offset / size
      const buddy = (q < 2 ** 31 ? (q & 1) === 0 : q % 2 === 0) ? offset + size : offset - size
      const set = this.#free[order]!
      if (!set.has(buddy)) break
      set.delete(buddy) // its heap entry goes stale and is pruned lazily
      this.#freeCount--
      if (buddy < offset) offset = buddy
      order++
    }
    this.#addFree(order, offset)
    return true
  }

  /**
   * Frees several blocks at once (`drm_buddy_free_list`), all-or-nothing:
   * when any entry is not a live handle of this allocator, or a handle
   * appears twice, returns `false` and frees none of them.
   */
  freeList(blocks: Iterable<Block>): boolean {
    const list = Array.from(blocks)
    if (list.length === 1) return this.free(list[0]!) // no duplicate possible: free checks the handle
    const seen = new Set<Block>()
    for (const b of list) {
      if (!this.isAllocated(b) || seen.has(b)) return false
      seen.add(b)
    }
    for (const b of list) this.free(b)
    return true
  }

  // -------------------------------------------------------------------------
  // internals
  // -------------------------------------------------------------------------

  #addFree(order: number, offset: number): void {
    this.#free[order]!.add(offset)
    const h = this.#heap[order]!
    heapPush(h, offset)
    this.#freeCount++
    // bound the stale entries left by merges
    if (h.length > 2 * this.#free[order]!.size + 32) {
      const fresh = Array.from(this.#free[order]!).sort((a, b) => a - b) // sorted array = valid heap
      h.length = 0
      for (const v of fresh) h.push(v)
    }
  }

  /** Lowest free offset at `order`, pruning stale heap entries. */
  #peekFree(order: number): number | undefined {
    const h = this.#heap[order]!
    const set = this.#free[order]!
    while (h.length > 0) {
      const top = h[0]!
      if (set.has(top)) return top
      heapPop(h)
    }
    return undefined
  }

  #allocOrder(order: number): Block | undefined {
    let j = order
    let offset: number | undefined
    for (; j <= this.maxOrder; j++) {
      offset = this.#peekFree(j)
      if (offset !== undefined) break
    }
    if (offset === undefined) return undefined
    this.#free[j]!.delete(offset)
    heapPop(this.#heap[j]!) // offset was the heap top
    this.#freeCount--
    // split_block: keep the lower half, free the upper half at each level
    while (j > order) {
      j--
      this.#addFree(j, offset + this.#size[j]!)
    }
    const block = makeBlock(offset, order, this.#size[order]!)
    this.#allocated.set(offset, block)
    this.#used += block.size
    return block
  }

  #rootOrderAt(offset: number): number {
    const roots = this.roots
    for (let i = roots.length - 1; i >= 0; i--) {
      const r = roots[i]!
      if (r.offset <= offset) return r.order
    }
    return this.maxOrder
  }
}

/**
 * Creates an allocator over `[0, totalBytes)` with blocks of at least
 * `minBlock` bytes (default 4 KiB) — `drm_buddy_init(mm, size, chunk_size)`.
 * Returns a typed {@link BuddyInitError} (never throws) when `minBlock` is not
 * a power of two ≥ 4 KiB or `totalBytes` is not a positive safe-integer
 * multiple of it (the kernel's `-EINVAL`).
 *
 * @since 0.1.0
 * @category functions
 */
export const init = (totalBytes: number, minBlock: number = MIN_CHUNK_SIZE): Result.Result<BuddyAllocator, BuddyInitError> =>
  BuddyAllocator.init(totalBytes, minBlock)

/**
 * Like {@link init} but returns `undefined` for bad arguments
 * (`drm_buddy_init` returning `-EINVAL`).
 *
 * @since 0.1.0
 * @category functions
 */
export const make = (totalBytes: number, minBlock: number = MIN_CHUNK_SIZE): BuddyAllocator | undefined =>
  Result.getOrUndefined(init(totalBytes, minBlock))
