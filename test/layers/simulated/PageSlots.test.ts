/**
 * `PageSlots` (the 512-slot block table behind the simulated machine's
 * per-page tables, issue #16) against a `Map` model: a seeded run of sets and
 * deletes over sparse and dense page numbers, checking every read, the size
 * and the iteration order after each step.
 */
import { assert, describe, it } from "@effect/vitest"
import { PageSlots } from "../../../src/layers/simulated/PageSlots.ts"
import { mulberry32 } from "../../../src/layers/simulated/SeededYields.ts"

const check = (keepEmpty: boolean, seed: number) => {
  const rnd = mulberry32(seed)
  const slots = new PageSlots<number>(keepEmpty)
  const model = new Map<number, number>()
  // three clusters: low pfns, a device window at 2^28, a block boundary at 2^29 - 3
  const bases = [0, 2 ** 28, 2 ** 29 - 3]
  for (let step = 0; step < 4000; step++) {
    const key = bases[Math.floor(rnd() * bases.length)]! + Math.floor(rnd() * 1200)
    if (rnd() < 0.55) {
      const v = step + 1
      slots.set(key, v)
      model.set(key, v)
    } else {
      assert.strictEqual(slots.delete(key), model.delete(key), `delete ${key} at step ${step}`)
    }
    const probe = bases[Math.floor(rnd() * bases.length)]! + Math.floor(rnd() * 1200)
    assert.strictEqual(slots.get(probe), model.get(probe), `get ${probe} at step ${step}`)
    assert.strictEqual(slots.has(probe), model.has(probe))
    assert.strictEqual(slots.size, model.size)
  }
  assert.sameMembers([...slots.values()], [...model.values()])
  assert.sameDeepMembers([...slots.entries()], [...model.entries()])
  // forEachIn over random windows (small and huge): exactly the model's keys there, ascending
  for (let w = 0; w < 50; w++) {
    const lo = Math.floor(rnd() * 2 ** 29)
    const hi = lo + (rnd() < 0.5 ? Math.floor(rnd() * 3000) : Math.floor(rnd() * 2 ** 29))
    const got: Array<[number, number]> = []
    slots.forEachIn(lo, hi, (k, v) => got.push([k, v]))
    const want = [...model.entries()].filter(([k]) => k >= lo && k < hi).sort((a, b) => a[0] - b[0])
    assert.deepStrictEqual(got, want, `window [${lo}, ${hi})`)
  }
  for (const k of [...model.keys()]) slots.delete(k)
  assert.strictEqual(slots.size, 0)
  assert.deepStrictEqual([...slots.values()], [])
}

describe("PageSlots", () => {
  it("reads, sizes and values match a Map under seeded sets and deletes (blocks dropped when empty)", () => {
    for (const seed of [1, 2, 3]) check(false, seed)
  })

  it("the same with emptied blocks kept", () => {
    for (const seed of [4, 5]) check(true, seed)
  })

  it("iterates growing keys in insertion order, as a Map does", () => {
    const slots = new PageSlots<number>()
    const keys = [1, 2, 513, 514, 1100, 5000, 5001]
    for (const k of keys) slots.set(k, k)
    slots.delete(513)
    slots.delete(514) // block 1 emptied and dropped
    slots.set(5002, 5002)
    assert.deepStrictEqual([...slots.values()], [1, 2, 1100, 5000, 5001, 5002])
  })

  it("forEachIn survives a callback that deletes what it visits (the block emptied and reused by a set)", () => {
    const slots = new PageSlots<number>()
    for (const k of [10, 11, 600, 601]) slots.set(k, k)
    const seen: Array<number> = []
    slots.forEachIn(0, 1000, (k) => {
      seen.push(k)
      slots.delete(k)
      if (k === 11) slots.set(5000, 5000) // takes the spare block emptied just now
    })
    assert.deepStrictEqual(seen, [10, 11, 600, 601])
    assert.deepStrictEqual([...slots.entries()], [[5000, 5000]])
  })
})
