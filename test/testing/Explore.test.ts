/**
 * `gpusvm/testing` explore: the explorer inside `it.effect`, each schedule on
 * a fresh stack given as `layer`; a violation fails with the counterexample's
 * schedule and trace, and the schedule replays it (design.md §8 under explored
 * interleavings; kernel-semantics §6 coherence, §11.2 the collector actor).
 */
import { assert, describe, it } from "@effect/vitest"
import { Effect } from "effect"
import { asActor } from "../../src/services/Interleaving.ts"
import { Cpu } from "../../src/services/Cpu.ts"
import { Gpu } from "../../src/services/Gpu.ts"
import { assertCoherent, assertNoLeaks, assertNoViolations, explore, GpuSvmTest } from "../../src/testing/index.ts"

const KiB = 1024

/** Two GPU actors each add 1 to the same byte with a read then a write: a lost update under some schedules. */
const lostUpdate = Effect.gen(function*() {
  const cpu = yield* Cpu
  const gpu = yield* Gpu
  const buf = yield* cpu.mmap({ length: 64 * KiB })
  const inc = (name: string) =>
    asActor(
      Effect.gen(function*() {
        const v = (yield* gpu.access(buf, 1, "read")) as Uint8Array
        yield* gpu.access(buf, 1, "write", Uint8Array.of(v[0]! + 1))
      }),
      name
    )
  yield* Effect.all([inc("gpu-a"), inc("gpu-b")], { concurrency: "unbounded", discard: true })
  const [x] = yield* cpu.read(buf, 1)
  if (x !== 2) return yield* Effect.fail(`lost update: the byte is ${x}, not 2`)
})

describe("gpusvm/testing explore", () => {
  it.effect("§8 a program's race on the stack fails with ExploreFailed: kind, detail, trace and a schedule that replays it", () =>
    Effect.gen(function*() {
      const layer = GpuSvmTest.layer()
      const err = yield* Effect.flip(explore(lostUpdate, { layer, preemptions: 1 }))
      if (err._tag !== "ExploreFailed") return assert.fail(`expected ExploreFailed, got ${err._tag}`)
      assert.strictEqual(err.kind, "failure")
      assert.include(err.detail, "lost update")
      assert.isAbove(err.trace.length, 1)
      assert.isTrue(err.trace.some((l) => l.includes("gpu-a")) && err.trace.some((l) => l.includes("gpu-b")))
      assert.include(err.message, `schedule: ${err.schedule}`)
      const again = yield* Effect.flip(explore(lostUpdate, { layer, strategy: "replay", schedule: err.schedule }))
      assert.strictEqual(again._tag === "ExploreFailed" ? again.detail : again._tag, err.detail)
    }), 60_000)

  it.effect("§6/§11.2 a correct program passes: GPU writes racing munmap of another buffer, coherent and leak-free on every schedule", () =>
    Effect.gen(function*() {
      const program = Effect.gen(function*() {
        const cpu = yield* Cpu
        const gpu = yield* Gpu
        const a = yield* cpu.mmap({ length: 64 * KiB })
        const b = yield* cpu.mmap({ length: 64 * KiB })
        yield* gpu.access(b, 4 * KiB, "read")
        yield* Effect.all([
          asActor(gpu.access(a, 8 * KiB, "write", new Uint8Array(8 * KiB).fill(5)), "gpu"),
          asActor(cpu.munmap(b, 64 * KiB), "cpu")
        ], { concurrency: "unbounded", discard: true })
        yield* assertCoherent([{ addr: a, length: 64 * KiB }])
        yield* assertNoViolations
        yield* assertNoLeaks
      })
      const r = yield* explore(program, { layer: GpuSvmTest.layer({ policy: "always", machine: { vramBytes: 4 * 1024 * KiB } }), strategy: "pct", budget: 40, seed: 3 })
      assert.strictEqual(r.schedules, 40)
      assert.isUndefined(r.violation)
    }), 60_000)

  it.effect("bad explorer options are a typed InvalidExploreOptions", () =>
    Effect.gen(function*() {
      const err = yield* Effect.flip(explore(Effect.void, { strategy: "replay" }))
      assert.strictEqual(err._tag, "InvalidExploreOptions")
    }))
})
