/**
 * The CI-sized slice of the IGT matrix (issue #17 part 5): every section once
 * with the `once` family (so fork-read, busy, bo-unmap, madvise, mlock, …), the
 * standalone subtests (partial-*, unaligned-alloc, evict-malloc,
 * processes-evict-malloc, fault, madvise-*, pat-index-*, the shared-alloc
 * threads), and one subtest of each family world the `once` rows do not reach:
 * `threads-many-malloc` (one VM per thread), `process-many-malloc` (a forked
 * child per engine with its own VM) and `threads-shared-vm-many-mmap` (the
 * shared VM's final unbind), run in-process on the simulated machine
 * through the generator and the scenario runner. The benchmarks
 * (`fault-*-benchmark`, `prefetch-*-benchmark`: 64 MiB × 16,384 execs or 128
 * prefetches, 20 s and more each) run only in the whole matrix (`npm run igt`).
 */
import { assert, describe, it } from "@effect/vitest"
import { Effect } from "effect"
import { runSubtests } from "../../src/cli/igt.ts"
import { allSubtests } from "../../src/igt/Subtests.ts"

/** One subtest of each family world the `once` rows do not reach. */
const WORLDS = ["threads-many-malloc", "process-many-malloc", "threads-shared-vm-many-mmap"]

const SLICE = allSubtests().filter((t) =>
  t.family === "once" ||
  (t.kind === "standalone" && !t.name.endsWith("-benchmark")) ||
  WORLDS.includes(t.name)
)

describe("IGT slice (#17 part 5)", () => {
  it.effect("#17 part 5: once-<section>, the standalones and one subtest per world pass; none fails; the rest is skipped with a reason or vacuous", () =>
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
      // the worlds switched on in #17 part 5: fork, several processes, one VM per thread, madvise attributes, BOs and binds, busy
      for (const name of [
        "once-malloc-fork-read", "once-malloc-fork-read-after", "process-many-malloc", "processes-evict-malloc", "threads-many-malloc",
        "threads-shared-vm-many-mmap", "once-malloc-madvise", "madvise-preffered-loc-atomic-gl", "madvise-split-vma",
        "pat-index-madvise-pat-idx-uc-multi-vma", "once-malloc-bo-unmap", "once-malloc-busy", "once-new-busy"
      ]) assert.include(passed, name)
      for (const name of ["once-new-bo-map", "once-new-bo-map-nomemset", "evict-malloc-mix-bo", "processes-evict-malloc-mix-bo"]) assert.include(passed, name)
      const skipped = outcomes.filter((o) => o.outcome === "skipped")
      for (const o of skipped) assert.match(o.detail ?? "", /compute kernel/, `${o.name} says why it is skipped`)
      assert.sameMembers(skipped.map((o) => o.name), ["compute"])
      assert.isAtLeast(passed.length, 116)
      assert.isBelow(ms, 40_000, `the slice took ${Math.round(ms)} ms`)
    }), 120_000)
})
