/**
 * The work budget of a scenario run (issue #18 "a global work budget per
 * scenario"; design.md §8 invariant 5, bounded work): steps, fault retries and
 * time are bounded; the first limit passed ends the run with violation
 * `budget` naming the figure, and threads waiting at barriers are released.
 */
import { assert, describe, it } from "@effect/vitest"
import { Effect, Exit } from "effect"
import { simulated } from "../../src/cli/machines.ts"
import { decodeScenario, type Scenario } from "../../src/domain/Scenario.ts"
import * as ScenarioRunner from "../../src/programs/ScenarioRunner.ts"

const scenario = (json: unknown): Scenario => {
  const exit = decodeScenario(json)
  if (Exit.isFailure(exit)) throw new Error(String(exit.cause))
  return exit.value
}

const writes = (n: number) =>
  scenario({
    name: "many-steps",
    steps: [
      { op: "mmap", as: "a", length: "64K" },
      ...Array.from({ length: n }, (_, i) => ({ op: "cpu-write", buf: "a", length: "4K", pattern: i % 256 }))
    ]
  })

describe("§8 bounded work: the run's work budget (issue #18)", () => {
  it.effect("§8 a run of more steps than the budget stops at the limit with violation budget naming the figure", () =>
    Effect.gen(function*() {
      const r = yield* ScenarioRunner.run(writes(50), simulated, { budget: { steps: 10 } })
      assert.isFalse(r.ok)
      const v = r.violations.filter((x) => x.invariant === "budget")
      assert.strictEqual(v.length, 1, JSON.stringify(r.violations))
      assert.include(v[0]!.detail, "steps: 11 steps exceed the work budget of 10")
      // within the budget, nothing is reported
      const ok = yield* ScenarioRunner.run(writes(50), simulated, { budget: { steps: 51 } })
      assert.isTrue(ok.ok, JSON.stringify(ok.violations))
    }))

  it.effect("§8 §11.17 fault retries of every VM count towards the budget (the retrying faults are in a second VM)", () =>
    Effect.gen(function*() {
      const s = scenario({
        name: "retries-vm",
        policy: { migrate: "never" },
        vms: ["v0", "v1"],
        machine: { inject: { dmaMapFail: 3 } },
        steps: [
          { op: "mmap", as: "a", length: "64K" },
          { op: "gpu-read", buf: "a", length: "4K", expect: "zero", vm: "v1" },
          { op: "gpu-read", buf: "a", length: "4K", expect: "zero", vm: "v1" }
        ]
      })
      const free = yield* ScenarioRunner.run(s, simulated)
      assert.isTrue(free.ok, JSON.stringify(free))
      const retries = Object.values(free.metrics.faultRetries).reduce((a, b) => a + b, 0)
      assert.isAtLeast(retries, 1, "the injection makes v1's fault handler retry")
      const r = yield* ScenarioRunner.run(s, simulated, { budget: { faultRetries: retries - 1 } })
      const v = r.violations.find((x) => x.invariant === "budget")
      assert.isDefined(v, JSON.stringify(r.violations))
      assert.include(v!.detail, `fault retries: ${retries} exceed the work budget of ${retries - 1}`)
    }))

  it.effect("§8 fault retries past the budget stop the run (injected DMA map failures make the driver retry)", () =>
    Effect.gen(function*() {
      const s = scenario({
        name: "retries",
        policy: { migrate: "never" },
        machine: { inject: { dmaMapFail: 3 } },
        steps: [
          { op: "mmap", as: "a", length: "64K" },
          { op: "gpu-read", buf: "a", length: "4K", expect: "zero" },
          { op: "gpu-read", buf: "a", length: "4K", expect: "zero" }
        ]
      })
      const free = yield* ScenarioRunner.run(s, simulated)
      assert.isTrue(free.ok, JSON.stringify(free))
      const retries = Object.values(free.metrics.faultRetries).reduce((a, b) => a + b, 0)
      assert.isAtLeast(retries, 1, "the injection makes the fault handler retry")
      const r = yield* ScenarioRunner.run(s, simulated, { budget: { faultRetries: retries - 1 } })
      const v = r.violations.find((x) => x.invariant === "budget")
      assert.isDefined(v, JSON.stringify(r.violations))
      assert.include(v!.detail, `fault retries: ${retries} exceed the work budget of ${retries - 1}`)
    }))

  it.effect("§8 a time budget passed ends the run; threads waiting at a barrier are released, not left hanging", () =>
    Effect.gen(function*() {
      const s = scenario({
        name: "time",
        threads: [
          { steps: [{ op: "mmap", as: "a", length: "64K" }, { op: "barrier", name: "x" }, { op: "cpu-write", buf: "a", pattern: 1 }] },
          { steps: [{ op: "mmap", as: "b", length: "64K" }, { op: "barrier", name: "x" }] }
        ]
      })
      const r = yield* ScenarioRunner.run(s, simulated, { budget: { ms: 0 } })
      const v = r.violations.find((x) => x.invariant === "budget")
      assert.isDefined(v, JSON.stringify(r.violations))
      assert.match(v!.detail, /^time: \d+ ms exceed the work budget of 0 ms$/)
      assert.isUndefined(r.violations.find((x) => x.invariant === "deadlock"))
    }))
})
