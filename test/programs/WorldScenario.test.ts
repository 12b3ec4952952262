/**
 * Scenario-format additions of issue #14 (kernel-semantics §11.17): `mremap`
 * with `newAddr` (MREMAP_FIXED), `expect-metrics`, MREMAP_DONTUNMAP on a
 * shared mapping, and mlock / MAP_LOCKED — each run on the simulated machine
 * through the runner, as the CLI does.
 */
import { assert, describe, it } from "@effect/vitest"
import { Effect } from "effect"
import { readFileSync } from "node:fs"
import { join } from "node:path"
import { simulated } from "../../src/cli/machines.ts"
import { decodeScenarioEffect } from "../../src/domain/Scenario.ts"
import type { ScenarioResult } from "../../src/domain/ScenarioResult.ts"
import * as ScenarioRunner from "../../src/programs/ScenarioRunner.ts"
import { SCENARIOS } from "../cli/support.ts"

const show = (r: ScenarioResult) =>
  [...r.failures.map((f) => `failure ${f.step}: ${f.detail}`), ...r.violations.map((v) => `violation ${v.invariant}: ${v.detail}`)].join("\n")

const runSteps = (steps: ReadonlyArray<unknown>, seed = 1) =>
  Effect.gen(function*() {
    const scenario = yield* decodeScenarioEffect({ name: "t", steps })
    return yield* ScenarioRunner.run(scenario, simulated, { seed })
  })

const A = 0x2_0000_0000
const B = 0x2_0020_0000

describe("§11.17 part 7: mremap newAddr (MREMAP_FIXED | MREMAP_MAYMOVE)", () => {
  it.effect("§11.17 mremap newAddr moves the buffer to exactly that address, unmapping what was there (UNMAP to notifiers) — IGT mmap-remap", () =>
    Effect.gen(function*() {
      const r = yield* runSteps([
        { op: "mmap", as: "a", length: "64K", addr: A, fixed: true },
        { op: "cpu-write", buf: "a", pattern: 3 },
        { op: "gpu-read", buf: "a", expect: 3 },
        { op: "mmap", as: "n", length: "64K", addr: B, fixed: true },
        { op: "gpu-write", buf: "n", pattern: 90 },
        { op: "expect-metrics", invalidations: { unmap: { eq: 0 } } },
        { op: "mremap", buf: "a", newLength: "64K", newAddr: B, as: "b" },
        // the old range and the mapping at newAddr both went: UNMAP over each
        { op: "expect-metrics", invalidations: { unmap: { min: 2 } } },
        { op: "gpu-read", buf: "b", expect: 3 },
        { op: "cpu-read", buf: "b", expect: 3 },
        { op: "expect-error", step: { op: "cpu-read", buf: "a", length: 16, expect: 3 }, tag: "BadAddress" }
      ])
      assert.isTrue(r.ok, show(r))
      assert.isTrue(r.ranges.every((x) => x.start >= B && x.end <= B + 0x10000), JSON.stringify(r.ranges))
    }))

  it.effect("§11.17 mremap newAddr grows while moving; an overlapping or unaligned newAddr is InvalidArgument (Linux EINVAL)", () =>
    Effect.gen(function*() {
      const r = yield* runSteps([
        { op: "mmap", as: "a", length: "64K", addr: A, fixed: true },
        { op: "cpu-write", buf: "a", pattern: 7 },
        { op: "expect-error", step: { op: "mremap", buf: "a", newLength: "64K", newAddr: A + 0x8000, as: "x" }, tag: "InvalidArgument" },
        { op: "expect-error", step: { op: "mremap", buf: "a", newLength: "64K", newAddr: B + 1, as: "x" }, tag: "InvalidArgument" },
        { op: "mremap", buf: "a", newLength: "128K", newAddr: B, as: "b" },
        { op: "cpu-read", buf: "b", length: "64K", expect: 7 },
        { op: "cpu-read", buf: "b", offset: "64K", expect: "zero" },
        { op: "gpu-read", buf: "b", length: "64K", expect: 7 }
      ])
      assert.isTrue(r.ok, show(r))
    }))
})

describe("§11.17 part 7: expect-metrics", () => {
  it.effect("§11.17 expect-metrics passes when the counters so far meet eq/min/max and records one failure per unmet bound", () =>
    Effect.gen(function*() {
      const good = yield* runSteps([
        { op: "mmap", as: "a", length: "64K" },
        { op: "expect-metrics", faults: { eq: 0 }, rangesCreated: { max: 0 } },
        { op: "gpu-write", buf: "a", pattern: 1 },
        { op: "expect-metrics", faults: { min: 1 }, rangesCreated: { min: 1 }, faultRetries: { EAGAIN: { eq: 0 } }, gcRuns: { min: 0 } },
        { op: "cpu-read", buf: "a", expect: 1 }
      ])
      assert.isTrue(good.ok, show(good))
      const bad = yield* runSteps([
        { op: "mmap", as: "a", length: "64K" },
        { op: "gpu-write", buf: "a", pattern: 1 },
        { op: "expect-metrics", faults: { eq: 0 }, bytesToRam: { min: "1G" }, invalidations: { clear: { max: 0 } } },
        { op: "cpu-read", buf: "a", expect: 1 }
      ])
      assert.isFalse(bad.ok)
      assert.strictEqual(bad.failures.length, 1, show(bad))
      assert.match(bad.failures[0]!.detail, /faults is \d+, expected 0; bytesToRam is \d+, expected at least 1073741824/)
    }))

  it.effect("§11.17 expect-metrics reads the same counters as the result's metrics (one shared reader)", () =>
    Effect.gen(function*() {
      const first = yield* runSteps([
        { op: "mmap", as: "a", length: "2M", align: "2M" },
        { op: "cpu-write", buf: "a", pattern: 1 },
        { op: "gpu-write", buf: "a", pattern: 2 }
      ])
      assert.isTrue(first.ok, show(first))
      const m = first.metrics
      const again = yield* runSteps([
        { op: "mmap", as: "a", length: "2M", align: "2M" },
        { op: "cpu-write", buf: "a", pattern: 1 },
        { op: "gpu-write", buf: "a", pattern: 2 },
        {
          op: "expect-metrics",
          faults: { eq: m.faults },
          bytesToVram: { eq: m.bytesToVram },
          bytesToRam: { eq: m.bytesToRam },
          rangesCreated: { eq: m.rangesCreated },
          notifiersCreated: { eq: m.notifiersCreated },
          deviceBytesLive: { eq: m.deviceBytesLive },
          dmaMappingsLive: { eq: m.dmaMappingsLive },
          invalidations: { unmap: { eq: m.invalidations.unmap }, clear: { eq: m.invalidations.clear }, migrate: { eq: m.invalidations.migrate } }
        }
      ])
      assert.isTrue(again.ok, show(again))
    }))

  it.effect("§11.17 expect-metrics rejects unknown invalidation events and empty bounds at decode time", () =>
    Effect.gen(function*() {
      const e1 = yield* Effect.flip(decodeScenarioEffect({ name: "t", steps: [{ op: "expect-metrics", invalidations: { bogus: { eq: 0 } } }] }))
      assert.include(e1.message, "bogus")
      const e2 = yield* Effect.flip(decodeScenarioEffect({ name: "t", steps: [{ op: "expect-metrics", faults: {} }] }))
      assert.include(e2.message, "at least one of eq, min, max")
    }))
})

const builtin = (name: string) => JSON.parse(readFileSync(join(SCENARIOS, `${name}.json`), "utf8")) as { steps: ReadonlyArray<unknown> }

/** Runs built-in `name` under three seeds; each run must be ok. */
const builtinPasses = (name: string) =>
  Effect.forEach([1, 7, 99], (seed) =>
    Effect.map(runSteps(builtin(name).steps, seed), (r) => {
      assert.isTrue(r.ok, `${name} seed ${seed}: ${show(r)}`)
      return r
    }))

describe("§11.17 part 7 / §11.15: MREMAP_DONTUNMAP on a shared mapping", () => {
  it.effect("§11.15 §11.17 IGT approx-once-mmap-shared-remap-dontunmap: the moved pages keep the GPU's bytes; the old shared range stays mapped and refaults the same shmem bytes", () =>
    Effect.asVoid(builtinPasses("approx-once-mmap-shared-remap-dontunmap")))

  it.effect("§11.15 MREMAP_DONTUNMAP on a private anonymous mapping leaves the old range empty (reads zero), unlike a shared one", () =>
    Effect.gen(function*() {
      const r = yield* runSteps([
        { op: "mmap", as: "a", length: "64K", addr: A, fixed: true },
        { op: "cpu-write", buf: "a", pattern: 5 },
        { op: "mremap", buf: "a", newLength: "64K", newAddr: B, as: "b", dontUnmap: true },
        { op: "cpu-read", buf: "a", expect: "zero" },
        { op: "cpu-read", buf: "b", expect: 5 }
      ])
      assert.isTrue(r.ok, show(r))
    }))
})

describe("§11.17 part 4: mlock / munlock / MAP_LOCKED steps", () => {
  it.effect("§11.17 IGT approx-once-malloc-mlock: mlocked pages still migrate to VRAM on the GPU fault and back on the CPU read", () =>
    Effect.map(builtinPasses("approx-once-malloc-mlock"), (rs) => {
      for (const r of rs) assert.isAtLeast(r.metrics.bytesToVram, 64 * 1024)
    }))

  it.effect("§11.17 mlock populates at once: MAP_LOCKED and a partial mlock keep CPU/GPU data coherent; mlock over a hole is VmaNotFound (Linux ENOMEM) (IGT mmap-mlock)", () =>
    Effect.gen(function*() {
      const r = yield* runSteps([
        { op: "mmap", as: "a", length: "64K", locked: true },
        { op: "mmap", as: "b", length: "64K" },
        { op: "mlock", buf: "b", offset: "16K", length: "16K" },
        { op: "gpu-write", buf: "a", pattern: 3 },
        { op: "gpu-write", buf: "b", pattern: 4 },
        { op: "munlock", buf: "b" },
        { op: "cpu-read", buf: "a", expect: 3 },
        { op: "cpu-read", buf: "b", expect: 4 },
        { op: "munmap", buf: "b", offset: "16K", length: "16K" },
        { op: "expect-error", step: { op: "mlock", buf: "b" }, tag: "VmaNotFound" }
      ])
      assert.isTrue(r.ok, show(r))
    }))
})
