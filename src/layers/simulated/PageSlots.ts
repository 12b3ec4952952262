/**
 * A map from page number (a system pfn, a device pfn) to a value, on 512-slot
 * array blocks instead of one `Map` entry per page (issue #16).
 *
 * Why: the simulated machine's per-page tables (live frames, page contents,
 * device pages in use) see a page inserted and deleted on every migration; a
 * V8 `Map` under that churn rehashes its whole table again and again (a
 * delete + set pair costs 0.2–0.5 µs at 16 Ki live entries, and every rehash
 * allocates a new table), while a slot in a block array is a plain element
 * store. A block is allocated when its first page is set and dropped when its
 * last page is deleted (one emptied block is kept for reuse), so sparse page numbers (pfns are never reused, device
 * windows start at 2^28) cost one block per 2 MiB of pages actually in use.
 *
 * Iteration ({@link PageSlots.values}) visits blocks in the order they were
 * created and slots in ascending order; for keys that only grow (system pfns)
 * that is insertion order, as with a `Map`.
 *
 * Plain synchronous code, no locking (callers hold what the table's owner
 * requires); `undefined` is not a storable value (it means "no entry").
 *
 * @since 0.1.0
 */

const SLOTS = 512

interface Block<T> {
  readonly v: Array<T | undefined>
  n: number
}

/**
 * Page number → value, in 512-slot blocks.
 *
 * @category models
 * @since 0.1.0
 */
export class PageSlots<T> {
  private readonly blocks = new Map<number, Block<T>>()
  private count = 0
  /** One-block cache: neighbouring pages hit the same block. */
  private lastKey = -1
  private last: Block<T> | undefined = undefined
  /** The last block emptied, kept for the next block created (a page set and deleted again and again costs no allocation). */
  private spare: Block<T> | undefined = undefined
  private readonly keepEmpty: boolean
  /** Bumped whenever a block is added or dropped (`forEachIn` re-checks its block then). */
  private shape = 0

  /**
   * `keepEmptyBlocks`: never drop an emptied block (for page numbers from a
   * bounded, reused window, such as one pagemap's device pfns, where the same
   * pages come and go on every migration).
   */
  constructor(keepEmptyBlocks = false) {
    this.keepEmpty = keepEmptyBlocks
  }

  private block(key: number): Block<T> | undefined {
    if (key === this.lastKey) return this.last
    const b = this.blocks.get(key)
    if (b !== undefined) {
      this.lastKey = key
      this.last = b
    }
    return b
  }

  /** The value of page `i`, if any. */
  get(i: number): T | undefined {
    const b = this.block(Math.floor(i / SLOTS))
    return b === undefined ? undefined : b.v[i % SLOTS]
  }

  /** Has page `i` a value? */
  has(i: number): boolean {
    return this.get(i) !== undefined
  }

  /** Sets the value of page `i` (replacing any). */
  set(i: number, value: T): void {
    const key = Math.floor(i / SLOTS)
    let b = this.block(key)
    if (b === undefined) {
      b = this.spare ?? { v: new Array<T | undefined>(SLOTS).fill(undefined), n: 0 }
      this.spare = undefined
      this.blocks.set(key, b)
      this.shape++
      this.lastKey = key
      this.last = b
    }
    const j = i % SLOTS
    if (b.v[j] === undefined) {
      b.n++
      this.count++
    }
    b.v[j] = value
  }

  /** Removes the value of page `i`; false if it had none. */
  delete(i: number): boolean {
    const key = Math.floor(i / SLOTS)
    const b = this.block(key)
    if (b === undefined) return false
    const j = i % SLOTS
    if (b.v[j] === undefined) return false
    b.v[j] = undefined
    this.count--
    if (--b.n === 0 && !this.keepEmpty) {
      this.blocks.delete(key)
      this.shape++
      this.spare = b
      if (this.lastKey === key) {
        this.lastKey = -1
        this.last = undefined
      }
    }
    return true
  }

  /** Number of pages with a value. */
  get size(): number {
    return this.count
  }

  /** Every `[page, value]`, block by block (creation order), ascending within a block. */
  *entries(): IterableIterator<[number, T]> {
    for (const [key, b] of this.blocks) {
      const base = key * SLOTS
      for (let j = 0; j < SLOTS; j++) {
        const x = b.v[j]
        if (x !== undefined) yield [base + j, x]
      }
    }
  }

  /**
   * Visits every `[page, value]` with `start <= page < end` in ascending page order: block by
   * block over the window's blocks when they are fewer than the blocks in use, else over the
   * blocks in use that fall in the window, sorted.
   */
  forEachIn(start: number, end: number, f: (page: number, value: T) => void): void {
    if (end <= start) return
    const first = Math.floor(start / SLOTS)
    const last = Math.floor((end - 1) / SLOTS)
    let keys: Array<number>
    if (last - first + 1 <= this.blocks.size) {
      keys = []
      for (let k = first; k <= last; k++) if (this.blocks.has(k)) keys.push(k)
    } else {
      keys = []
      for (const k of this.blocks.keys()) if (k >= first && k <= last) keys.push(k)
      keys.sort((a, b) => a - b)
    }
    for (const k of keys) {
      const b = this.blocks.get(k)
      if (b === undefined) continue // emptied by an earlier callback
      const base = k * SLOTS
      const lo = Math.max(start, base) - base
      const hi = Math.min(end, base + SLOTS) - base
      for (let j = lo; j < hi; j++) {
        const x = b.v[j]
        if (x === undefined) continue
        const shape = this.shape
        f(base + j, x)
        // a callback that emptied this block (and maybe handed it to another key) ends its visit
        if (this.shape !== shape && this.blocks.get(k) !== b) break
      }
    }
  }

  /** Every value, block by block (creation order), ascending within a block. */
  *values(): IterableIterator<T> {
    for (const b of this.blocks.values()) {
      for (const x of b.v) if (x !== undefined) yield x
    }
  }
}
