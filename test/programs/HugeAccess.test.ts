/**
 * Huge accesses are typed errors or streams, never allocation defects (issue
 * #18 "untyped defects"): one `Cpu.read`/`Cpu.write`/GPU access moves at most
 * `MAX_RW_COUNT` bytes (Linux's bound on one read/write, include/linux/fs.h),
 * and a scenario step streams a window larger than `STREAM_PIECE` in pieces,
 * comparing piece by piece.
 */
import { assert, describe, it } from "@effect/vitest"
import { Effect, Exit } from "effect"
import { simulated } from "../../src/cli/machines.ts"
import { decodeScenario, type Scenario } from "../../src/domain/Scenario.ts"
import { MAX_RW_COUNT } from "../../src/layers/common/CpuArgs.ts"
import { STREAM_PIECE } from "../../src/programs/scenario/AccessSteps.ts"
import * as ScenarioRunner from "../../src/programs/ScenarioRunner.ts"
import { Cpu } from "../../src/services/Cpu.ts"
import { Gpu } from "../../src/services/Gpu.ts"
import { Driver } from "../../src/stacks/Driver.ts"

const MiB = 1024 * 1024

const scenario = (json: unknown): Scenario => {
  const exit = decodeScenario(json)
  if (Exit.isFailure(exit)) throw new Error(String(exit.cause))
  return exit.value
}

describe("issue #18: huge accesses", () => {
  it.effect("MAX_RW_COUNT: Cpu.read / Cpu.write / gpu.access of 1 TiB are typed InvalidArgument before any byte moves", () =>
    Effect.gen(function*() {
      const cpu = yield* Cpu
      const gpu = yield* Gpu
      const buf = yield* cpu.mmap({ length: 2 * MiB })
      const r = yield* Effect.flip(cpu.read(buf, 2 ** 40))
      assert.strictEqual(r._tag, "InvalidArgument")
      assert.include(r.message, "MAX_RW_COUNT")
      const g = yield* Effect.flip(gpu.access(buf, 2 ** 40, "read"))
      assert.strictEqual(g._tag, "GpuFaultError")
      assert.strictEqual(g.cause?._tag, "InvalidArgument")
      // the bound itself is still a valid length (checked without allocating: an unmapped tail is BadAddress)
      const edge = yield* Effect.flip(cpu.read(buf, MAX_RW_COUNT))
      assert.strictEqual(edge._tag, "BadAddress")
    }).pipe(Effect.provide(Driver.simulated())))

  it.effect("STREAM_PIECE: a whole-buffer write and read of 2.5 pieces streams, and a mismatch in the last piece names its offset", () =>
    Effect.gen(function*() {
      const length = STREAM_PIECE * 2 + STREAM_PIECE / 2
      const ok = yield* ScenarioRunner.run(scenario({
        name: "stream",
        policy: { migrate: "never" },
        steps: [
          { op: "mmap", as: "a", length },
          { op: "cpu-write", buf: "a", pattern: 7 },
          { op: "cpu-read", buf: "a", expect: 7 },
          { op: "gpu-read", buf: "a", offset: STREAM_PIECE * 2 - 4096, length: 8192, expect: 7 }
        ]
      }), simulated)
      assert.isTrue(ok.ok, JSON.stringify(ok.failures))
      const bad = yield* ScenarioRunner.run(scenario({
        name: "stream-bad",
        policy: { migrate: "never" },
        steps: [
          { op: "mmap", as: "a", length },
          { op: "cpu-write", buf: "a", pattern: 7 },
          { op: "cpu-write", buf: "a", offset: STREAM_PIECE * 2 + 12345, length: 1, pattern: 0 },
          { op: "cpu-read", buf: "a", expect: 7 }
        ]
      }), simulated)
      assert.strictEqual(bad.failures.length, 1, JSON.stringify(bad.failures))
      assert.include(bad.failures[0]!.detail, `byte at offset ${STREAM_PIECE * 2 + 12345}`)
    }), 60_000)
})
