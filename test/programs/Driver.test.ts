/**
 * The driver components (kernel-semantics §10) end to end on the simulated
 * machine with system memory: IGT-style flows through `Gpu.access`.
 */
import { assert, describe, it } from "@effect/vitest"
import { Effect } from "effect"
import { PROT_READ } from "../../src/domain/Prot.ts"
import { Cpu } from "../../src/services/Cpu.ts"
import { Gpu } from "../../src/services/Gpu.ts"
import { GpuSvm } from "../../src/services/GpuSvm.ts"
import { Machine } from "../../src/services/Machine.ts"
import { Driver } from "../../src/programs/Driver.ts"
import { GpuSvmTest } from "../../src/testing/index.ts"

const KiB = 1024
const MiB = 1024 * KiB
const pattern = (p: number, n: number) => Uint8Array.from({ length: n }, (_, i) => (p + i) % 256)

const noViolations = Effect.gen(function*() {
  assert.deepStrictEqual(yield* (yield* Machine).violations, [])
})

describe("Driver §10 on system memory", () => {
  it.effect("§10.1 first touch by the GPU faults the range in and reads zeros", () =>
    Effect.gen(function*() {
      const cpu = yield* Cpu
      const gpu = yield* Gpu
      const buf = yield* cpu.mmap({ length: 2 * MiB, align: 2 * MiB })
      const got = yield* gpu.access(buf + 100, 5000, "read")
      assert.deepStrictEqual(got, new Uint8Array(5000))
      const stats = yield* gpu.stats
      assert.isAtLeast(stats.faults, 1)
      const driver = yield* Driver
      assert.isAtLeast((yield* driver.counters).faults, 1)
      yield* noViolations
    }).pipe(Effect.provide(GpuSvmTest.layer())))

  it.effect("§10.1 CPU write then GPU read sees the bytes; GPU write then CPU read sees them", () =>
    Effect.gen(function*() {
      const cpu = yield* Cpu
      const gpu = yield* Gpu
      const buf = yield* cpu.mmap({ length: 256 * KiB })
      yield* cpu.write(buf, pattern(7, 256 * KiB))
      assert.deepStrictEqual(yield* gpu.access(buf, 256 * KiB, "read"), pattern(7, 256 * KiB))
      yield* gpu.access(buf + 4000, 10_000, "write", pattern(99, 10_000))
      assert.deepStrictEqual(yield* cpu.read(buf + 4000, 10_000), pattern(99, 10_000))
      yield* noViolations
    }).pipe(Effect.provide(GpuSvmTest.layer())))

  it.effect("§10.2 free and reuse of the same address: the GC removes the old range, the GPU sees the new bytes", () =>
    Effect.gen(function*() {
      const cpu = yield* Cpu
      const gpu = yield* Gpu
      const svm = yield* GpuSvm
      const driver = yield* Driver
      const buf = yield* cpu.mmap({ length: 64 * KiB, align: 64 * KiB })
      yield* cpu.write(buf, pattern(1, 64 * KiB))
      assert.deepStrictEqual(yield* gpu.access(buf, 64 * KiB, "read"), pattern(1, 64 * KiB))
      yield* cpu.munmap(buf, 64 * KiB)
      const again = yield* cpu.mmap({ length: 64 * KiB, addr: buf, fixed: true })
      assert.strictEqual(again, buf)
      yield* cpu.write(buf, pattern(2, 64 * KiB))
      assert.deepStrictEqual(yield* gpu.access(buf, 64 * KiB, "read"), pattern(2, 64 * KiB))
      const c = yield* driver.counters
      assert.isAtLeast(c.gcRuns, 1)
      assert.isAtLeast(c.rangesRemoved, 1)
      assert.isTrue((yield* svm.ranges()).every((r) => !r.flags.unmapped))
      yield* noViolations
    }).pipe(Effect.provide(GpuSvmTest.layer())))

  it.effect("§10.2–10.3 partial munmap of a bound 2 MiB range (collected by the worker), then GPU and CPU access of the rest", () =>
    Effect.gen(function*() {
      const cpu = yield* Cpu
      const gpu = yield* Gpu
      const svm = yield* GpuSvm
      const buf = yield* cpu.mmap({ length: 2 * MiB, align: 2 * MiB })
      yield* cpu.write(buf, pattern(3, 2 * MiB))
      assert.deepStrictEqual(yield* gpu.access(buf, 2 * MiB, "read"), pattern(3, 2 * MiB))
      const ranges = yield* svm.ranges()
      assert.strictEqual(ranges.length, 1)
      assert.strictEqual(ranges[0]!.end - ranges[0]!.start, 2 * MiB)
      yield* cpu.munmap(buf + 512 * KiB, 512 * KiB)
      // marked partially unmapped by the callback, then removed by the collector worker (§11.2)
      const marked = yield* svm.ranges()
      assert.isTrue(marked.length === 0 || marked[0]!.flags.partialUnmap)
      yield* (yield* Driver).idle
      assert.deepStrictEqual(yield* svm.ranges(), [])
      // the rest is still readable by the GPU (new, smaller ranges) and the CPU
      assert.deepStrictEqual(yield* gpu.access(buf + MiB, 4096, "read"), pattern(3, 2 * MiB).subarray(MiB, MiB + 4096))
      assert.deepStrictEqual(yield* cpu.read(buf, 4096), pattern(3, 4096))
      const live = yield* svm.ranges()
      assert.isTrue(live.every((r) => r.end <= buf + 512 * KiB || r.start >= buf + MiB))
      const gone = yield* Effect.flip(gpu.access(buf + 600 * KiB, 16, "read"))
      assert.strictEqual(gone._tag, "GpuFaultError")
      yield* noViolations
    }).pipe(Effect.provide(GpuSvmTest.layer())))

  it.effect("§10 mremap of a GPU-bound buffer: the GPU follows the bytes to the new address", () =>
    Effect.gen(function*() {
      const cpu = yield* Cpu
      const gpu = yield* Gpu
      const buf = yield* cpu.mmap({ length: 128 * KiB })
      yield* cpu.write(buf, pattern(11, 128 * KiB))
      assert.deepStrictEqual(yield* gpu.access(buf, 128 * KiB, "read"), pattern(11, 128 * KiB))
      const moved = yield* cpu.mremap(buf, 128 * KiB, 256 * KiB)
      assert.deepStrictEqual(yield* gpu.access(moved, 128 * KiB, "read"), pattern(11, 128 * KiB))
      if (moved !== buf) assert.strictEqual((yield* Effect.flip(gpu.access(buf, 4, "read")))._tag, "GpuFaultError")
      yield* noViolations
    }).pipe(Effect.provide(GpuSvmTest.layer())))

  it.effect("§10.1 GPU atomics on system memory (policy never) increment a u32", () =>
    Effect.gen(function*() {
      const cpu = yield* Cpu
      const gpu = yield* Gpu
      const buf = yield* cpu.mmap({ length: 64 * KiB })
      for (let i = 0; i < 5; i++) yield* gpu.access(buf + 8, 4, "atomic")
      const bytes = yield* cpu.read(buf + 8, 4)
      assert.strictEqual(new DataView(bytes.buffer, bytes.byteOffset).getUint32(0, true), 5)
    }).pipe(Effect.provide(GpuSvmTest.layer())))

  it.effect("§10.1 a bad address is a typed GpuFaultError (VmaNotFound); with a read-only mirror (§11.3) a GPU write after mprotect read-only too", () =>
    Effect.gen(function*() {
      const cpu = yield* Cpu
      const gpu = yield* Gpu
      const err = yield* Effect.flip(gpu.access(0x7000_0000_0000, 4, "read"))
      assert.strictEqual(err._tag, "GpuFaultError")
      assert.strictEqual(err.causeTag, "VmaNotFound")
      const buf = yield* cpu.mmap({ length: 64 * KiB })
      yield* gpu.access(buf, 16, "write", pattern(5, 16))
      yield* cpu.mprotect(buf, 64 * KiB, PROT_READ)
      assert.deepStrictEqual(yield* gpu.access(buf, 16, "read"), pattern(5, 16))
      const ro = yield* Effect.flip(gpu.access(buf, 16, "write", pattern(6, 16)))
      assert.strictEqual(ro.causeTag, "PermissionDenied")
      yield* noViolations
    }).pipe(Effect.provide(GpuSvmTest.layer({ driver: { readOnlyMirror: true } }))))

  it.effect("§10.3 madvise(DONTNEED) invalidates: the GPU then reads zeros", () =>
    Effect.gen(function*() {
      const cpu = yield* Cpu
      const gpu = yield* Gpu
      const buf = yield* cpu.mmap({ length: 64 * KiB, align: 64 * KiB })
      yield* cpu.write(buf, pattern(9, 64 * KiB))
      assert.deepStrictEqual(yield* gpu.access(buf, 64 * KiB, "read"), pattern(9, 64 * KiB))
      yield* cpu.madviseDontNeed(buf, 64 * KiB)
      assert.deepStrictEqual(yield* gpu.access(buf, 64 * KiB, "read"), new Uint8Array(64 * KiB))
      yield* noViolations
    }).pipe(Effect.provide(GpuSvmTest.layer())))
})
