/**
 * The scenario ops `madvise` / `expect-attrs` (`src/programs/scenario/MadviseSteps.ts`)
 * and the built-ins porting IGT's madvise subtests.
 */
import { assert, describe, it } from "@effect/vitest"
import { Effect } from "effect"
import { readFileSync } from "node:fs"
import { join } from "node:path"
import { simulated } from "../../src/cli/machines.ts"
import { decodeScenarioEffect } from "../../src/domain/Scenario.ts"
import * as ScenarioRunner from "../../src/programs/ScenarioRunner.ts"
import { SCENARIOS } from "../cli/support.ts"

const runSteps = (steps: ReadonlyArray<unknown>) =>
  Effect.gen(function*() {
    const scenario = yield* decodeScenarioEffect({ name: "t", steps })
    return yield* ScenarioRunner.run(scenario, simulated)
  })

describe("scenario ops madvise / expect-attrs", () => {
  it.effect("expect-attrs reports a wrong boundary and a wrong value as failures; madvise with no attribute is InvalidArgument", () =>
    Effect.gen(function*() {
      const r = yield* runSteps([
        { op: "mmap", as: "a", length: "128K", align: "128K" },
        { op: "madvise", buf: "a", length: "64K", atomic: "device" },
        { op: "expect-attrs", buf: "a", ranges: [{ offset: 0, length: "64K", atomic: "device" }, { offset: "64K", length: "64K", atomic: "undefined" }] },
        { op: "expect-attrs", buf: "a", ranges: [{ offset: 0, length: "128K" }] },
        { op: "expect-attrs", buf: "a", ranges: [{ offset: 0, length: "64K", atomic: "global" }, { offset: "64K", length: "64K" }] },
        { op: "expect-error", step: { op: "madvise", buf: "a" }, tag: "InvalidArgument" },
        { op: "expect-metrics", madviseInvalidations: { eq: 0 } }
      ])
      assert.deepStrictEqual(r.failures.map((f) => f.step), ["steps[3]", "steps[4]"])
      assert.match(r.failures[1]!.detail, /atomic is "device", expected "global"/)
      assert.strictEqual(r.metrics.madviseInvalidations, undefined, "absent when 0")
    }))

  for (const name of ["madvise-no-range-invalidate-same-attr", "madvise-range-invalidate-change-attr", "madvise-preffered-loc-atomic-cpu"]) {
    it.effect(`IGT ${name}: the built-in port passes`, () =>
      Effect.gen(function*() {
        const text = readFileSync(join(SCENARIOS, `${name}.json`), "utf8")
        const scenario = yield* decodeScenarioEffect(JSON.parse(text))
        const r = yield* ScenarioRunner.run(scenario, simulated)
        assert.deepStrictEqual([r.failures, r.violations], [[], []])
        assert.isTrue(r.ok)
      }))
  }
})
