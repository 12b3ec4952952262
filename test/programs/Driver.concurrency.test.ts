/**
 * The whole stack under explored interleavings (kernel-semantics §6, §10; the
 * invariants of design.md §8): GPU-access fibers and CPU fibers (munmap,
 * madvise, mprotect, re-mmap at the same address, CPU touches of memory the
 * GPU may have migrated) race on one buffer. Each fiber owns a quarter it
 * writes and verifies exactly (coherence); the last quarter is chaos, where
 * GPU reads may fail or see zeros but must never see anything else.
 *
 * After every run: no machine violation (IOMMU, stale device access), every
 * owned byte as its owner last wrote it, every fiber finished (bounded work),
 * and after exit + fini nothing left (no leaks).
 *
 * The interleavings are the explorer's (issue #12): for each of 10 seeded
 * workloads, `Explore.check` runs 100 PCT schedules (depth 3) of the four
 * actors — 1000 schedules in all, each chosen by a controlled scheduler rather
 * than a coin flip at yield points. A failure prints the workload, the
 * violation and its schedule string (replay it with strategy "replay").
 */
import { assert, describe, it } from "@effect/vitest"
import { Effect } from "effect"
import { Explore } from "../../src/explore/Explore.ts"
import { exercised, runSeed } from "../support/concurrencyWorkload.ts"

const WORKLOADS = 10
const SCHEDULES_PER_WORKLOAD = 100

describe("Driver §6/§10 coherence and safety under explored interleavings (design.md §8)", () => {
  it.live(`§8 invariants hold over ${WORKLOADS} workloads × ${SCHEDULES_PER_WORKLOAD} PCT schedules`, () =>
    Effect.gen(function*() {
      let schedules = 0
      for (let workload = 1; workload <= WORKLOADS; workload++) {
        // Effect.suspend: every schedule gets a fresh problem list (runSeed builds it)
        const program = Effect.flatMap(Effect.suspend(() => runSeed(workload)), (problems) => (problems.length === 0 ? Effect.void : Effect.fail(problems.slice(0, 4).join("; "))))
        const r = yield* Explore.check(program, { strategy: "pct", depth: 3, budget: SCHEDULES_PER_WORKLOAD, seed: workload, shrink: false })
        assert.isUndefined(r.violation, `workload ${workload}: ${r.violation?.kind}: ${r.violation?.detail} (schedule ${r.violation?.schedule})`)
        schedules += r.schedules
      }
      assert.strictEqual(schedules, WORKLOADS * SCHEDULES_PER_WORKLOAD)
      // device memory was really used: pages went to VRAM and came back (CPU touches, eviction)
      assert.isAbove(exercised.toVram, 1000)
      assert.isAbove(exercised.toRam, 1000)
    }), 240_000)
})