/**
 * `GpuSvmTest.layer`: the ready test stack, used as a user would. Its
 * defaults (name "test", owner "test-gpu", policy "never"), a user's own
 * `MigrationPolicy` layer, small chunk sizes, typed config errors, and the
 * wrappers that count the driver's calls to the GPU and the pagemaps
 * (kernel-semantics §11.7: a zap only over bound ranges; §4 device_map).
 */
import { assert, describe, it } from "@effect/vitest"
import { Effect, Layer } from "effect"
import { MigrationPolicy } from "../../src/programs/MigrationPolicy.ts"
import { Cpu } from "../../src/services/Cpu.ts"
import { DevicePagemap, DevicePagemaps } from "../../src/services/DevicePagemap.ts"
import { Gpu } from "../../src/services/Gpu.ts"
import { GpuSvm } from "../../src/services/GpuSvm.ts"
import type { DeviceMapper } from "../../src/services/Pagemaps.ts"
import { GpuSvmTest } from "../../src/testing/index.ts"

const KiB = 1024
const MiB = 1024 * KiB

describe("gpusvm/testing GpuSvmTest.layer", () => {
  it.effect("defaults: GPU SVM named test, owner test-gpu, policy never (nothing migrates even with VRAM)", () =>
    Effect.gen(function*() {
      const svm = yield* GpuSvm
      assert.strictEqual(svm.config.name, "test")
      assert.strictEqual(svm.config.devicePrivateOwner, "test-gpu")
      const cpu = yield* Cpu
      const buf = yield* cpu.mmap({ length: 2 * MiB, align: 2 * MiB })
      yield* (yield* Gpu).access(buf, 4, "atomic")
      assert.strictEqual((yield* (yield* DevicePagemap).usage).usedBytes, 0)
    }).pipe(Effect.provide(GpuSvmTest.layer({ machine: { vramBytes: 8 * MiB } }))))

  it.effect("§11.4 small chunk sizes: with [16 KiB, 4 KiB] a first GPU touch makes a 16 KiB range", () =>
    Effect.gen(function*() {
      const cpu = yield* Cpu
      const buf = yield* cpu.mmap({ length: 64 * KiB, align: 64 * KiB })
      yield* (yield* Gpu).access(buf, 4, "read")
      const ranges = yield* (yield* GpuSvm).ranges()
      assert.deepStrictEqual(ranges.map((r) => r.end - r.start), [16 * KiB])
    }).pipe(Effect.provide(GpuSvmTest.layer({ config: { chunkSizes: [16 * KiB, 4 * KiB] } }))))

  it.effect("a user's MigrationPolicy layer is the driver's policy: every fault asks it, and its target is used", () => {
    const asked: Array<number> = []
    const policy = Layer.effect(MigrationPolicy, Effect.gen(function*() {
      const pm = (yield* DevicePagemaps).all[0]!
      return MigrationPolicy.of({
        name: "mine",
        devmemPossible: true,
        atomicNeedsVram: false,
        target: (_svm, range) => Effect.sync(() => (asked.push(range.start), pm))
      })
    }))
    return Effect.gen(function*() {
      const cpu = yield* Cpu
      const buf = yield* cpu.mmap({ length: 2 * MiB, align: 2 * MiB })
      yield* (yield* Gpu).access(buf, 4096, "read")
      assert.deepStrictEqual(asked, [buf])
      assert.strictEqual((yield* (yield* DevicePagemap).usage).usedBytes, 2 * MiB)
    }).pipe(Effect.provide(GpuSvmTest.layer({ policy, machine: { vramBytes: 8 * MiB } })))
  })

  it.effect("an unknown config key is a typed InvalidConfig naming it", () =>
    Effect.gen(function*() {
      const err = yield* Effect.flip(Effect.provide(Effect.void, GpuSvmTest.layer({ config: { chunkSize: [4096] } as never })))
      assert.strictEqual(err._tag, "InvalidConfig")
      assert.include(err.message, "chunkSize")
    }))

  it.effect("§11.7 wrappers see the driver's calls: the GPU wrapper counts invalidations, the pagemaps wrapper device_map calls", () => {
    const zaps: Array<readonly [number, number]> = []
    let deviceMaps = 0
    const gpu = (g: Gpu["Service"]): Gpu["Service"] => ({ ...g, invalidate: (s, e) => Effect.andThen(Effect.sync(() => zaps.push([s, e])), g.invalidate(s, e)) })
    const pagemaps = (m: ReadonlyMap<string, DeviceMapper>) =>
      new Map([...m].map(([id, pm]) => [id, { ...pm, deviceMap: (p, o, d) => Effect.andThen(Effect.sync(() => deviceMaps++), pm.deviceMap(p, o, d)) } satisfies DeviceMapper]))
    return Effect.gen(function*() {
      const cpu = yield* Cpu
      const buf = yield* cpu.mmap({ length: 2 * MiB, align: 2 * MiB })
      yield* (yield* Gpu).access(buf, 4096, "read")
      assert.isAbove(deviceMaps, 0)
      yield* cpu.madviseDontNeed(buf, 4096)
      assert.deepStrictEqual(zaps, [[buf, buf + 2 * MiB]])
    }).pipe(Effect.provide(GpuSvmTest.layer({ policy: "always", machine: { vramBytes: 8 * MiB }, wrap: { gpu, pagemaps } })))
  })
})
