/**
 * `Prefetch.run` (design.md §7, Xe's VM_BIND prefetch): migrate and bind ahead
 * of use, skipping holes; `to: "system"` evicts back to RAM.
 */
import { assert, describe, it } from "@effect/vitest"
import { Effect } from "effect"
import { Driver } from "../../src/programs/Driver.ts"
import { Cpu } from "../../src/services/Cpu.ts"
import { DevicePagemap } from "../../src/services/DevicePagemap.ts"
import { Gpu } from "../../src/services/Gpu.ts"
import { GpuSvm } from "../../src/services/GpuSvm.ts"
import { Machine } from "../../src/services/Machine.ts"
import { GpuSvmTest } from "../../src/testing/index.ts"

const MiB = 1024 * 1024
const pattern = (p: number, n: number) => Uint8Array.from({ length: n }, (_, i) => (p + i) % 256)
const layer = GpuSvmTest.layer({ policy: "xe", machine: { vramBytes: 64 * MiB, devicePrivateOwner: "test-gpu" } })

describe("Prefetch §10 (VM_BIND prefetch)", () => {
  it.effect("§10 prefetch to vram migrates and binds a window with a hole: later GPU reads take no fault", () =>
    Effect.gen(function*() {
      const cpu = yield* Cpu
      const gpu = yield* Gpu
      const svm = yield* GpuSvm
      const driver = yield* Driver
      const pm = yield* DevicePagemap
      const a = yield* cpu.mmap({ length: 4 * MiB, align: 2 * MiB })
      yield* cpu.write(a, pattern(3, 4 * MiB))
      yield* cpu.munmap(a + 2 * MiB, 2 * MiB) // a hole inside the window
      const b = yield* cpu.mmap({ length: 2 * MiB, addr: a + 4 * MiB, fixed: true })
      yield* cpu.write(b, pattern(4, 2 * MiB))
      yield* driver.prefetch(a, b + 2 * MiB, { to: "vram" })
      const ranges = yield* svm.ranges()
      assert.deepStrictEqual(ranges.map((r) => [r.start, r.end]), [[a, a + 2 * MiB], [b, b + 2 * MiB]])
      assert.isTrue(ranges.every((r) => r.flags.hasDevmemPages))
      assert.strictEqual((yield* pm.usage).usedBytes, 4 * MiB)
      const faults = (yield* gpu.stats).faults
      assert.deepStrictEqual(yield* gpu.access(a, 2 * MiB, "read"), pattern(3, 2 * MiB))
      assert.deepStrictEqual(yield* gpu.access(b, 2 * MiB, "read"), pattern(4, 2 * MiB))
      assert.strictEqual((yield* gpu.stats).faults, faults)
      assert.deepStrictEqual(yield* (yield* Machine).violations, [])
    }).pipe(Effect.provide(layer)))

  it.effect("§10 prefetch to system evicts device memory back to RAM and rebinds", () =>
    Effect.gen(function*() {
      const cpu = yield* Cpu
      const gpu = yield* Gpu
      const svm = yield* GpuSvm
      const driver = yield* Driver
      const pm = yield* DevicePagemap
      const a = yield* cpu.mmap({ length: 2 * MiB, align: 2 * MiB })
      yield* gpu.access(a, 2 * MiB, "write", pattern(8, 2 * MiB))
      assert.isTrue((yield* pm.usage).usedBytes > 0)
      yield* driver.prefetch(a, a + 2 * MiB, { to: "system" })
      assert.strictEqual((yield* pm.usage).usedBytes, 0)
      const r = (yield* svm.ranges())[0]!
      assert.isFalse(r.flags.hasDevmemPages)
      assert.isTrue(r.flags.hasDmaMapping)
      assert.deepStrictEqual(yield* cpu.read(a, 2 * MiB), pattern(8, 2 * MiB))
    }).pipe(Effect.provide(layer)))
})
