/**
 * Issue #14 part 7 (kernel-semantics §11.17) on the native machine: mremap to
 * a given address (MREMAP_FIXED) goes through the helper's mremap; the CLI
 * skips device-exclusive scenarios natively. mlock / munlock / MAP_LOCKED
 * (part 4) run natively: `Mlock.native.test.ts`.
 */
import { assert, describe, it } from "@effect/vitest"
import { Effect, Exit } from "effect"
import { nativeSkipReason } from "../../../src/cli/load.ts"
import { decodeScenario } from "../../../src/domain/Scenario.ts"
import { Cpu } from "../../../src/services/Cpu.ts"
import { Mm } from "../../../src/services/Mm.ts"
import { lacks, machineLayer, needs } from "./support.ts"

const KiB = 1024
const T = 30_000
const BASE = ["linux", "helperBuilt", "userfaultfd", "pfnVisible"] as const
const skip = lacks(...BASE)
const NEEDS = needs(...BASE)

describe("§11.17 native machine", () => {
  it.live.skipIf(skip)(`§11.17 mremap newAddr moves to exactly that address, replacing the mapping there; the bytes move along (${NEEDS})`, () =>
    Effect.gen(function*() {
      const cpu = yield* Cpu
      const mm = yield* Mm
      const a = yield* cpu.mmap({ length: 64 * KiB })
      const target = yield* cpu.mmap({ length: 64 * KiB, addr: a + 1024 * KiB })
      yield* cpu.write(a, Uint8Array.of(7, 8, 9))
      const to = yield* cpu.mremap(a, 64 * KiB, 64 * KiB, { newAddr: target })
      assert.strictEqual(to, target)
      assert.deepStrictEqual([...(yield* cpu.read(target, 3))], [7, 8, 9])
      assert.isTrue((yield* mm.vmaLookup(a))._tag === "None")
      const overlap = yield* Effect.flip(cpu.mremap(target, 64 * KiB, 64 * KiB, { newAddr: target + 16 * KiB }))
      assert.strictEqual(overlap._tag, "InvalidArgument")
    }).pipe(Effect.provide(machineLayer())), T)
})

describe("§11.17 the CLI skips device-exclusive scenarios on the native machine", () => {
  it("§11.17 nativeSkipReason names device-exclusive access for a make-exclusive step and for svm.systemAtomics exclusive", () => {
    const reason = (o: Record<string, unknown>) => {
      const exit = decodeScenario({ name: "t", ...o })
      if (Exit.isFailure(exit)) throw new Error(String(exit.cause))
      return nativeSkipReason(exit.value, () => 0)
    }
    assert.include(reason({ steps: [{ op: "mmap", as: "a", length: "64K" }, { op: "make-exclusive", buf: "a" }] }), "device-exclusive")
    assert.include(reason({ svm: { systemAtomics: "exclusive" }, steps: [{ op: "mmap", as: "a", length: "64K" }] }), "device-exclusive")
    assert.isUndefined(reason({ svm: { systemAtomics: "native" }, steps: [{ op: "mmap", as: "a", length: "64K" }] }))
  })
})
