/**
 * Explorer throughput (issue #12): schedules per second of a DFS at preemption
 * bound 2 on the built-in `explore-four-actors` config, on one thread and on
 * two workers (the first 4 000 schedules in DFS order each, so both rows do
 * the same work), and the explorer's own overhead: the toy program of 2 actors
 * × 6 steps (924 schedules, unbounded) beside a plain loop enumerating the same
 * interleavings.
 */
import { Effect } from "effect"
import { Worker } from "node:worker_threads"
import { loadWord } from "../src/cli/load.ts"
import { simulated } from "../src/cli/machines.ts"
import { Explore } from "../src/explore/Explore.ts"
import * as ScenarioTarget from "../src/explore/ScenarioTarget.ts"
import { exploreParallel } from "../src/explore/Workers.ts"
import { asActor, Interleaving } from "../src/services/Interleaving.ts"
import type { Row } from "./stats.ts"

const spawn = (id: number) => new Worker(new URL("../src/cli/exploreWorker.ts", import.meta.url), { workerData: id })

const toy = Effect.gen(function*() {
  const il = yield* Interleaving
  const log: Array<number> = []
  const actor = (i: number) =>
    asActor(Effect.gen(function*() {
      for (let k = 0; k < 6; k++) {
        yield* il.point("step")
        log.push(i)
      }
    }), `a${i}`)
  yield* Effect.all([actor(0), actor(1)], { concurrency: "unbounded", discard: true })
  return log.length
})

/** Every interleaving of two actors × n moves, enumerated by a plain recursive loop (the denominator). */
const plain = (n: number): number => {
  let count = 0
  const go = (a: number, b: number) => {
    if (a === 0 && b === 0) {
      count++
      return
    }
    if (a > 0) go(a - 1, b)
    if (b > 0) go(a, b - 1)
  }
  go(n, n)
  return count
}

export const benchExplore = async (): Promise<ReadonlyArray<Row>> => {
  const rows: Array<Row> = []
  const { scenario } = await Effect.runPromise(loadWord("explore-four-actors"))
  const budget = 4_000
  const one = await Effect.runPromise(ScenarioTarget.explore(scenario, simulated, { preemptions: 2, budget }))
  rows.push({ name: `explore-four-actors dfs K=2, 1 thread (${one.check.schedules} schedules)`, value: one.check.schedulesPerSecond, unit: "schedules/s", reference: "target a bench row (issue #16): met" })
  const two = await Effect.runPromise(exploreParallel(scenario, simulated, { preemptions: 2, budget: Math.ceil(budget / 16) }, 2, spawn))
  rows.push({ name: `explore-four-actors dfs K=2, 2 workers (${two.check.schedules} schedules)`, value: two.check.schedulesPerSecond, unit: "schedules/s", reference: "target a bench row (issue #16): met" })
  const t0 = performance.now()
  const r = await Effect.runPromise(Explore.check(toy, { preemptions: "all", reduction: false }))
  const explorerUs = ((performance.now() - t0) * 1000) / r.schedules
  const t1 = performance.now()
  let n = 0
  for (let i = 0; i < 100; i++) n += plain(6)
  const plainUs = ((performance.now() - t1) * 1000) / n
  rows.push({ name: `toy 2 actors × 6 steps, ${r.schedules} schedules: µs per schedule (explorer)`, value: explorerUs, unit: "µs" })
  rows.push({ name: "toy: µs per interleaving (plain recursive enumeration)", value: plainUs, unit: "µs" })
  rows.push({ name: "toy: explorer / plain", value: explorerUs / plainUs, unit: "x", reference: "the price of running a real Effect program per schedule" })
  return rows
}
