import { afterAll, assert, describe, it } from "@effect/vitest"
import { Arbitrary, Option, Schema } from "effect"
import * as IT from "../../src/domain/IntervalTree.ts"

// ---------------------------------------------------------------------------
// model: a plain array of entries kept sorted by (start, last)
// ---------------------------------------------------------------------------

interface E {
  readonly start: number
  readonly last: number
  readonly value: number
}

const cmpKey = (a: { start: number; last: number }, b: { start: number; last: number }): number =>
  a.start < b.start ? -1 : a.start > b.start ? 1 : a.last < b.last ? -1 : a.last > b.last ? 1 : 0

const modelInsert = (m: ReadonlyArray<E>, e: E): Array<E> => {
  const out = m.filter((x) => cmpKey(x, e) !== 0)
  out.push(e)
  return out.sort(cmpKey)
}
const modelRemove = (m: ReadonlyArray<E>, start: number, last: number): Array<E> =>
  m.filter((x) => !(x.start === start && x.last === last))
// kernel overlap test, verbatim
const modelOverlapping = (m: ReadonlyArray<E>, start: number, last: number): Array<E> =>
  m.filter((x) => x.start <= last && x.last >= start)

const plain = (e: IT.Entry<number> | undefined): E | undefined =>
  e === undefined ? undefined : { start: e.start, last: e.last, value: e.value }
const plainAll = (es: Iterable<IT.Entry<number>>): Array<E> => Array.from(es, (e) => plain(e)!)

// chai's deep equality is slow; compare a compact rendering first and fall
// back to deepStrictEqual (for a readable diff) only on mismatch.
const render = (e: E | undefined): string => (e === undefined ? "-" : `${e.start}:${e.last}=${e.value}`)
const sameEntry = (actual: IT.Entry<number> | undefined, expected: E | undefined, msg: string): void => {
  if (render(plain(actual)) !== render(expected)) assert.deepStrictEqual(plain(actual), expected, msg)
}
const sameList = (actual: Iterable<IT.Entry<number>>, expected: ReadonlyArray<E>, msg: string): void => {
  const got = plainAll(actual)
  if (got.length !== expected.length || got.some((e, i) => render(e) !== render(expected[i]))) {
    assert.deepStrictEqual(got, expected, msg)
  }
}

// ---------------------------------------------------------------------------
// structural invariants, checked by walking the (read-only) nodes
// ---------------------------------------------------------------------------

/** Minimum node count of an AVL tree of height h: N(h) = F(h + 2) − 1. */
const avlMinNodes = (h: number): number => {
  let a = 0
  let b = 1 // F(0), F(1)
  for (let i = 0; i < h + 2; i++) [a, b] = [b, a + b]
  return a - 1
}

const checkStructure = (tree: IT.IntervalTree<number>): void => {
  // Collects the first violated invariant (asserting per node is slow).
  let problem: string | undefined
  const fail = (msg: string, n: IT.Node<number>): void => {
    problem ??= `${msg} at [${n.start}, ${n.last}]`
  }
  const walk = (n: IT.Node<number> | undefined, lo: E | undefined, hi: E | undefined): void => {
    if (n === undefined) return
    if (lo !== undefined && !(cmpKey(lo, n) < 0)) fail("BST order (left bound)", n)
    if (hi !== undefined && !(cmpKey(n, hi) < 0)) fail("BST order (right bound)", n)
    walk(n.left, lo, n)
    walk(n.right, n, hi)
    const hl = n.left?.height ?? 0
    const hr = n.right?.height ?? 0
    if (n.height !== Math.max(hl, hr) + 1) fail("cached height", n)
    if (Math.abs(hl - hr) > 1) fail("AVL balance factor", n)
    if (n.size !== (n.left?.size ?? 0) + (n.right?.size ?? 0) + 1) fail("cached size", n)
    if (n.maxLast !== Math.max(n.last, n.left?.maxLast ?? -Infinity, n.right?.maxLast ?? -Infinity)) {
      fail("augmented subtree max-last", n)
    }
  }
  walk(tree.root, undefined, undefined)
  assert.isUndefined(problem, problem)
  const n = IT.size(tree)
  const h = IT.height(tree)
  // Height bound required by design.md §2: h ≤ 2·log2(n + 1), no slack needed
  // (AVL satisfies it for every n ≥ 0; n = 0 gives h = 0).
  assert.isAtMost(h, 2 * Math.log2(n + 1), `height ${h} for n = ${n}`)
  // …and the exact AVL bound: a height-h AVL tree has at least F(h+2) − 1 nodes.
  assert.isAtLeast(n, avlMinNodes(h), `AVL bound, height ${h} for n = ${n}`)
}

// ---------------------------------------------------------------------------
// every query against the model
// ---------------------------------------------------------------------------

const checkQuery = (tree: IT.IntervalTree<number>, model: ReadonlyArray<E>, qs: number, ql: number): void => {
  const expected = modelOverlapping(model, qs, ql)
  // first
  sameEntry(IT.first(tree, qs, ql), expected[0], `first [${qs}, ${ql}]`)
  sameEntry(Option.getOrUndefined(IT.firstOption(tree, qs, ql)), expected[0], `firstOption [${qs}, ${ql}]`)
  // first / next chain (kernel iteration loop)
  const chain: Array<IT.Entry<number>> = []
  for (let e = IT.first(tree, qs, ql); e !== undefined; e = IT.next(tree, e, qs, ql)) {
    chain.push(e)
    if (chain.length > model.length) break // would loop forever on a bug
  }
  sameList(chain, expected, `first/next chain [${qs}, ${ql}]`)
  // overlapping()
  sameList(IT.overlapping(tree, qs, ql), expected, `overlapping [${qs}, ${ql}]`)
  // next() from an arbitrary key (not necessarily stored): every model entry and the query key itself
  const probe = { start: qs, last: ql }
  sameEntry(
    IT.next(tree, probe, qs, ql),
    expected.find((x) => cmpKey(x, probe) > 0),
    `next from unstored key (${qs}, ${ql})`
  )
}

const checkAll = (
  tree: IT.IntervalTree<number>,
  model: ReadonlyArray<E>,
  queries: ReadonlyArray<readonly [number, number]>
): void => {
  checkStructure(tree)
  assert.strictEqual(IT.size(tree), model.length, "size()")
  assert.strictEqual(tree.size, model.length, "tree.size")
  assert.strictEqual(IT.isEmpty(tree), model.length === 0, "isEmpty")
  // in-order, three ways
  sameList(IT.toArray(tree), model, "toArray")
  sameList(tree, model, "[Symbol.iterator]")
  sameList(IT.entries(tree), model, "entries")
  // successor chain
  const succ: Array<IT.Entry<number>> = []
  for (let e = IT.first(tree, -Infinity, Infinity); e !== undefined; e = IT.successor(tree, e)) {
    succ.push(e)
    if (succ.length > model.length) break
  }
  sameList(succ, model, "successor chain")
  // find: every stored key, and a near miss for each
  for (const e of model) {
    sameEntry(IT.find(tree, e.start, e.last), e, "find stored")
    const miss = { start: e.start, last: e.last + 1 }
    sameEntry(
      IT.find(tree, miss.start, miss.last),
      model.find((x) => cmpKey(x, miss) === 0),
      "find near miss"
    )
  }
  // overlap queries: the supplied ones, reversed ones (kernel formula), and each entry's own range
  for (const [qs, ql] of queries) {
    checkQuery(tree, model, qs, ql)
    checkQuery(tree, model, ql, qs)
  }
  for (const e of model.slice(0, 3)) checkQuery(tree, model, e.start, e.last)
}

// ---------------------------------------------------------------------------
// random operation sequences
// ---------------------------------------------------------------------------

const int = (minimum: number, maximum: number) =>
  Arbitrary.schema(Schema.Int.check(Schema.isBetween({ minimum, maximum })))

// Addresses are generated in "units" (0..78) and mapped to bytes as
// base + unit·scale, so runs cover tiny ranges (scale 1, lots of duplicate
// starts and nesting), page-sized ranges (scale 4 KiB), ranges straddling
// 2^32 (catches 32-bit truncation) and ranges ending exactly at
// Number.MAX_SAFE_INTEGER.
const MAX_UNIT = 63 + 15 // a + b below
const layoutArb = Arbitrary.all({ scale: Arbitrary.schema(Schema.Literals([1, 4096])), base: int(0, 2) })
// [kind, a, b, qa, qb]
const opArb = Arbitrary.all([int(0, 9), int(0, 63), int(0, 15), int(0, MAX_UNIT), int(0, 20)])

const baseOf = (baseKind: number, scale: number): number =>
  baseKind === 0
    ? 0
    : baseKind === 1
    ? 2 ** 32 - 32 * scale
    : Number.MAX_SAFE_INTEGER - (MAX_UNIT + 1) * scale + 1

let opsExecuted = 0
let propertyFailed = false

describe("IntervalTree (design.md §2)", () => {
  afterAll(() => {
    // The property below must have exercised ≥ 10^4 operations (100 runs × ≥ 100 ops).
    // (Skipped when the property failed: shrinking stops early and already reports.)
    if (opsExecuted > 0 && !propertyFailed) assert.isAtLeast(opsExecuted, 10_000)
  })

  it.prop(
    "matches an array model over random operation sequences; old versions are unchanged",
    { layout: layoutArb, ops: Arbitrary.array(opArb, { minLength: 100, maxLength: 160 }) },
    ({ layout, ops }, ctx) => {
      if (opsExecuted === 0) ctx.onTestFailed(() => {
        propertyFailed = true
      })
      const { scale } = layout
      const base = baseOf(layout.base, scale)
      const lo = (u: number) => base + u * scale
      const hi = (u: number) => base + u * scale + scale - 1
      assert.isAtMost(hi(MAX_UNIT), Number.MAX_SAFE_INTEGER)

      let tree = IT.empty<number>()
      let model: Array<E> = []
      const versions: Array<{ tree: IT.IntervalTree<number>; model: ReadonlyArray<E> }> = []
      let counter = 0

      for (const [kind, a, b, qa, qb] of ops) {
        opsExecuted++
        const before = tree
        const beforeModel = model
        if (kind <= 4) {
          // insert a fresh (possibly duplicate-start / overlapping / exact-duplicate) interval
          const e: E = { start: lo(a), last: hi(a + b), value: ++counter }
          tree = IT.insert(tree, e.start, e.last, e.value)
          model = modelInsert(model, e)
        } else if (kind === 5 && model.length > 0) {
          // replace the value of an existing key
          const old = model[a % model.length]!
          const e: E = { ...old, value: ++counter }
          tree = IT.insert(tree, e.start, e.last, e.value)
          model = modelInsert(model, e)
          assert.strictEqual(IT.size(tree), IT.size(before), "replace keeps size")
        } else if (kind === 6 && model.length > 0) {
          // re-insert an existing key with the same value: no-op
          const old = model[a % model.length]!
          tree = IT.insert(tree, old.start, old.last, old.value)
          assert.strictEqual(tree, before, "idempotent insert returns the same tree")
        } else if (kind <= 8 && model.length > 0) {
          // remove an existing entry
          const old = model[(a * 7 + b) % model.length]!
          tree = IT.remove(tree, old.start, old.last)
          model = modelRemove(model, old.start, old.last)
        } else {
          // remove a random key, usually absent
          const present = model.some((x) => x.start === lo(a) && x.last === hi(a + b))
          tree = IT.remove(tree, lo(a), hi(a + b))
          model = modelRemove(model, lo(a), hi(a + b))
          if (!present) assert.strictEqual(tree, before, "remove of a missing key returns the same tree")
        }
        // the previous version is untouched by the update
        sameList(before, beforeModel, "previous version unchanged")
        versions.push({ tree, model })

        checkAll(tree, model, [
          [lo(qa), hi(Math.min(qa + qb, MAX_UNIT))],
          [lo(a), lo(a)], // single-address lookup (fault)
          [hi(qa), hi(qa)],
          [lo(0), hi(MAX_UNIT)] // everything
        ])
        if (versions.length % 25 === 0) {
          for (const v of versions) sameList(v.tree, v.model, "snapshot unchanged")
        }
      }
      // every snapshot still answers as it did, including queries
      for (const v of versions) {
        sameList(v.tree, v.model, "snapshot unchanged")
        assert.strictEqual(IT.size(v.tree), v.model.length)
        checkQuery(v.tree, v.model, lo(10), hi(40))
      }
    },
    { arbitrary: { runs: 100 }, timeout: 60_000 }
  )

  it("empty tree answers nothing", () => {
    const t = IT.empty<string>()
    assert.strictEqual(IT.size(t), 0)
    assert.strictEqual(IT.height(t), 0)
    assert.isTrue(IT.isEmpty(t))
    assert.isUndefined(IT.first(t, 0, Number.MAX_SAFE_INTEGER))
    assert.isTrue(Option.isNone(IT.firstOption(t, 0, 10)))
    assert.deepStrictEqual(IT.toArray(t), [])
    assert.deepStrictEqual([...IT.overlapping(t, 0, 10)], [])
    assert.strictEqual(IT.remove(t, 0, 10), t)
  })

  it("kernel-style first/next over page-sized ranges", () => {
    // three 4 KiB ranges with a hole at 0x3000
    let t = IT.empty<string>()
    t = IT.insert(t, 0x2000, 0x2fff, "b")
    t = IT.insert(t, 0x1000, 0x1fff, "a")
    t = IT.insert(t, 0x4000, 0x4fff, "c")
    assert.strictEqual(IT.first(t, 0x1800, 0x1800)?.value, "a")
    assert.strictEqual(IT.first(t, 0x1fff, 0x2000)?.value, "a") // inclusive last
    assert.isUndefined(IT.first(t, 0x3000, 0x3fff)) // the hole
    assert.isUndefined(IT.first(t, 0, 0xfff))
    const names: Array<string> = []
    for (let e = IT.first(t, 0x1fff, 0x4000); e !== undefined; e = IT.next(t, e, 0x1fff, 0x4000)) names.push(e.value)
    assert.deepStrictEqual(names, ["a", "b", "c"])
    assert.deepStrictEqual([...IT.overlapping(t, 0x2800, 0x4000)].map((e) => e.value), ["b", "c"])
    assert.strictEqual(IT.successor(t, { start: 0x2000, last: 0x2fff })?.value, "c")
    assert.isUndefined(IT.successor(t, { start: 0x4000, last: 0x4fff }))
  })

  it("duplicate starts are ordered by last; exact duplicates replace the value", () => {
    let t = IT.empty<string>()
    t = IT.insert(t, 100, 300, "long")
    t = IT.insert(t, 100, 150, "short")
    t = IT.insert(t, 100, 200, "mid")
    assert.deepStrictEqual(IT.toArray(t).map((e) => e.value), ["short", "mid", "long"])
    const before = t
    t = IT.insert(t, 100, 200, "mid2")
    assert.strictEqual(IT.size(t), 3)
    assert.strictEqual(IT.find(t, 100, 200)?.value, "mid2")
    assert.strictEqual(IT.find(before, 100, 200)?.value, "mid") // old version unchanged
    assert.strictEqual(IT.first(t, 250, 260)?.value, "long")
    assert.strictEqual(IT.next(t, { start: 100, last: 150 }, 0, 1000)?.value, "mid2")
    t = IT.remove(t, 100, 150)
    assert.deepStrictEqual(IT.toArray(t).map((e) => e.value), ["mid2", "long"])
    assert.strictEqual(IT.remove(t, 100, 151), t) // absent key: same object
  })

  it("addresses near 2^53 and across 2^32 do not alias", () => {
    const MAX = Number.MAX_SAFE_INTEGER
    let t = IT.empty<string>()
    t = IT.insert(t, 0, 0xfff, "low")
    t = IT.insert(t, 2 ** 32, 2 ** 32 + 0xfff, "4G")
    t = IT.insert(t, MAX - 0xfff, MAX, "top")
    t = IT.insert(t, MAX - 0x1fff, MAX - 0x1000, "below-top")
    assert.strictEqual(IT.first(t, 0x10, 0x10)?.value, "low")
    assert.strictEqual(IT.first(t, 2 ** 32 + 0x10, 2 ** 32 + 0x10)?.value, "4G")
    assert.strictEqual(IT.first(t, MAX, MAX)?.value, "top")
    assert.strictEqual(IT.first(t, MAX - 0x1000, MAX)?.value, "below-top")
    assert.strictEqual(IT.next(t, { start: MAX - 0x1fff, last: MAX - 0x1000 }, MAX - 0x1000, MAX)?.value, "top")
    assert.deepStrictEqual([...IT.overlapping(t, 1, MAX)].map((e) => e.value), ["low", "4G", "below-top", "top"])
    assert.strictEqual(IT.find(t, MAX - 0xfff, MAX)?.value, "top")
    assert.strictEqual(IT.size(IT.remove(t, MAX - 0xfff, MAX)), 3)
  })

  it("rejects invalid intervals", () => {
    assert.throws(() => IT.insert(IT.empty<number>(), 10, 9, 0), RangeError)
    assert.throws(() => IT.insert(IT.empty<number>(), Number.NaN, 9, 0), RangeError)
    assert.throws(() => IT.insert(IT.empty<number>(), 0, 2 ** 53, 0), RangeError)
  })

  it("stays balanced under 10^5 sorted inserts and answers point lookups", () => {
    let t = IT.empty<number>()
    const n = 100_000
    for (let i = 0; i < n; i++) t = IT.insert(t, i * 0x2000, i * 0x2000 + 0xfff, i)
    assert.strictEqual(IT.size(t), n)
    assert.isAtLeast(n, avlMinNodes(IT.height(t)))
    assert.isAtMost(IT.height(t), 2 * Math.log2(n + 1))
    for (let i = 0; i < n; i += 997) {
      assert.strictEqual(IT.first(t, i * 0x2000 + 5, i * 0x2000 + 5)?.value, i)
      assert.isUndefined(IT.first(t, i * 0x2000 + 0x1000, i * 0x2000 + 0x1fff))
    }
    // remove every other entry, check structure and content
    for (let i = 0; i < n; i += 2) t = IT.remove(t, i * 0x2000, i * 0x2000 + 0xfff)
    assert.strictEqual(IT.size(t), n / 2)
    assert.isAtLeast(n / 2, avlMinNodes(IT.height(t)))
    assert.strictEqual(IT.first(t, 0, Number.MAX_SAFE_INTEGER)?.value, 1)
  })

  it("fromIterable and firstOption", () => {
    const t = IT.fromIterable([[10, 19, "x"], [0, 9, "w"], [10, 19, "y"]] as const)
    assert.deepStrictEqual(IT.toArray(t).map((e) => e.value), ["w", "y"])
    assert.strictEqual(Option.getOrUndefined(IT.firstOption(t, 15, 100))?.value, "y")
  })
})
