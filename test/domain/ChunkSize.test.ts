import { assert, describe, it } from "@effect/vitest"
import { Arbitrary, Effect, Schema } from "effect"
import * as CS from "../../src/domain/ChunkSize.ts"
import * as Ctx from "../../src/domain/GpuSvmCtx.ts"

const KiB = 1024
const MiB = 1024 * KiB
const GiB = 1024 * MiB
const TOP = 2 ** 53
const SZ_4K = 4 * KiB
const SZ_64K = 64 * KiB
const SZ_2M = 2 * MiB
const XE_SIZES = [SZ_2M, SZ_64K, SZ_4K] as const

// ---------------------------------------------------------------------------
// A scenario: the windows, the existing ranges of the notifier and the CPU
// pages that are NOT present. The predicates handed to `select` are derived
// from it and record every call.
// ---------------------------------------------------------------------------

interface Win {
  readonly start: number
  readonly end: number
}

interface Scenario {
  readonly faultAddr: number
  readonly vma: Win
  readonly notifier: Win
  readonly gpuva: Win
  readonly chunkSizes: ReadonlyArray<number>
  readonly threshold: number
  /** Existing ranges `[start, end)`. */
  readonly ranges: ReadonlyArray<Win>
  /** Page addresses (4 KiB aligned) that are not faulted in on the CPU. */
  readonly absent: ReadonlyArray<number>
}

interface Calls {
  readonly overlaps: Array<Win>
  readonly pages: Array<Win>
}

// drm_gpusvm_range_find: interval-tree overlap with inclusive last = end - 1
const modelOverlaps = (ranges: ReadonlyArray<Win>, start: number, end: number): boolean =>
  ranges.some((r) => r.start <= end - 1 && r.end - 1 >= start)
// drm_gpusvm_check_pages: every page present, i.e. no absent page inside
const modelAllPresent = (absent: ReadonlyArray<number>, start: number, end: number): boolean =>
  !absent.some((p) => p >= start && p < end)

const inputOf = (s: Scenario, calls: Calls): CS.ChunkSizeInput => ({
  faultAddr: s.faultAddr,
  vmaStart: s.vma.start,
  vmaEnd: s.vma.end,
  notifierStart: s.notifier.start,
  notifierEnd: s.notifier.end,
  gpuvaStart: s.gpuva.start,
  gpuvaEnd: s.gpuva.end,
  chunkSizes: s.chunkSizes,
  checkPagesThreshold: s.threshold,
  overlapsRange: (start, end) => {
    calls.overlaps.push({ start, end })
    return modelOverlaps(s.ranges, start, end)
  },
  allPagesPresent: (start, end) => {
    calls.pages.push({ start, end })
    return modelAllPresent(s.absent, start, end)
  }
})

const runSelect = (s: Scenario): { result: CS.ChunkWindow | undefined; calls: Calls } => {
  const calls: Calls = { overlaps: [], pages: [] }
  const result = CS.select(inputOf(s, calls))
  return { result, calls }
}

/** `selectEffect` with the same model, the page walk as an effect. */
const runSelectEffect = (s: Scenario): Effect.Effect<{ result: CS.ChunkWindow | undefined; calls: Calls }> =>
  Effect.suspend(() => {
    const calls: Calls = { overlaps: [], pages: [] }
    const { allPagesPresent, ...input } = inputOf(s, calls)
    return CS.selectEffect(input, (start, end) => Effect.sync(() => allPagesPresent(start, end))).pipe(
      Effect.map((result) => ({ result, calls }))
    )
  })

// ---------------------------------------------------------------------------
// Naive reference, written from kernel-semantics §3.7 without Address.ts:
// list every (size, window) pair, keep those inside all three windows, and
// take the first that is 4 KiB or passes both skip rules.
// ---------------------------------------------------------------------------

const naiveSelect = (s: Scenario): Win | undefined => {
  const inside = (w: Win, outer: Win) => w.start >= outer.start && w.end <= outer.end
  const candidates = s.chunkSizes
    .map((size) => ({
      size,
      start: Math.floor(s.faultAddr / size) * size,
      end: Math.ceil((s.faultAddr + 1) / size) * size
    }))
    .filter((w) => inside(w, s.vma) && inside(w, s.notifier) && inside(w, s.gpuva))
  const chosen = candidates.find((w) =>
    w.size === SZ_4K ||
    (!modelOverlaps(s.ranges, w.start, w.end) &&
      !(w.size <= s.threshold && !modelAllPresent(s.absent, w.start, w.end)))
  )
  return chosen === undefined ? undefined : { start: chosen.start, end: chosen.end }
}

// ---------------------------------------------------------------------------
// table tests
// ---------------------------------------------------------------------------

const ADDR = 0x4012_3456 // inside the 2 MiB window [0x4000_0000, 0x4020_0000)
const W2M = { start: 0x4000_0000, end: 0x4020_0000 }
const W64K = { start: 0x4012_0000, end: 0x4013_0000 }
const W4K = { start: 0x4012_3000, end: 0x4012_4000 }
const WIDE = { start: 0, end: 2 ** 40 }

const base: Scenario = {
  faultAddr: ADDR,
  vma: WIDE,
  notifier: WIDE,
  gpuva: WIDE,
  chunkSizes: XE_SIZES,
  threshold: 0,
  ranges: [],
  absent: []
}

const sizesOf = (ws: ReadonlyArray<Win>): Array<number> => ws.map((w) => w.end - w.start)

interface Case {
  readonly name: string
  readonly scenario: Partial<Scenario>
  readonly expected: Win | undefined
}

const CASES: ReadonlyArray<Case> = [
  { name: "baseline: every window wide, nothing overlaps → largest size (2 MiB)", scenario: {}, expected: W2M },
  // VMA edge
  { name: "§3.7 VMA edge: 2 MiB window would cross vma start → 64 KiB", scenario: { vma: { start: 0x4010_0000, end: 2 ** 40 } }, expected: W64K },
  { name: "§3.7 VMA edge: 2 MiB window would cross vma end → 64 KiB", scenario: { vma: { start: 0, end: 0x4014_0000 } }, expected: W64K },
  { name: "§3.7 VMA edge: 2 MiB and 64 KiB would cross vma end → 4 KiB", scenario: { vma: { start: 0, end: 0x4012_8000 } }, expected: W4K },
  { name: "§3.7 VMA edge: 2 MiB and 64 KiB would cross vma start → 4 KiB", scenario: { vma: { start: 0x4012_3000, end: 2 ** 40 } }, expected: W4K },
  { name: "§3.7 VMA edge: vma start one byte past the 2 MiB window start → 64 KiB", scenario: { vma: { start: W2M.start + 1, end: 2 ** 40 } }, expected: W64K },
  { name: "§3.7 VMA edge: vma end one byte short of the 2 MiB window end → 64 KiB", scenario: { vma: { start: 0, end: W2M.end - 1 } }, expected: W64K },
  { name: "§3.7 VMA edge: vma exactly the 2 MiB window (bounds inclusive) → 2 MiB", scenario: { vma: W2M }, expected: W2M },
  { name: "§3.7 VMA edge: vma exactly the 4 KiB page → 4 KiB", scenario: { vma: W4K }, expected: W4K },
  // notifier edge
  { name: "§3.7 notifier edge: 2 MiB window would cross notifier start → 64 KiB", scenario: { notifier: { start: 0x4012_0000, end: 0x6000_0000 } }, expected: W64K },
  { name: "§3.7 notifier edge: 2 MiB window would cross notifier end → 64 KiB", scenario: { notifier: { start: 0x4000_0000, end: 0x4013_0000 } }, expected: W64K },
  { name: "§3.7 notifier edge: 64 KiB would cross notifier end → 4 KiB", scenario: { notifier: { start: 0, end: 0x4012_4000 } }, expected: W4K },
  { name: "§3.7 notifier edge: notifier start one byte past the 2 MiB window start → 64 KiB", scenario: { notifier: { start: W2M.start + 1, end: 0x6000_0000 } }, expected: W64K },
  { name: "§3.7 notifier edge: notifier end one byte short of the 2 MiB window end → 64 KiB", scenario: { notifier: { start: 0, end: W2M.end - 1 } }, expected: W64K },
  { name: "§3.7 notifier edge: 512 MiB-aligned notifier holds the 2 MiB window → 2 MiB", scenario: { notifier: { start: 0x4000_0000, end: 0x6000_0000 } }, expected: W2M },
  // GPU VA edge
  { name: "§3.7 GPU VA edge: 2 MiB window would cross gpuva start → 64 KiB", scenario: { gpuva: { start: 0x4011_0000, end: 2 ** 40 } }, expected: W64K },
  { name: "§3.7 GPU VA edge: 2 MiB window would cross gpuva end → 64 KiB", scenario: { gpuva: { start: 0, end: 0x4013_0000 } }, expected: W64K },
  { name: "§3.7 GPU VA edge: gpuva start one byte past the 2 MiB window start → 64 KiB", scenario: { gpuva: { start: W2M.start + 1, end: 2 ** 40 } }, expected: W64K },
  { name: "§3.7 GPU VA edge: gpuva end one byte short of the 2 MiB window end → 64 KiB", scenario: { gpuva: { start: 0, end: W2M.end - 1 } }, expected: W64K },
  { name: "§3.7 GPU VA edge: gpuva exactly the 2 MiB window (bounds inclusive) → 2 MiB", scenario: { gpuva: W2M }, expected: W2M },
  { name: "§3.7 GPU VA edge: 64 KiB would cross gpuva start (unaligned) → 4 KiB", scenario: { gpuva: { start: 0x4012_2fff, end: 2 ** 40 } }, expected: W4K },
  // overlap skip
  { name: "§3.7 overlap skip: a range overlapping the 2 MiB candidate (not the 64 KiB) → 64 KiB", scenario: { ranges: [{ start: 0x4000_0000, end: 0x4001_0000 }] }, expected: W64K },
  { name: "§3.7 overlap skip: ranges overlapping the 2 MiB and the 64 KiB candidates → 4 KiB", scenario: { ranges: [{ start: 0x4000_0000, end: 0x4001_0000 }, { start: 0x4012_8000, end: 0x4012_a000 }] }, expected: W4K },
  { name: "§3.7 overlap skip: one range overlapping both larger candidates → 4 KiB", scenario: { ranges: [{ start: 0x4012_f000, end: 0x4013_1000 }] }, expected: W4K },
  { name: "§3.7 overlap skip: ranges only touching the 2 MiB window (half-open) do not overlap → 2 MiB", scenario: { ranges: [{ start: 0x3fe0_0000, end: 0x4000_0000 }, { start: 0x4020_0000, end: 0x4040_0000 }] }, expected: W2M },
  { name: "§3.7 overlap skip: range one byte into the 2 MiB window → 64 KiB", scenario: { ranges: [{ start: 0x4020_0000 - 1, end: 0x4030_0000 }] }, expected: W64K },
  // threshold + unpopulated skip
  { name: "§3.7 threshold+unpopulated: 2 MiB ≤ threshold with an absent page → 64 KiB", scenario: { threshold: SZ_2M, absent: [0x4000_0000] }, expected: W64K },
  { name: "§3.7 threshold+unpopulated: absent page in 2 MiB and 64 KiB, both ≤ threshold → 4 KiB", scenario: { threshold: SZ_2M, absent: [0x4012_f000] }, expected: W4K },
  { name: "§3.7 threshold+unpopulated: threshold exactly the size (≤) still checks → 64 KiB", scenario: { threshold: SZ_2M, absent: [0x401f_f000] }, expected: W64K },
  { name: "§3.7 threshold+unpopulated: size > threshold (2 MiB > 2 MiB - 1) is not checked → 2 MiB", scenario: { threshold: SZ_2M - 1, absent: [0x4000_0000, 0x4012_3000] }, expected: W2M },
  { name: "§3.7 threshold+unpopulated: 2 MiB > threshold 64 KiB, not checked → 2 MiB", scenario: { threshold: SZ_64K, absent: [W4K.start] }, expected: W2M },
  { name: "§3.7 threshold+unpopulated: threshold 0 never checks → 2 MiB", scenario: { threshold: 0, absent: [W4K.start] }, expected: W2M },
  { name: "§3.7 threshold+unpopulated: all pages present → 2 MiB", scenario: { threshold: GiB, absent: [0x3fff_f000, 0x4020_0000] }, expected: W2M },
  { name: "§3.7 threshold+unpopulated: overlap skips 2 MiB, 64 KiB (> threshold 4 KiB) not checked → 64 KiB", scenario: { threshold: SZ_4K, ranges: [{ start: 0x4000_0000, end: 0x4000_1000 }], absent: [W4K.start] }, expected: W64K },
  // 4 KiB never skipped
  { name: "§3.7 4 KiB never skipped: an existing range over the fault page → 4 KiB", scenario: { ranges: [{ start: 0x4012_3000, end: 0x4012_4000 }] }, expected: W4K },
  { name: "§3.7 4 KiB never skipped: fault page absent, threshold ≥ 4 KiB → 4 KiB", scenario: { threshold: GiB, absent: [W4K.start] }, expected: W4K },
  { name: "§3.7 4 KiB never skipped: overlapping and absent at once → 4 KiB", scenario: { threshold: GiB, absent: [W4K.start], ranges: [{ start: 0, end: 2 ** 40 }] }, expected: W4K },
  // none fits
  { name: "§3.7 none fits: gpuva window smaller than 4 KiB around addr → undefined", scenario: { gpuva: { start: 0x4012_3400, end: 0x4012_3500 } }, expected: undefined },
  { name: "§3.7 none fits: vma starts after the fault page → undefined", scenario: { vma: { start: 0x4012_4000, end: 0x4020_0000 } }, expected: undefined },
  { name: "§3.7 none fits: vma ends at the fault address (exclusive) → undefined", scenario: { vma: { start: 0x4000_0000, end: ADDR } }, expected: undefined },
  { name: "§3.7 none fits: vma covers addr but not its whole page → undefined", scenario: { vma: { start: 0x4012_3001, end: 0x5000_0000 } }, expected: undefined },
  { name: "§3.7 none fits: notifier ends inside the fault page → undefined", scenario: { notifier: { start: 0, end: 0x4012_3fff } }, expected: undefined },
  { name: "§3.7 none fits: chunk sizes without 4 KiB, every candidate overlaps → undefined", scenario: { chunkSizes: [SZ_2M, SZ_64K], ranges: [{ start: W4K.start, end: W4K.end }] }, expected: undefined },
  // walk continues past sizes that do not fit after a skip (kernel `goto retry` keeps `i`)
  { name: "§3.7 retry: 1 GiB does not fit, 2 MiB overlaps, 64 KiB crosses vma end → 4 KiB", scenario: { chunkSizes: [GiB, SZ_2M, SZ_64K, SZ_4K], vma: { start: 0x4000_0000, end: 0x4012_8000 }, ranges: [{ start: 0x4000_0000, end: 0x4000_1000 }] }, expected: W4K },
  { name: "§3.7 retry: 1 GiB overlaps, 2 MiB chosen", scenario: { chunkSizes: [GiB, SZ_2M, SZ_64K, SZ_4K], ranges: [{ start: 0x7fff_f000, end: 0x8000_0000 }] }, expected: W2M },
  { name: "§3.7 retry: 1 GiB fits and nothing overlaps → 1 GiB", scenario: { chunkSizes: [GiB, SZ_2M, SZ_64K, SZ_4K] }, expected: { start: 0x4000_0000, end: 0x8000_0000 } },
  // the top of the address space
  { name: "§3.7 top: fault at 2^53 - 1, windows reaching 2^53 → 2 MiB [2^53 - 2 MiB, 2^53)", scenario: { faultAddr: TOP - 1, vma: { start: TOP - GiB, end: TOP }, notifier: { start: TOP - 512 * MiB, end: TOP }, gpuva: { start: 0, end: TOP } }, expected: { start: TOP - SZ_2M, end: TOP } },
  { name: "§3.7 top: gpuva ends one page short of 2^53, fault in the last page → undefined", scenario: { faultAddr: TOP - 1, vma: { start: 0, end: TOP }, notifier: { start: 0, end: TOP }, gpuva: { start: 0, end: TOP - SZ_4K } }, expected: undefined },
  { name: "§3.7 top: VMA edge at 2^53 - 64 KiB + 4 KiB → 4 KiB", scenario: { faultAddr: TOP - SZ_4K - 7, vma: { start: TOP - SZ_64K + SZ_4K, end: TOP }, notifier: { start: 0, end: TOP }, gpuva: { start: 0, end: TOP } }, expected: { start: TOP - 2 * SZ_4K, end: TOP - SZ_4K } }
]

describe("ChunkSize.select: kernel-semantics §3.7 table", () => {
  for (const c of CASES) {
    it(c.name, () => {
      const s: Scenario = { ...base, ...c.scenario }
      const { calls, result } = runSelect(s)
      assert.deepStrictEqual(result, c.expected)
      // the table and the naive reference agree (guards the table itself)
      assert.deepStrictEqual(naiveSelect(s), c.expected)
      // predicates are never consulted for 4 KiB candidates
      assert.notInclude(sizesOf(calls.overlaps), SZ_4K)
      assert.notInclude(sizesOf(calls.pages), SZ_4K)
      // the page walk happens only for candidates at most the threshold
      for (const w of calls.pages) assert.isAtMost(w.end - w.start, s.threshold)
    })
  }

  it("§3.7 threshold: a candidate larger than the threshold never reaches allPagesPresent", () => {
    const { calls, result } = runSelect({ ...base, threshold: SZ_64K, absent: [W4K.start] })
    assert.deepStrictEqual(result, W2M)
    assert.deepStrictEqual(calls.pages, [])
    assert.deepStrictEqual(calls.overlaps, [W2M])
  })

  it("§3.7 order: overlap is checked per candidate, largest first, with the aligned window", () => {
    const { calls } = runSelect({ ...base, threshold: SZ_2M, ranges: [{ start: 0x4000_0000, end: 0x4000_1000 }], absent: [0x4012_0000] })
    assert.deepStrictEqual(calls.overlaps, [W2M, W64K])
    // 2 MiB was skipped for overlap before the page walk; 64 KiB was walked
    assert.deepStrictEqual(calls.pages, [W64K])
  })

  it("§3.7 threshold: the default ctx (`ctx = {}`) never walks pages; a ctx threshold of 2 MiB does", () => {
    const absent = [W4K.start]
    const off = runSelect({ ...base, threshold: Ctx.make().checkPagesThreshold, absent })
    assert.deepStrictEqual(off.result, W2M)
    assert.deepStrictEqual(off.calls.pages, [])
    const on = runSelect({ ...base, threshold: Ctx.make({ checkPagesThreshold: SZ_2M }).checkPagesThreshold, absent })
    assert.deepStrictEqual(on.result, W4K)
    assert.deepStrictEqual(on.calls.pages, [W2M, W64K])
  })

  it("§3.7 a 4 KiB candidate returns without consulting either predicate", () => {
    const { calls, result } = runSelect({ ...base, chunkSizes: [SZ_4K], threshold: GiB, ranges: [W4K], absent: [W4K.start] })
    assert.deepStrictEqual(result, W4K)
    assert.deepStrictEqual(calls.overlaps, [])
    assert.deepStrictEqual(calls.pages, [])
  })
})

describe("ChunkSize.selectEffect: same §3.7 table, effectful page walk", () => {
  for (const c of CASES) {
    it.effect(c.name, () =>
      Effect.gen(function*() {
        const s: Scenario = { ...base, ...c.scenario }
        const eff = yield* runSelectEffect(s)
        const pure = runSelect(s)
        assert.deepStrictEqual(eff.result, c.expected)
        // same predicate calls, same order, as the pure walk
        assert.deepStrictEqual(eff.calls, pure.calls)
      }))
  }

  it.effect("§3.7 a failing page walk fails selectEffect with its error", () =>
    Effect.gen(function*() {
      const calls: Calls = { overlaps: [], pages: [] }
      const { allPagesPresent: _unused, ...input } = inputOf({ ...base, threshold: SZ_2M }, calls)
      const err = yield* Effect.flip(CS.selectEffect(input, (start, end) => Effect.fail({ start, end })))
      assert.deepStrictEqual(err, W2M)
    }))

  it.effect("§3.7 the page walk is not run when no candidate needs it", () =>
    Effect.gen(function*() {
      const calls: Calls = { overlaps: [], pages: [] }
      const { allPagesPresent: _unused, ...input } = inputOf({ ...base, threshold: SZ_64K - 1 }, calls)
      const w = yield* CS.selectEffect(input, () => Effect.die("page walk must not run"))
      assert.deepStrictEqual(w, W2M)
    }))
})

// ---------------------------------------------------------------------------
// property test against the naive reference
// ---------------------------------------------------------------------------

const int = (minimum: number, maximum: number) =>
  Arbitrary.schema(Schema.Int.check(Schema.isBetween({ minimum, maximum })))

/** A distance with a log-uniform-ish scale: `frac / 1000 * 2^exp`, exp in [minExp, maxExp]. */
const distance = (maxExp: number, minExp = 0) =>
  Arbitrary.map(Arbitrary.all({ e: int(minExp, maxExp), f: int(0, 1000) }), ({ e, f }) => Math.round((f / 1000) * 2 ** e))

const clampAddr = (a: number): number => Math.min(Math.max(a, 0), TOP)

const ANCHORS = [0, 2 ** 21, 2 ** 32, 2 ** 47, 2 ** 52, TOP - 2 ** 26, TOP - 2 ** 21] as const

const WindowArb = Arbitrary.all({ lo: distance(41, 12), hi: distance(41, 12), outside: int(0, 15), jitter: int(0, 8) })

const RangeArb = Arbitrary.all({ off: distance(28), neg: Arbitrary.schema(Schema.Boolean), len: distance(14) })
const AbsentArb = Arbitrary.all({ off: distance(28), neg: Arbitrary.schema(Schema.Boolean) })

const ScenarioArb = Arbitrary.map(
  Arbitrary.all({
    addrMode: int(0, ANCHORS.length),
    anyAddr: int(0, TOP - 1),
    near: int(0, 2 ** 26 - 1),
    exps: Arbitrary.array(int(13, 40), { maxLength: 5 }),
    align: int(0, 3),
    vma: WindowArb,
    notifier: WindowArb,
    gpuva: WindowArb,
    thresholdMode: int(0, 6),
    thresholdExp: int(12, 40),
    ranges: Arbitrary.array(RangeArb, { maxLength: 6 }),
    absent: Arbitrary.array(AbsentArb, { maxLength: 6 })
  }),
  (g): Scenario => {
    const anchor = ANCHORS[g.addrMode]
    const faultAddr = anchor === undefined ? g.anyAddr : Math.min(anchor + g.near, TOP - 1)
    const chunkSizes = [...new Set(g.exps)].sort((a, b) => b - a).map((e) => 2 ** e).concat([SZ_4K])
    const grain = [1, SZ_4K, SZ_64K, SZ_2M][g.align] ?? 1
    const mkWin = (w: { lo: number; hi: number; outside: number; jitter: number }): Win => {
      // outside === 0 (1 in 16): a window entirely above the fault address (does not contain it)
      let start = w.outside === 0 ? faultAddr + 1 + w.lo : faultAddr - w.lo
      let end = w.outside === 0 ? start + 1 + w.hi : faultAddr + 1 + w.hi
      // jitter 0..3 moves an aligned bound by one byte (off-by-one edges)
      const js = w.jitter === 0 ? -1 : w.jitter === 1 ? 1 : 0
      const je = w.jitter === 2 ? -1 : w.jitter === 3 ? 1 : 0
      start = clampAddr(Math.floor(start / grain) * grain + js)
      end = clampAddr(Math.ceil(end / grain) * grain + je)
      return { start, end: Math.max(end, start) }
    }
    const page = Math.floor(faultAddr / SZ_4K) * SZ_4K
    const ranges = g.ranges.map((r) => {
      const start = clampAddr(page + (r.neg ? -r.off : r.off) * SZ_4K)
      return { start, end: clampAddr(start + (1 + r.len) * SZ_4K) }
    }).filter((r) => r.start < r.end)
    const absent = g.absent.map((a) => clampAddr(page + (a.neg ? -a.off : a.off) * SZ_4K)).filter((p) => p < TOP)
    const threshold = [0, SZ_4K, SZ_64K, SZ_2M, SZ_2M - 1, 2 ** 40, 2 ** g.thresholdExp][g.thresholdMode] ?? 0
    return {
      faultAddr,
      vma: mkWin(g.vma),
      notifier: mkWin(g.notifier),
      gpuva: mkWin(g.gpuva),
      chunkSizes,
      threshold,
      ranges,
      absent
    }
  }
)

describe("ChunkSize.select: property against the naive reference", () => {
  it.prop(
    "§3.7 select agrees with the naive enumeration; predicates see only aligned, fitting, non-4 KiB windows",
    { s: ScenarioArb },
    ({ s }) => {
      const { calls, result } = runSelect(s)
      const expected = naiveSelect(s)
      if (JSON.stringify(result) !== JSON.stringify(expected)) {
        assert.deepStrictEqual(result, expected, JSON.stringify(s))
      }
      for (const w of [...calls.overlaps, ...calls.pages]) {
        const size = w.end - w.start
        assert.include(s.chunkSizes, size)
        assert.notStrictEqual(size, SZ_4K)
        assert.strictEqual(w.start % size, 0)
        assert.isTrue(w.start <= s.faultAddr && s.faultAddr < w.end)
        assert.isTrue(w.start >= s.vma.start && w.end <= s.vma.end)
        assert.isTrue(w.start >= s.notifier.start && w.end <= s.notifier.end)
        assert.isTrue(w.start >= s.gpuva.start && w.end <= s.gpuva.end)
      }
      for (const w of calls.pages) assert.isAtMost(w.end - w.start, s.threshold)
      if (result !== undefined) {
        const size = result.end - result.start
        assert.include(s.chunkSizes, size)
        assert.isTrue(result.end <= TOP)
      }
    },
    { arbitrary: { runs: 3000 } }
  )

  it.effect.prop(
    "§3.7 selectEffect agrees with the naive enumeration and with select's predicate calls",
    { s: ScenarioArb },
    ({ s }) =>
      Effect.gen(function*() {
        const eff = yield* runSelectEffect(s)
        const pure = runSelect(s)
        const expected = naiveSelect(s)
        if (JSON.stringify(eff.result) !== JSON.stringify(expected) || JSON.stringify(eff.calls) !== JSON.stringify(pure.calls)) {
          assert.deepStrictEqual(eff.result, expected, JSON.stringify(s))
          assert.deepStrictEqual(eff.calls, pure.calls, JSON.stringify(s))
        }
      }),
    { arbitrary: { runs: 1000 } }
  )
})
