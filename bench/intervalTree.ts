/**
 * Micro-benchmark of `IntervalTree.first` (the kernel's
 * `interval_tree_iter_first`, the GPU-fault hot path: "which range holds this
 * address?") on trees of 10^3 … 10^6 non-overlapping 4 KiB intervals.
 *
 * Trees are built by sorted inserts (the worst case for an unbalanced tree).
 * Queries are single addresses, about half hitting an interval and half
 * falling into the 4 KiB holes between them, in two access patterns:
 * - "random": uniform over the tree's span. Large trees (10^6 nodes, ~100 MB
 *   of nodes scattered over the heap) then pay a cache miss on most levels, so
 *   this measures memory latency as much as the algorithm.
 * - "local": consecutive 4 KiB steps from a few random origins (a GPU
 *   faulting through a buffer). Consecutive lookups share most of their
 *   root-to-leaf path, so this shows the O(log n) scaling itself.
 *
 * Run directly: `node bench/intervalTree.ts`.
 */
import { pathToFileURL } from "node:url"
import * as IT from "../src/domain/IntervalTree.ts"

export interface BenchResult {
  readonly name: string
  readonly n: number
  /** median ns per `first()` call over the repetitions */
  readonly nsPerOp: number
  readonly min: number
  readonly max: number
}

const SIZES = [1_000, 10_000, 100_000, 1_000_000] as const
const PAGE = 0x1000
const STRIDE = 0x2000 // 4 KiB interval + 4 KiB hole
const BASE = 0x7f00_0000_0000 // a typical user-space VA (> 2^32, < 2^53)
const QUERIES = 1 << 16 // distinct query addresses per tree (array index mask, not an address)
const OPS_PER_REP = 200_000
const REPS = 9
const LOCAL_RUN = 512 // lookups per origin in the "local" pattern

/** mulberry32 — a tiny seeded PRNG (32-bit ops on the seed only, never on addresses). */
const prng = (seed: number) => () => {
  seed = (seed + 0x6d2b79f5) | 0
  let t = seed
  t = Math.imul(t ^ (t >>> 15), t | 1)
  t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
  return ((t ^ (t >>> 14)) >>> 0) / 4294967296
}

const build = (n: number): IT.IntervalTree<number> => {
  let tree = IT.empty<number>()
  for (let i = 0; i < n; i++) {
    const start = BASE + i * STRIDE
    tree = IT.insert(tree, start, start + PAGE - 1, i)
  }
  return tree
}

const makeRandomQueries = (n: number, seed: number): Float64Array => {
  const rand = prng(seed)
  const q = new Float64Array(QUERIES)
  const span = n * STRIDE
  for (let i = 0; i < QUERIES; i++) q[i] = BASE + Math.floor(rand() * span)
  return q
}

const makeLocalQueries = (n: number, seed: number): Float64Array => {
  const rand = prng(seed)
  const q = new Float64Array(QUERIES)
  const span = n * STRIDE
  let a = BASE
  for (let i = 0; i < QUERIES; i++) {
    if (i % LOCAL_RUN === 0) a = BASE + Math.floor(rand() * span)
    q[i] = a
    a += PAGE
    if (a >= BASE + span) a = BASE
  }
  return q
}

let sink = 0

/** Runs `ops` lookups; returns elapsed ns. */
const run = (tree: IT.IntervalTree<number>, q: Float64Array, ops: number): number => {
  const mask = QUERIES - 1
  let hits = 0
  const t0 = process.hrtime.bigint()
  for (let i = 0; i < ops; i++) {
    const a = q[i & mask]!
    const e = IT.first(tree, a, a)
    if (e !== undefined) hits += e.value
  }
  const t1 = process.hrtime.bigint()
  sink += hits
  return Number(t1 - t0)
}

const median = (xs: ReadonlyArray<number>): number => {
  const s = [...xs].sort((a, b) => a - b)
  const m = s.length >> 1
  return s.length % 2 === 1 ? s[m]! : (s[m - 1]! + s[m]!) / 2
}

interface Case {
  readonly name: string
  readonly n: number
  readonly tree: IT.IntervalTree<number>
  readonly queries: Float64Array
}

const runAll = async (): Promise<ReadonlyArray<BenchResult & { readonly height: number; readonly buildMs: number }>> => {
  const built = SIZES.map((n) => {
    const t0 = performance.now()
    const tree = build(n)
    return { n, tree, buildMs: performance.now() - t0 }
  })
  const cases: ReadonlyArray<Case & { readonly buildMs: number }> = [
    ...built.map(({ buildMs, n, tree }) => ({
      name: "IntervalTree.first random",
      n,
      tree,
      buildMs,
      queries: makeRandomQueries(n, n)
    })),
    ...built.map(({ buildMs, n, tree }) => ({
      name: "IntervalTree.first local",
      n,
      tree,
      buildMs,
      queries: makeLocalQueries(n, n + 1)
    }))
  ]

  // sanity: a lookup in the middle of an interval hits it, one in a hole misses
  for (const { n, tree } of built) {
    const mid = BASE + Math.floor(n / 2) * STRIDE
    if (IT.first(tree, mid + 7, mid + 7)?.value !== Math.floor(n / 2)) throw new Error(`bench: bad hit (n=${n})`)
    if (IT.first(tree, mid + PAGE, mid + PAGE) !== undefined) throw new Error(`bench: bad miss (n=${n})`)
  }
  // warm-up: let the JIT optimise `first` on every tree shape
  for (let w = 0; w < 2; w++) for (const c of cases) run(c.tree, c.queries, 100_000)
  await new Promise((resolve) => setImmediate(resolve))

  // round-robin repetitions so drift (thermal, GC) spreads over all cases
  const samples = cases.map(() => [] as Array<number>)
  for (let r = 0; r < REPS; r++) {
    cases.forEach((c, i) => samples[i]!.push(run(c.tree, c.queries, OPS_PER_REP) / OPS_PER_REP))
  }
  if (sink === -1) console.log(sink) // keep the work observable
  return cases.map((c, i) => ({
    name: c.name,
    n: c.n,
    nsPerOp: median(samples[i]!),
    min: Math.min(...samples[i]!),
    max: Math.max(...samples[i]!),
    height: IT.height(c.tree),
    buildMs: c.buildMs
  }))
}

/**
 * Builds trees of 10^3, 10^4, 10^5 and 10^6 non-overlapping 4 KiB intervals
 * (sorted inserts), warms up, then measures `IntervalTree.first` point
 * lookups: median / min / max ns per op over several repetitions. Returns
 * one row per (access pattern, n): names "IntervalTree.first random" (uniform
 * addresses, cache-hostile) and "IntervalTree.first local" (consecutive
 * pages). Takes about 10 s.
 */
export async function benchIntervalTree(): Promise<ReadonlyArray<{
  name: string
  n: number
  nsPerOp: number
  min: number
  max: number
}>> {
  const rows = await runAll()
  return rows.map(({ max, min, n, name, nsPerOp }) => ({ name, n, nsPerOp, min, max }))
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const t0 = performance.now()
  const results = await runAll()
  const fmt = (x: number, w = 8) => x.toFixed(1).padStart(w)
  console.log(
    `${"case".padEnd(26)} ${"n".padStart(8)} ${"height".padStart(6)} ${"build ms".padStart(8)} ${
      "median ns".padStart(9)
    } ${"min".padStart(8)} ${"max".padStart(8)}`
  )
  for (const r of results) {
    console.log(
      `${r.name.padEnd(26)} ${String(r.n).padStart(8)} ${String(r.height).padStart(6)} ${fmt(r.buildMs)} ${
        fmt(r.nsPerOp, 9)
      } ${fmt(r.min)} ${fmt(r.max)}`
    )
  }
  for (const name of new Set(results.map((r) => r.name))) {
    const small = results.find((r) => r.name === name && r.n === 1_000)
    const large = results.find((r) => r.name === name && r.n === 1_000_000)
    if (small !== undefined && large !== undefined) {
      console.log(`${name}: ratio 10^6 / 10^3 (median) = ${(large.nsPerOp / small.nsPerOp).toFixed(2)}x`)
    }
  }
  console.log(`total ${((performance.now() - t0) / 1000).toFixed(1)} s`)
}
