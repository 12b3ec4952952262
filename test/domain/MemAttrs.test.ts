import { assert, describe, it } from "@effect/vitest"
import { Arbitrary, Schema } from "effect"
import * as MA from "../../src/domain/MemAttrs.ts"

// ---------------------------------------------------------------------------
// plain model: one attribute record per page, plus the set of piece boundaries
// ---------------------------------------------------------------------------

const PAGES = 48
const P = 4096

interface Model {
  readonly pages: Array<MA.MemAttrs>
  readonly cuts: Set<number> // page indices where a piece starts (0 always)
}

const fresh = (): Model => ({ pages: Array.from({ length: PAGES }, () => MA.DEFAULT_ATTRS), cuts: new Set([0]) })

const VALUES: ReadonlyArray<readonly [MA.AttrKind, MA.MemAttrs]> = [
  ["preferred-loc", { ...MA.DEFAULT_ATTRS, preferredLoc: "system" }],
  ["preferred-loc", { ...MA.DEFAULT_ATTRS, preferredLoc: "device" }],
  ["preferred-loc", { ...MA.DEFAULT_ATTRS, preferredLoc: "vram1", migrationPolicy: "only-system-pages" }],
  ["atomic", { ...MA.DEFAULT_ATTRS, atomic: "global" }],
  ["atomic", { ...MA.DEFAULT_ATTRS, atomic: "undefined" }],
  ["atomic", { ...MA.DEFAULT_ATTRS, atomic: "cpu" }],
  ["pat", { ...MA.DEFAULT_ATTRS, pat: 3 }],
  ["pat", { ...MA.DEFAULT_ATTRS, pat: 0 }]
]

const modelApply = (m: Model, s: number, e: number, kind: MA.AttrKind, v: MA.MemAttrs): Set<number> => {
  const changed = new Set<number>()
  m.cuts.add(s)
  if (e < PAGES) m.cuts.add(e)
  for (let i = s; i < e; i++) {
    if (MA.sameKind(m.pages[i]!, v, kind)) continue
    const a = m.pages[i]!
    m.pages[i] = kind === "preferred-loc"
      ? { ...a, preferredLoc: v.preferredLoc, migrationPolicy: v.migrationPolicy }
      : kind === "atomic"
      ? { ...a, atomic: v.atomic }
      : { ...a, pat: v.pat }
    changed.add(i)
  }
  return changed
}

const pieceStartOf = (m: Model, page: number): number => {
  let s = page
  while (!m.cuts.has(s)) s--
  return s
}

const modelReset = (m: Model, s: number, e: number): void => {
  const first = pieceStartOf(m, s)
  if (MA.isDefault(m.pages[first]!)) return
  for (const c of [...m.cuts]) if (c > s && c < e) m.cuts.delete(c)
  m.cuts.add(s)
  if (e < PAGES) m.cuts.add(e)
  for (let i = s; i < e; i++) m.pages[i] = MA.DEFAULT_ATTRS
}

const same = (map: MA.AttrMap, m: Model, msg: string): void => {
  const starts = map.map((p) => p.start / P)
  assert.deepStrictEqual(starts, [...m.cuts].sort((a, b) => a - b), `${msg}: piece boundaries`)
  for (let i = 0; i < map.length; i++) {
    const p = map[i]!
    if (i > 0) assert.strictEqual(p.start, map[i - 1]!.end, `${msg}: contiguous`)
    for (let pg = p.start / P; pg < p.end / P; pg++) assert.deepStrictEqual(p.attrs, m.pages[pg], `${msg}: attrs of page ${pg}`)
  }
  assert.strictEqual(map[map.length - 1]!.end, PAGES * P, `${msg}: covers the window`)
}

const int = (minimum: number, maximum: number) => Arbitrary.schema(Schema.Int.check(Schema.isBetween({ minimum, maximum })))
const opArb = Arbitrary.all([int(0, 9), int(0, PAGES - 1), int(1, PAGES), int(0, VALUES.length - 1)])

describe("MemAttrs (Xe madvise attribute pieces)", () => {
  it.prop(
    "xe_vm_alloc_madvise_vma + madvise_* + xe_svm_range_set_default_attr match a per-page model",
    { ops: Arbitrary.array(opArb, { minLength: 1, maxLength: 60 }) },
    ({ ops }) => {
      let map = MA.make(0, PAGES * P)
      const m = fresh()
      for (const [k, a, len, vi] of ops) {
        const s = a
        const e = Math.min(PAGES, a + len)
        if (k < 8) {
          const [kind, v] = VALUES[vi]!
          const r = MA.apply(map, s * P, e * P, kind, v)
          const changed = modelApply(m, s, e, kind, v)
          map = r.map
          const got = new Set<number>()
          for (const p of r.changed) for (let pg = p.start / P; pg < p.end / P; pg++) got.add(pg)
          assert.deepStrictEqual([...got].sort((x, y) => x - y), [...changed].sort((x, y) => x - y), "changed pages")
        } else {
          map = MA.resetDefault(map, s * P, e * P)
          modelReset(m, s, e)
        }
        same(map, m, `after op ${k} [${s}, ${e})`)
        const q = MA.query(map, s * P, e * P)
        assert.isTrue(q.length > 0 && q[0]!.start <= s * P && q[q.length - 1]!.end >= e * P, "query covers the window")
      }
    }
  )

  it("madvise-no-range-invalidate-same-attr: the same value again changes nothing but still cuts at the window", () => {
    const a = MA.apply(MA.make(0, 16 * P), 0, 16 * P, "atomic", { ...MA.DEFAULT_ATTRS, atomic: "global" })
    assert.strictEqual(a.changed.length, 1)
    const b = MA.apply(a.map, 0, 8 * P, "atomic", { ...MA.DEFAULT_ATTRS, atomic: "global" })
    assert.strictEqual(b.changed.length, 0)
    assert.deepStrictEqual(b.map.map((p) => [p.start, p.end]), [[0, 8 * P], [8 * P, 16 * P]])
    assert.deepStrictEqual(b.cut, [[0, 8 * P]])
  })

  it("madvise_preferred_mem_loc compares devmem_fd and migration_policy together", () => {
    const a = MA.apply(MA.make(0, 4 * P), 0, 4 * P, "preferred-loc", { ...MA.DEFAULT_ATTRS, migrationPolicy: "only-system-pages" })
    assert.strictEqual(a.changed.length, 1)
    assert.strictEqual(a.map[0]!.attrs.preferredLoc, "device")
  })

  it("xe_svm_range_set_default_attr looks only at the VMA containing the start", () => {
    let map = MA.apply(MA.make(0, 8 * P), 4 * P, 8 * P, "pat", { ...MA.DEFAULT_ATTRS, pat: 5 }).map
    assert.strictEqual(MA.resetDefault(map, 0, 8 * P), map)
    map = MA.resetDefault(map, 2 * P, 6 * P)
    assert.strictEqual(MA.resetDefault(map, 2 * P, 6 * P), map)
    assert.deepStrictEqual(map.map((p) => [p.start / P, p.end / P, p.attrs.pat]), [[0, 4, 0], [4, 8, 5]])
    map = MA.resetDefault(map, 5 * P, 7 * P)
    assert.deepStrictEqual(map.map((p) => [p.start / P, p.end / P, p.attrs.pat]), [[0, 4, 0], [4, 5, 5], [5, 7, 0], [7, 8, 5]])
  })
})
