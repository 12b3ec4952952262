import { afterAll, assert, describe, it } from "@effect/vitest"
import { Arbitrary, Result, Schema } from "effect"
import * as Buddy from "../../src/domain/Buddy.ts"

const KiB = 1024
const MiB = 1024 * KiB
const GiB = 1024 * MiB

// ---------------------------------------------------------------------------
// model: a plain occupancy array, one cell per minBlock-sized chunk
// ---------------------------------------------------------------------------

/** A block in chunk units: `[off, off + 2^order)`. */
interface MBlock {
  readonly off: number
  readonly order: number
}

const render = (bs: ReadonlyArray<MBlock>): string => bs.map((b) => `${b.off}/${b.order}`).join(" ")
const toM = (b: Buddy.Block, minBlock: number): MBlock => ({ off: b.offset / minBlock, order: b.order })

const ilog2 = (n: number): number => {
  let k = 0
  while (2 ** (k + 1) <= n) k++
  return k
}

/** drm_buddy_init's decomposition, written independently: one root per set bit, largest first. */
const modelRoots = (chunks: number): Array<MBlock> => {
  const out: Array<MBlock> = []
  let off = 0
  let rest = chunks
  for (let o = 52; o >= 0; o--) {
    if (rest >= 2 ** o) {
      out.push({ off, order: o })
      off += 2 ** o
      rest -= 2 ** o
    }
  }
  return out
}

class Model {
  readonly occ: Uint8Array
  readonly roots: ReadonlyArray<MBlock>
  readonly chunks: number
  constructor(chunks: number) {
    this.chunks = chunks
    this.occ = new Uint8Array(chunks)
    this.roots = modelRoots(chunks)
  }
  allFree(off: number, n: number): boolean {
    for (let i = off; i < off + n; i++) if (this.occ[i] !== 0) return false
    return true
  }
  mark(b: MBlock, v: 0 | 1): void {
    for (let i = b.off; i < b.off + 2 ** b.order; i++) {
      assert.notStrictEqual(this.occ[i], v, `model: chunk ${i} already ${v}`)
      this.occ[i] = v
    }
  }
  get usedChunks(): number {
    let n = 0
    for (const c of this.occ) n += c
    return n
  }
  /** With full coalescing, the free blocks are exactly the maximal entirely-free nodes of each root's tree. */
  freeBlocks(): Array<MBlock> {
    const out: Array<MBlock> = []
    const rec = (off: number, order: number): void => {
      if (this.allFree(off, 2 ** order)) out.push({ off, order })
      else if (order > 0) {
        rec(off, order - 1)
        rec(off + 2 ** (order - 1), order - 1)
      }
    }
    for (const r of this.roots) rec(r.off, r.order)
    return out
  }
  /** Independent of freeBlocks(): does an aligned, entirely free run of 2^order chunks lie inside some root? */
  existsAligned(order: number): boolean {
    const n = 2 ** order
    for (const r of this.roots) {
      if (r.order < order) continue
      for (let p = r.off; p < r.off + 2 ** r.order; p += n) if (this.allFree(p, n)) return true
    }
    return false
  }
  /** The documented choice: lowest-addressed free block of the smallest sufficient order, lower half kept. */
  pick(order: number): MBlock | undefined {
    let best: MBlock | undefined
    for (const f of this.freeBlocks()) {
      if (f.order < order) continue
      if (best === undefined || f.order < best.order || (f.order === best.order && f.off < best.off)) best = f
    }
    return best === undefined ? undefined : { off: best.off, order }
  }
  /** drm_buddy_alloc_blocks without CONTIGUOUS, on a scratch copy; undefined when it would fail. */
  allocPages(pages: number): Array<MBlock> | undefined {
    if (pages > this.chunks - this.usedChunks) return undefined
    const scratch = new Model(this.chunks)
    scratch.occ.set(this.occ)
    const out: Array<MBlock> = []
    let order = Math.min(ilog2(pages), this.roots[0]!.order)
    let rest = pages
    while (rest > 0) {
      order = Math.min(order, ilog2(rest))
      let b = scratch.pick(order)
      while (b === undefined) {
        assert.isAbove(order, 0, "model allocPages ran out despite enough free chunks")
        order--
        b = scratch.pick(order)
      }
      scratch.mark(b, 1)
      out.push(b)
      rest -= 2 ** order
    }
    return out
  }
}

// ---------------------------------------------------------------------------
// invariants of the real allocator, against the model
// ---------------------------------------------------------------------------

const snapshot = (a: Buddy.BuddyAllocator): string =>
  `${a.usedBytes}|${a.freeBlockCount}|${render(a.freeBlocks().map((b) => toM(b, a.minBlock)))}|${
    render(a.allocatedBlocks().map((b) => toM(b, a.minBlock)))
  }`

/** Structural checks that need no model: shape, alignment, bounds, no overlap, exact tiling, accounting. */
const checkStructure = (a: Buddy.BuddyAllocator): void => {
  const allocated = a.allocatedBlocks()
  const free = a.freeBlocks()
  let problem: string | undefined
  let used = 0
  for (const b of allocated) {
    used += b.size
    if (b.size !== a.minBlock * 2 ** b.order) problem ??= `size/order mismatch at ${b.offset}`
    if (b.offset % b.size !== 0) problem ??= `misaligned block ${b.offset}/${b.size}`
    if (b.offset < 0 || b.offset + b.size > a.totalBytes) problem ??= `block outside total ${b.offset}`
    if (!a.isAllocated(b)) problem ??= `allocatedBlocks() lists a non-live handle ${b.offset}`
  }
  for (let i = 1; i < allocated.length; i++) {
    const p = allocated[i - 1]!
    if (p.offset + p.size > allocated[i]!.offset) problem ??= `overlap ${p.offset} / ${allocated[i]!.offset}`
  }
  // allocated ∪ free tile [0, total) exactly
  const all = [...allocated, ...free].sort((x, y) => x.offset - y.offset)
  let cursor = 0
  for (const b of all) {
    if (b.offset !== cursor) problem ??= `tiling gap/overlap at ${cursor} (next block ${b.offset})`
    if (b.offset % b.size !== 0) problem ??= `misaligned free block ${b.offset}`
    cursor = b.offset + b.size
  }
  if (cursor !== a.totalBytes) problem ??= `tiling ends at ${cursor}, total ${a.totalBytes}`
  assert.isUndefined(problem, problem)
  assert.strictEqual(a.usedBytes, used, "usedBytes = sum of allocated sizes")
  assert.strictEqual(a.usedBytes + a.freeBytes, a.totalBytes, "used + free = total")
  assert.strictEqual(a.freeBlockCount, free.length, "freeBlockCount")
  assert.strictEqual(a.allocatedCount, allocated.length, "allocatedCount")
  assert.strictEqual(a.largestFree, free.reduce((m, b) => Math.max(m, b.size), 0), "largestFree")
}

const checkAgainstModel = (a: Buddy.BuddyAllocator, m: Model): void => {
  checkStructure(a)
  const got = render(a.freeBlocks().map((b) => toM(b, a.minBlock)))
  const want = render(m.freeBlocks())
  if (got !== want) assert.strictEqual(got, want, "free blocks = maximal free nodes of the model (full coalescing)")
  assert.strictEqual(a.usedBytes, m.usedChunks * a.minBlock, "usedBytes vs model")
}

// ---------------------------------------------------------------------------
// random operation sequences
// ---------------------------------------------------------------------------

const int = (minimum: number, maximum: number) =>
  Arbitrary.schema(Schema.Int.check(Schema.isBetween({ minimum, maximum })))

// minBlock 4 KiB (kernel page), 2 MiB and 1 GiB (offsets far beyond 2^32);
// 1..255 chunks, so most totals are not powers of two and have several roots.
const layoutArb = Arbitrary.all({
  minBlock: Arbitrary.schema(Schema.Literals([4 * KiB, 2 * MiB, GiB])),
  chunks: int(1, 255)
})
// [kind, a, b]
const opArb = Arbitrary.all([int(0, 11), int(0, 63), int(0, 15)])

let opsExecuted = 0
let propertyFailed = false

describe("Buddy allocator (kernel-semantics §9, design.md §5 VRAM)", () => {
  afterAll(() => {
    // The model property must have exercised ≥ 10^4 operations (100 runs × ≥ 100 ops).
    if (opsExecuted > 0 && !propertyFailed) assert.isAtLeast(opsExecuted, 10_000)
  })

  it.prop(
    "matches a chunk-occupancy model over random alloc / allocPages / free sequences",
    { layout: layoutArb, ops: Arbitrary.array(opArb, { minLength: 100, maxLength: 160 }) },
    ({ layout, ops }, ctx) => {
      if (opsExecuted === 0) {
        ctx.onTestFailed(() => {
          propertyFailed = true
        })
      }
      const { minBlock, chunks } = layout
      const total = chunks * minBlock
      const a = Buddy.make(total, minBlock)!
      assert.isDefined(a)
      const m = new Model(chunks)
      assert.strictEqual(render(a.roots.map((b) => toM(b, minBlock))), render(m.roots), "roots")
      assert.strictEqual(a.maxOrder, m.roots[0]!.order)
      // a second allocator with the same layout: its handles are foreign here
      const other = Buddy.make(total, minBlock)!
      const otherBlock = other.alloc(1)!

      const held: Array<Buddy.Block> = []
      const freed: Array<Buddy.Block> = []
      const release = (b: Buddy.Block): void => {
        m.mark(toM(b, minBlock), 0)
        freed.push(b)
        held.splice(held.indexOf(b), 1)
      }
      checkAgainstModel(a, m)

      for (const [kind, x, y] of ops) {
        opsExecuted++
        const before = snapshot(a)
        if (kind <= 3) {
          // alloc: a size whose rounded order is k (sometimes 1 byte → order 0); k may exceed maxOrder
          const k = x % (a.maxOrder + 2)
          const top = minBlock * 2 ** k
          const bytes = y === 15 ? 1 : top - Math.floor((top * y) / 32)
          const order = y === 15 ? 0 : k
          assert.strictEqual(a.orderFor(bytes), order)
          const expected = order <= a.maxOrder ? m.pick(order) : undefined
          const possible = order <= a.maxOrder && m.existsAligned(order)
          const b = a.alloc(bytes)
          assert.strictEqual(b !== undefined, possible, `alloc(${bytes}) succeeds iff an aligned free run exists`)
          if (b === undefined) {
            assert.isUndefined(expected)
            assert.strictEqual(snapshot(a), before, "failed alloc changes nothing")
          } else {
            assert.deepStrictEqual(toM(b, minBlock), expected, `alloc(${bytes}) placement`)
            assert.isAtLeast(b.size, bytes)
            assert.isTrue(Object.isFrozen(b))
            m.mark(toM(b, minBlock), 1)
            held.push(b)
          }
        } else if (kind <= 5) {
          // allocPages: a non-multiple request that rounds to `pages` chunks (may exceed what is free)
          const pages = 1 + ((x * 16 + y) % (chunks + 4))
          const bytes = (pages - 1) * minBlock + 1 + Math.floor(((minBlock - 1) * y) / 15)
          const expected = m.allocPages(pages)
          const bs = a.allocPages(bytes)
          assert.strictEqual(bs !== undefined, pages * minBlock <= total - m.usedChunks * minBlock, "allocPages succeeds iff enough bytes are free")
          if (bs === undefined) {
            assert.isUndefined(expected)
            assert.strictEqual(snapshot(a), before, "failed allocPages leaves nothing allocated (all-or-nothing)")
          } else {
            assert.strictEqual(bs.reduce((s, b) => s + b.size, 0), pages * minBlock, "pieces sum to the rounded request")
            for (let i = 1; i < bs.length; i++) assert.isAtMost(bs[i]!.order, bs[i - 1]!.order, "largest pieces first")
            assert.strictEqual(render(bs.map((b) => toM(b, minBlock))), render(expected!), "allocPages pieces")
            for (const b of bs) {
              m.mark(toM(b, minBlock), 1)
              held.push(b)
            }
          }
        } else if (kind <= 9) {
          if (held.length > 0) {
            const b = held[(x * 16 + y) % held.length]!
            assert.isTrue(a.free(b), "free of a live block")
            release(b)
          }
        } else if (kind === 10) {
          // double free / stale handle / copy / foreign block: false, nothing changes
          const victim = y % 3 === 0 && freed.length > 0
            ? freed[x % freed.length]!
            : y % 3 === 1 && held.length > 0
            ? { ...held[x % held.length]! }
            : otherBlock
          assert.isFalse(a.free(victim), "invalid free returns false")
          assert.strictEqual(snapshot(a), before, "invalid free changes nothing")
        } else if (held.length > 0) {
          // freeList: all-or-nothing
          const picks = held.filter((_, i) => (i + x) % 3 === 0).slice(0, 4)
          if (y % 2 === 0) {
            const bad = [...picks, y % 4 === 0 ? otherBlock : picks[0] ?? otherBlock]
            assert.isFalse(a.freeList(bad), "freeList with a bad/duplicate entry")
            assert.strictEqual(snapshot(a), before, "rejected freeList frees nothing")
          } else {
            assert.isTrue(a.freeList(picks))
            for (const b of picks) release(b)
          }
        }
        checkAgainstModel(a, m)
      }

      // free everything (in an order derived from the ops): full merge back to the roots
      const order = held.map((b, i) => ({ b, k: (i * 7919 + ops.length) % 101 })).sort((p, q) => p.k - q.k)
      for (const { b } of order) {
        assert.isTrue(a.free(b))
        release(b)
        checkAgainstModel(a, m)
      }
      assert.strictEqual(a.usedBytes, 0)
      assert.strictEqual(a.freeBlockCount, a.roots.length, "one free block per root")
      assert.strictEqual(render(a.freeBlocks().map((b) => toM(b, minBlock))), render(m.roots))
      assert.strictEqual(a.largestFree, a.roots[0]!.size)
      // and the whole space is allocatable again, as exactly the roots
      const everything = a.allocPages(total)!
      assert.strictEqual(render(everything.map((b) => toM(b, minBlock))), render(m.roots))
      assert.strictEqual(a.freeBytes, 0)
      assert.strictEqual(a.largestFree, 0)
      assert.isUndefined(a.alloc(1))
      assert.isTrue(a.freeList(everything))
      assert.strictEqual(a.freeBlockCount, a.roots.length)
    },
    { arbitrary: { runs: 100 }, timeout: 60_000 }
  )

  it.prop(
    "large VRAM (up to 64 GiB of 4 KiB chunks): structure and accounting hold, everything merges back",
    {
      chunks: int(2 ** 20, 2 ** 24),
      ops: Arbitrary.array(Arbitrary.all([int(0, 5), int(0, 30), int(0, 2 ** 20)]), { minLength: 100, maxLength: 200 })
    },
    ({ chunks, ops }) => {
      const a = Buddy.make(chunks * 4 * KiB)!
      const held: Array<Buddy.Block> = []
      let heldBytes = 0
      for (const [kind, k, r] of ops) {
        if (kind <= 1) {
          const bytes = Math.max(1, 4 * KiB * 2 ** k - r)
          const order = a.orderFor(bytes)!
          const b = a.alloc(bytes)
          if (b === undefined) assert.isBelow(a.largestFree, 4 * KiB * 2 ** order)
          else {
            assert.strictEqual(b.order, order)
            held.push(b)
            heldBytes += b.size
          }
        } else if (kind <= 3) {
          const bs = a.allocPages(r * 4 * KiB * 3 + 1)
          if (bs !== undefined) {
            held.push(...bs)
            for (const b of bs) heldBytes += b.size
          }
        } else if (held.length > 0) {
          const [b] = held.splice(r % held.length, 1)
          assert.isTrue(a.free(b!))
          assert.isFalse(a.free(b!))
          heldBytes -= b!.size
        }
        assert.strictEqual(a.usedBytes, heldBytes)
      }
      checkStructure(a)
      for (const b of held) assert.isTrue(a.free(b))
      assert.strictEqual(a.usedBytes, 0)
      assert.deepStrictEqual(a.freeBlocks(), [...a.roots])
    },
    { arbitrary: { runs: 20 }, timeout: 60_000 }
  )

  // -------------------------------------------------------------------------
  // examples
  // -------------------------------------------------------------------------

  it("rejects bad arguments with a typed failure (drm_buddy_init -EINVAL), never throws", () => {
    const reason = (total: number, min?: number) => {
      const r = min === undefined ? Buddy.init(total) : Buddy.init(total, min)
      return Result.isFailure(r) ? r.failure.reason : "ok"
    }
    assert.strictEqual(reason(0), "ZeroSize")
    assert.strictEqual(reason(4096 * 3 + 1), "SizeNotMultiple")
    assert.strictEqual(reason(12 * MiB, 3 * 4096), "MinBlockNotPowerOfTwo")
    assert.strictEqual(reason(12 * MiB, 0), "MinBlockNotPowerOfTwo")
    assert.strictEqual(reason(12 * MiB, 2048), "MinBlockTooSmall")
    assert.strictEqual(reason(-4096), "InvalidSize")
    assert.strictEqual(reason(Number.NaN), "InvalidSize")
    assert.strictEqual(reason(2 ** 53), "InvalidSize")
    assert.strictEqual(reason(12 * MiB), "ok")
    assert.strictEqual(reason(12 * MiB, 2 * MiB), "ok")
    const r = Buddy.init(5000)
    assert.isTrue(Result.isFailure(r))
    if (Result.isFailure(r)) {
      assert.strictEqual(r.failure._tag, "BuddyInitError")
      assert.strictEqual(r.failure.errno, "EINVAL")
      assert.match(r.failure.message, /multiple/)
    }
    assert.isUndefined(Buddy.make(0))
    assert.isUndefined(Buddy.make(4096, 6000))
    assert.isDefined(Buddy.make(4096))
  })

  it("12 MiB (non-power-of-two): two roots, no merging across them, allocPages spans both", () => {
    const a = Buddy.make(12 * MiB)!
    assert.deepStrictEqual(a.roots.map((r) => [r.offset, r.size]), [[0, 8 * MiB], [8 * MiB, 4 * MiB]])
    assert.strictEqual(a.maxOrder, 11)
    assert.strictEqual(a.freeBlockCount, 2)
    assert.strictEqual(a.largestFree, 8 * MiB)
    // 12 MiB rounds to 16 MiB > the largest root: a single block is impossible
    assert.isUndefined(a.alloc(12 * MiB))
    assert.isUndefined(a.alloc(8 * MiB + 1))
    // smallest sufficient order wins: a 4 MiB request takes the 4 MiB root, not half of the 8 MiB one
    const four = a.alloc(4 * MiB)!
    assert.deepStrictEqual([four.offset, four.size], [8 * MiB, 4 * MiB])
    const eight = a.alloc(5 * MiB)!
    assert.deepStrictEqual([eight.offset, eight.size, eight.order], [0, 8 * MiB, 11])
    assert.strictEqual(a.freeBytes, 0)
    assert.isUndefined(a.alloc(1))
    assert.isTrue(a.free(eight))
    assert.isTrue(a.free(four))
    assert.deepStrictEqual(a.freeBlocks(), [...a.roots])
    // allocPages(12 MiB): largest pieces first, exactly the two roots
    const all = a.allocPages(12 * MiB)!
    assert.deepStrictEqual(all.map((b) => [b.offset, b.size]), [[0, 8 * MiB], [8 * MiB, 4 * MiB]])
    assert.isTrue(a.freeList(all))
    // all-or-nothing: with one page taken, 12 MiB no longer fits and nothing stays allocated
    const page = a.alloc(1)!
    assert.strictEqual(page.offset, 8 * MiB) // lowest address among the smallest sufficient order (4 MiB root)
    assert.isUndefined(a.allocPages(12 * MiB))
    assert.strictEqual(a.usedBytes, 4096)
    // …but 12 MiB − 4 KiB does, split around the hole
    const rest = a.allocPages(12 * MiB - 4096)!
    assert.strictEqual(rest.reduce((s, b) => s + b.size, 0), 12 * MiB - 4096)
    assert.strictEqual(rest[0]!.size, 8 * MiB)
    assert.strictEqual(a.freeBytes, 0)
    assert.isTrue(a.free(page))
    assert.isTrue(a.freeList(rest))
    assert.strictEqual(a.freeBlockCount, 2)
  })

  it("splits keep the lower half, frees merge recursively (drm_buddy split_block / __drm_buddy_free)", () => {
    const a = Buddy.make(1 * MiB)!
    const p0 = a.alloc(4096)!
    const p1 = a.alloc(4096)!
    const p2 = a.alloc(8192)!
    const p3 = a.alloc(100)!
    assert.deepStrictEqual([p0.offset, p1.offset, p2.offset, p3.offset], [0, 0x1000, 0x2000, 0x4000])
    assert.deepStrictEqual([p2.order, p2.size, p3.order, p3.size], [1, 8192, 0, 4096])
    // free blocks: 0x5000/4K, 0x6000/8K, 0x8000/32K, …, 0x80000/512K
    assert.deepStrictEqual(
      a.freeBlocks().map((b) => [b.offset, b.size]),
      [[0x5000, 0x1000], [0x6000, 0x2000], [0x8000, 0x8000], [0x10000, 0x10000], [0x20000, 0x20000], [0x40000, 0x40000], [0x80000, 0x80000]]
    )
    assert.isTrue(a.free(p1)) // buddy p0 is allocated: no merge
    assert.strictEqual(a.freeBlockCount, 8)
    assert.isTrue(a.free(p0)) // merges into 8K at 0, whose buddy p2 is allocated
    assert.strictEqual(a.freeBlockCount, 8)
    assert.isTrue(a.free(p2)) // 16K at 0; its buddy at 16K still holds p3
    assert.strictEqual(a.freeBlockCount, 8)
    assert.deepStrictEqual(a.freeBlocks()[0], { offset: 0, order: 2, size: 0x4000 })
    assert.isTrue(a.free(p3)) // everything merges up to the 1 MiB root
    assert.deepStrictEqual(a.freeBlocks().map((b) => [b.offset, b.size]), [[0, MiB]])
    assert.strictEqual(a.largestFree, MiB)
  })

  it("double free, stale handles, copies and foreign blocks return false and change nothing", () => {
    const a = Buddy.make(64 * KiB)!
    const b = Buddy.make(64 * KiB)!
    const x = a.alloc(4096)!
    const y = b.alloc(4096)!
    assert.deepStrictEqual([x.offset, x.order], [y.offset, y.order])
    assert.isFalse(a.free(y), "same coordinates, other allocator")
    assert.isFalse(a.free({ offset: 0, order: 0, size: 4096 }), "a copy is not the handle")
    assert.isTrue(a.isAllocated(x))
    assert.isTrue(a.free(x))
    assert.isFalse(a.free(x), "double free")
    assert.isFalse(a.isAllocated(x))
    // the stale handle must not free the new owner of the same space
    const x2 = a.alloc(4096)!
    assert.strictEqual(x2.offset, x.offset)
    assert.isFalse(a.free(x))
    assert.strictEqual(a.usedBytes, 4096)
    assert.isTrue(a.isAllocated(x2))
    assert.isFalse(a.free({ offset: 3, order: 0, size: 4096 }))
    assert.isFalse(a.free({ offset: 2 ** 60, order: 70, size: 2 ** 70 }))
    // freeList is all-or-nothing
    const z = a.alloc(4096)!
    assert.isFalse(a.freeList([x2, z, x2]), "duplicate entry")
    assert.isFalse(a.freeList([x2, y]), "foreign entry")
    assert.strictEqual(a.usedBytes, 8192)
    assert.isTrue(a.freeList([z, x2]))
    assert.deepStrictEqual(a.freeBlocks(), [...a.roots])
    assert.isTrue(a.freeList([]))
  })

  it("rejects non-positive / non-finite requests", () => {
    const a = Buddy.make(64 * KiB)!
    for (const bad of [0, -1, -4096, Number.NaN, Number.POSITIVE_INFINITY]) {
      assert.isUndefined(a.alloc(bad), `alloc(${bad})`)
      assert.isUndefined(a.allocPages(bad), `allocPages(${bad})`)
      assert.isUndefined(a.orderFor(bad))
    }
    assert.isUndefined(a.allocPages(64 * KiB + 1)) // more than the total
    assert.strictEqual(a.usedBytes, 0)
    assert.strictEqual(a.freeBlockCount, 1)
  })

  it("sizes near 2^40 and offsets across 2^32 do not alias", () => {
    const total = 2 ** 40 + 2 ** 39 + 3 * 4096
    const a = Buddy.make(total)!
    assert.deepStrictEqual(
      a.roots.map((r) => [r.offset, r.size]),
      [[0, 2 ** 40], [2 ** 40, 2 ** 39], [2 ** 40 + 2 ** 39, 8192], [2 ** 40 + 2 ** 39 + 8192, 4096]]
    )
    assert.strictEqual(a.maxOrder, 28)
    // a 4 KiB page comes from the smallest root that fits: the trailing 4 KiB one
    const tail = a.alloc(1)!
    assert.strictEqual(tail.offset, 2 ** 40 + 2 ** 39 + 8192)
    const big = a.alloc(2 ** 40)!
    assert.deepStrictEqual([big.offset, big.order, big.size], [0, 28, 2 ** 40])
    const half = a.alloc(2 ** 39 - 5)!
    assert.deepStrictEqual([half.offset, half.size], [2 ** 40, 2 ** 39])
    assert.strictEqual(a.freeBytes, 8192)
    assert.isTrue(a.free(big))
    // split a 2^40 root down to 2^32: its free buddies start at 2^32
    const g4 = a.alloc(2 ** 32)!
    assert.strictEqual(g4.offset, 0)
    // 4 KiB pages first come from the 8 KiB root (a smaller sufficient order than the 2^32 buddy)…
    assert.strictEqual(a.alloc(4096)!.offset, 2 ** 40 + 2 ** 39)
    assert.strictEqual(a.alloc(4096)!.offset, 2 ** 40 + 2 ** 39 + 4096)
    // …then from the lowest split-off buddy, at 2^32 (0 with 32-bit truncation)
    const pg = a.alloc(4096)!
    assert.strictEqual(pg.offset, 2 ** 32)
    assert.strictEqual(a.alloc(4096)!.offset, 2 ** 32 + 4096)
    assert.strictEqual(a.alloc(8192)!.offset, 2 ** 32 + 8192)
    assert.strictEqual(a.allocatedCount, 8)
    checkStructure(a)
    // everything frees back to the four roots
    for (const b of a.allocatedBlocks()) assert.isTrue(a.free(b))
    assert.deepStrictEqual(a.freeBlocks(), [...a.roots])
    assert.strictEqual(a.usedBytes, 0)
    assert.strictEqual(a.largestFree, 2 ** 40)
    // allocPages across the whole 1.5 TiB: four pieces, the roots
    const all = a.allocPages(total)!
    assert.deepStrictEqual(all.map((b) => b.size), [2 ** 40, 2 ** 39, 8192, 4096])
    assert.isTrue(a.freeList(all))
  })

  it("64 GiB / 4 KiB: allocPages(64 GiB − 4 KiB) is one piece per order, and 10^5 pages free back to one block", () => {
    const a = Buddy.make(64 * GiB)!
    assert.strictEqual(a.maxOrder, 24)
    const pieces = a.allocPages(64 * GiB - 4096)!
    assert.deepStrictEqual(pieces.map((b) => b.order), Array.from({ length: 24 }, (_, i) => 23 - i))
    assert.strictEqual(a.freeBytes, 4096)
    assert.strictEqual(a.largestFree, 4096)
    assert.isTrue(a.freeList(pieces))
    assert.strictEqual(a.freeBlockCount, 1)

    const pages: Array<Buddy.Block> = []
    for (let i = 0; i < 100_000; i++) pages.push(a.alloc(4096)!)
    assert.strictEqual(pages[99_999]!.offset, 99_999 * 4096) // lowest-address first fit: densely packed
    assert.strictEqual(a.usedBytes, 100_000 * 4096)
    // free in a scrambled order (7919 is prime and coprime to 10^5, so i·7919 mod 10^5 is a permutation)
    for (let i = 0; i < 100_000; i++) assert.isTrue(a.free(pages[(i * 7919) % 100_000]!))
    assert.strictEqual(a.usedBytes, 0)
    assert.deepStrictEqual(a.freeBlocks(), [...a.roots])
  })
})
