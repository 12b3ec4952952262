/**
 * The one-call stacks (issue #15 part 1): `Simulated.layer` provides the Gpu,
 * `Driver.layer` its own migration policy (default `"xe"`, as Xe), and
 * `Driver.simulated` / `Driver.native` the whole stack; configs are typed,
 * decoded once, and an unknown key is `InvalidConfig` naming it
 * (kernel-semantics §2: `drm_gpusvm_init`'s argument checks).
 */
import { assert, describe, it } from "@effect/vitest"
import { Effect, Layer } from "effect"
import * as GpuSvmConfig from "../../src/domain/GpuSvmConfig.ts"
import { Simulated } from "../../src/layers/simulated/Simulated.ts"
import { MigrationPolicy } from "../../src/programs/MigrationPolicy.ts"
import * as Policies from "../../src/programs/MigrationPolicy.ts"
import { Cpu } from "../../src/services/Cpu.ts"
import { Gpu } from "../../src/services/Gpu.ts"
import { GpuSvm } from "../../src/services/GpuSvm.ts"
import { Driver } from "../../src/stacks/Driver.ts"
import { Driver as DriverService } from "../../src/programs/Driver.ts"

const MiB = 1024 * 1024

/** Touch 2 MiB from the GPU once and report where the range ended up. */
const touch = Effect.gen(function*() {
  const cpu = yield* Cpu
  const gpu = yield* Gpu
  const svm = yield* GpuSvm
  const buf = yield* cpu.mmap({ length: 2 * MiB, align: 2 * MiB })
  yield* cpu.write(buf, new Uint8Array([5, 6, 7]))
  const bytes = yield* gpu.access(buf, 3, "read")
  const [range] = yield* svm.ranges()
  return { bytes: bytes instanceof Uint8Array ? [...bytes] : [], devmem: range?.flags.hasDevmemPages ?? false, faults: (yield* (yield* Driver).counters).faults }
})

describe("#15 part 1: one call per common stack", () => {
  it.effect("Simulated.layer alone provides a Gpu (no SimGpu.layer to compose); without a driver an access has no fault handler", () =>
    Effect.gen(function*() {
      const cpu = yield* Cpu
      const gpu = yield* Gpu
      const buf = yield* cpu.mmap({ length: 4096 })
      const err = yield* Effect.flip(gpu.access(buf, 4, "read"))
      assert.strictEqual(err._tag, "GpuFaultError")
      assert.include(err.message, "no fault handler")
    }).pipe(Effect.provide(Simulated.layer())))

  it.effect("Driver.simulated: the whole stack in one call; the default policy is xe (a 2 MiB range migrates to VRAM)", () =>
    Effect.gen(function*() {
      const r = yield* touch
      assert.deepStrictEqual(r.bytes, [5, 6, 7])
      assert.isTrue(r.devmem, "xe migrates ranges of ≥ 64 KiB when a pagemap exists")
      assert.strictEqual(r.faults, 1)
      assert.strictEqual((yield* Driver).options.maxRetries, 8)
    }).pipe(Effect.provide(Driver.simulated({ machine: { vramBytes: 64 * MiB } }))))

  it.effect("policy by name and as a user's layer: never keeps the range in system memory; a custom layer is the one used", () =>
    Effect.gen(function*() {
      const never = yield* touch.pipe(Effect.provide(Driver.simulated({ machine: { vramBytes: 64 * MiB }, policy: "never" })))
      assert.isFalse(never.devmem)
      let asked = 0
      const mine = Layer.succeed(MigrationPolicy, {
        name: "mine",
        devmemPossible: false,
        atomicNeedsVram: false,
        target: () => Effect.sync(() => void asked++)
      })
      const custom = yield* touch.pipe(Effect.provide(Driver.simulated({ machine: { vramBytes: 64 * MiB }, policy: mine })))
      assert.isFalse(custom.devmem)
      assert.strictEqual(asked, 1, "the fault asked the user's policy")
      assert.strictEqual(Policies.layerFromName("always"), Policies.layerAlways)
    }))

  it.effect("Driver.layer over a machine you provide: the same stack as Driver.simulated; yield* works with either Driver key", () =>
    Effect.gen(function*() {
      const r = yield* touch
      assert.isTrue(r.devmem)
      assert.strictEqual(yield* DriverService, yield* Driver)
    }).pipe(Effect.provide(DriverService.layer({ name: "mine", devicePrivateOwner: "gpusvm" }).pipe(Layer.provideMerge(Simulated.layer({ vramBytes: 64 * MiB }))))))

  it.effect("§2 an unknown config key (the typo chunkSize) is InvalidConfig naming it, from every constructor", () =>
    Effect.gen(function*() {
      const typo = { chunkSize: [4096] } as unknown as GpuSvmConfig.GpuSvmConfigInput
      for (const stack of [Driver.simulated({ config: typo }), Driver.layer(typo).pipe(Layer.provideMerge(Simulated.layer()))]) {
        const err = yield* Effect.flip(Effect.provide(touch, stack))
        assert.strictEqual(err._tag, "InvalidConfig")
        if (err._tag === "InvalidConfig") {
          assert.strictEqual(err.field, "chunkSize")
          assert.include(err.message, "unknown field")
        }
      }
      const direct = GpuSvmConfig.decodeExit(typo)
      assert.strictEqual(direct._tag, "Failure")
    }))

  it("§2 a config is decoded once: decoding a decoded config returns the same object", () => {
    const first = GpuSvmConfig.decodeExit({ name: "once", chunkSizes: [65536, 4096] })
    assert.strictEqual(first._tag, "Success")
    if (first._tag !== "Success") return
    assert.isTrue(GpuSvmConfig.isDecoded(first.value))
    const again = GpuSvmConfig.decodeExit(first.value)
    assert.strictEqual(again._tag === "Success" ? again.value : undefined, first.value)
    assert.isFalse(GpuSvmConfig.isDecoded({ ...first.value }), "a copy is decoded (and checked) again")
  })
})
