/**
 * Device-exclusive access (issue #14 part 5, kernel-semantics §11.17): the HMM
 * selftests `exclusive` and `exclusive_mprotect` as built-in scenarios, and the
 * driver's `systemAtomics: "exclusive"` path, run on the simulated machine
 * through the runner as the CLI does.
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

const builtin = (name: string, seed = 1) =>
  Effect.gen(function*() {
    const scenario = yield* decodeScenarioEffect(JSON.parse(readFileSync(join(SCENARIOS, `${name}.json`), "utf8")))
    return yield* ScenarioRunner.run(scenario, simulated, { seed })
  })

describe("§11.17 device-exclusive access: HMM selftests as built-in scenarios", () => {
  it.effect("§11.17 hmm-exclusive (selftest exclusive): EXCLUSIVE owned by the device per page, CPU read/write revoke (EXCLUSIVE, no owner) and keep the bytes, the GPU atomic re-faults", () =>
    Effect.gen(function*() {
      const r = yield* builtin("hmm-exclusive")
      assert.isTrue(r.ok, show(r))
      assert.isUndefined(r.skipped)
    }))

  it.effect("§11.17 hmm-exclusive-mprotect (selftest exclusive_mprotect): mprotect keeps the entries, a device write is PermissionDenied, the CPU read revokes", () =>
    Effect.gen(function*() {
      const r = yield* builtin("hmm-exclusive-mprotect")
      assert.isTrue(r.ok, show(r))
    }))
})
