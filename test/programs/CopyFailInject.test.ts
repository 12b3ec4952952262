/**
 * `machine.inject.copyFail` reaches the machine from a scenario file (it was
 * the machine's injection the scenario schema lacked): the next N migration
 * copies fail mid-way, the migration leaves every page untouched (kernel-
 * semantics §9: a failed migrate_vma copy restores the source), and the fault
 * falls back to system memory with the data intact.
 */
import { assert, describe, it } from "@effect/vitest"
import { Effect, Exit } from "effect"
import { simulated } from "../../src/cli/machines.ts"
import { decodeScenario } from "../../src/domain/Scenario.ts"
import * as ScenarioRunner from "../../src/programs/ScenarioRunner.ts"

const scenario = (copyFail: number) => {
  const exit = decodeScenario({
    name: "copy-fail",
    policy: { migrate: "always" },
    machine: { vramBytes: "64M", inject: { copyFail } },
    steps: [
      { op: "mmap", as: "a", length: "2M", align: "2M" },
      { op: "cpu-write", buf: "a", pattern: 3 },
      { op: "gpu-read", buf: "a", expect: 3 },
      { op: "cpu-read", buf: "a", expect: 3 }
    ]
  })
  if (Exit.isFailure(exit)) throw new Error(String(exit.cause))
  return exit.value
}

describe("§9 machine.inject.copyFail in a scenario", () => {
  it.effect("§9 a failed migration copy leaves the data intact and the range in system memory; without it the range migrates", () =>
    Effect.gen(function*() {
      const clean = yield* ScenarioRunner.run(scenario(0), simulated)
      assert.isTrue(clean.ok, JSON.stringify(clean))
      assert.isAbove(clean.metrics.bytesToVram, 0)
      const failed = yield* ScenarioRunner.run(scenario(1), simulated)
      assert.isTrue(failed.ok, JSON.stringify(failed))
      assert.isBelow(failed.metrics.bytesToVram, clean.metrics.bytesToVram)
    }))
})
