/**
 * Kernel page moves at the scenario level (kernel-semantics §11.17): the
 * `kernel-*` steps and `machine.kernel` (the "kernel" actor) decode, run,
 * stay deterministic for a seed, hold the coherence / IOMMU / leak invariants
 * over ≥ 500 seeded schedules of a kernel-actor-vs-GPU-fault scenario and
 * under the explorer's controlled interleaving, and a machine that cannot move
 * pages (the native one) is reported `skipped`.
 */
import { assert, describe, it } from "@effect/vitest"
import { Effect, Exit, Layer } from "effect"
import { nativeSkipReason } from "../../src/cli/load.ts"
import { simulated } from "../../src/cli/machines.ts"
import { decodeScenario, type Scenario } from "../../src/domain/Scenario.ts"
import * as ScenarioTarget from "../../src/explore/ScenarioTarget.ts"
import * as Runner from "../../src/programs/ScenarioRunner.ts"
import { Machine } from "../../src/services/Machine.ts"

const decode = (json: unknown): Scenario => {
  const e = decodeScenario(json)
  if (Exit.isFailure(e)) throw new Error(String(e.cause))
  return e.value
}

/** The kernel actor against a thread faulting a buffer in on the GPU, writing and reading it back, plus a CPU check. */
const actorVsFault = (rates: Record<string, number>) => decode({
  name: "kernel-actor-vs-fault",
  description: "kernel-semantics §11.17: the kernel actor moves pages while a thread faults them on the GPU",
  policy: { migrate: "never" },
  machine: { kernel: { ...rates, turns: 16 } },
  threads: [
    { steps: [
      { op: "mmap", as: "a", length: "2M", align: "2M" },
      { op: "cpu-write", buf: "a", pattern: 1, length: "32K" },
      { op: "gpu-read", buf: "a", expect: 1, length: "32K" },
      { op: "gpu-write", buf: "a", pattern: 2, offset: "16K", length: "16K" },
      { op: "gpu-read", buf: "a", expect: 2, offset: "16K", length: "16K" },
      { op: "cpu-read", buf: "a", expect: 1, length: "16K" }
    ] }
  ]
})

const ALL = { reclaim: 0.2, compaction: 0.2, khugepaged: 0.1, ksm: 0.2, thpSplit: 0.1 }

describe("§11.17 kernel page moves in scenarios", () => {
  it("§11.17 machine.kernel rates must be probabilities; kernel-* offsets must be page aligned", () => {
    const bad = decodeScenario({ name: "x", machine: { kernel: { reclaim: 2 } }, steps: [{ op: "mmap", as: "a", length: "4K" }, { op: "cpu-read", buf: "a" }] })
    assert.isTrue(Exit.isFailure(bad))
    const unaligned = decodeScenario({ name: "x", steps: [{ op: "mmap", as: "a", length: "8K" }, { op: "kernel-reclaim", buf: "a", offset: 12 }] })
    assert.isTrue(Exit.isFailure(unaligned))
    assert.isTrue(String((unaligned as Exit.Failure<unknown, unknown>).cause).includes("whole pages"))
  })

  it.effect("§11.17 ≥ 500 seeded schedules of the kernel actor vs GPU faults: coherence, IOMMU and leak invariants hold in every one", () =>
    Effect.gen(function*() {
      const s = actorVsFault(ALL)
      let clears = 0
      for (let seed = 1; seed <= 500; seed++) {
        const r = yield* Runner.run(s, simulated, { seed })
        assert.isTrue(r.ok, `seed ${seed}: ${JSON.stringify([...r.violations, ...r.failures])}`)
        clears += r.metrics.invalidations.clear ?? 0
      }
      assert.isAbove(clears, 250, "the kernel actor moved pages (CLEAR events) across the schedules")
    }), 60_000)

  it.effect("§11.17 the kernel actor is deterministic for a seed", () =>
    Effect.gen(function*() {
      const s = actorVsFault(ALL)
      const one = yield* Runner.run(s, simulated, { seed: 42 })
      const two = yield* Runner.run(s, simulated, { seed: 42 })
      assert.deepStrictEqual({ ...one, durationMs: 0 }, { ...two, durationMs: 0 })
    }))

  it.effect("§11.17 the kernel actor is an explorer actor: random schedules under a controlled interleaving hold the invariants", () =>
    Effect.gen(function*() {
      const s = actorVsFault({ reclaim: 0.5, compaction: 0.5, thpSplit: 0.3 })
      const r = yield* ScenarioTarget.explore(s, simulated, { strategy: "random", budget: 40, seed: 3 })
      assert.isUndefined(r.check.violation, r.check.violation?.detail)
      assert.strictEqual(r.check.schedules, 40)
    }), 60_000)

  it.effect("§11.17 a machine answering Unsupported (the native one) makes the run skipped: kernel page moves are simulated-only", () =>
    Effect.gen(function*() {
      const s = decode({
        name: "k",
        steps: [
          { op: "mmap", as: "a", length: "8K" },
          { op: "cpu-write", buf: "a", pattern: 1 },
          { op: "kernel-reclaim", buf: "a" },
          { op: "expect-metrics", invalidations: { clear: { min: 1 } } }, // not run once skipped
          { op: "cpu-read", buf: "a", expect: 1 }
        ]
      })
      const unsupported: Runner.StackFactory = (req) =>
        Layer.effect(Machine, Effect.map(Machine, (m) => ({ ...m, kernelMove: () => Effect.succeed({ _tag: "Unsupported" as const, reason: "no" }) }))).pipe(
          Layer.provideMerge(simulated(req))
        )
      const r = yield* Runner.run(s, unsupported)
      assert.strictEqual(r.skipped, "kernel page moves are simulated-only")
      assert.isTrue(r.ok)
      assert.strictEqual(nativeSkipReason(s), "kernel page moves are simulated-only")
      assert.strictEqual(nativeSkipReason(actorVsFault(ALL)), "kernel page moves are simulated-only")
      const plain = yield* Runner.run(s, simulated)
      assert.isUndefined(plain.skipped)
      assert.isTrue(plain.ok, JSON.stringify(plain.failures))
    }))
})
