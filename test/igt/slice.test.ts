/**
 * The CI-sized slice of the IGT matrix (issue #17 part 5): every section once
 * with the `once` and `once-large` families, and the standalone subtests the
 * model can express (partial-*, unaligned-alloc, evict-malloc, fault, the
 * shared-VM shared-alloc threads), run in-process on the simulated machine
 * through the generator and the scenario runner. The benchmarks
 * (`fault-*-benchmark`, `prefetch-*-benchmark`: 64 MiB × 16,384 execs or 128
 * prefetches, 20 s and more each) run only in the whole matrix (`npm run igt`).
 */
import { assert, describe, it } from "@effect/vitest"
import { Effect } from "effect"
import { runSubtests } from "../../src/cli/igt.ts"
import { allSubtests } from "../../src/igt/Subtests.ts"

const SLICE = allSubtests().filter((t) =>
  t.family === "once" ||
  (t.kind === "standalone" && !t.name.endsWith("-benchmark"))
)

describe("IGT slice (#17 part 5)", () => {
  it.effect("#17 part 5: once-<section> and the expressible standalones pass; none fails; the rest is skipped with a reason or vacuous", () =>
    Effect.gen(function*() {
      const started = performance.now()
      const outcomes = yield* runSubtests(SLICE)
      const ms = performance.now() - started
      const failed = outcomes.filter((o) => o.outcome === "failed")
      assert.deepStrictEqual(failed.map((o) => `${o.name}: ${o.detail}`), [])
      const passed = outcomes.filter((o) => o.outcome === "passed").map((o) => o.name)
      for (const name of ["once-malloc", "once-malloc-race", "once-mmap-remap-ro-dontunmap", "once-mmap-huge", "once-mmap-file", "partial-atomic-middle-remap-cpu-fault", "unaligned-alloc", "evict-malloc", "fault"]) {
        assert.include(passed, name)
      }
      for (const o of outcomes) if (o.outcome === "skipped") assert.isString(o.detail, `${o.name} says why it is skipped`)
      assert.isAtLeast(passed.length, 70)
      assert.isBelow(ms, 40_000, `the slice took ${Math.round(ms)} ms`)
    }), 120_000)
})
