/**
 * The driver's Xe madvise attributes (`Driver.madvise` / `Driver.queryAttrs`,
 * `src/programs/Attributes.ts`) against Xe: `madvise_args_are_sane`,
 * `xe_vm_alloc_madvise_vma` (splitting), `madvise_atomic` /
 * `madvise_preferred_mem_loc` / `madvise_pat_index` (`skip_invalidation` when
 * the value is unchanged), `xe_zap_ptes_in_madvise_range`,
 * `xe_svm_unmap_address_range`, `xe_vma_need_vram_for_atomic`,
 * `xe_vma_resolve_pagemap` and `xe_svm_range_set_default_attr`. Each test fails
 * on the driver before madvise existed.
 */
import { assert, describe, it } from "@effect/vitest"
import { Effect } from "effect"
import { Driver } from "../../src/programs/Driver.ts"
import { Cpu } from "../../src/services/Cpu.ts"
import { DevicePagemaps } from "../../src/services/DevicePagemap.ts"
import { Gpu } from "../../src/services/Gpu.ts"
import { GpuSvm } from "../../src/services/GpuSvm.ts"
import { GpuSvmTest } from "../../src/testing/index.ts"

const KiB = 1024
const MiB = 1024 * KiB
const vram = { vramBytes: 64 * MiB, devicePrivateOwner: "test-gpu" }
const xe = { policy: "xe" as const, machine: vram }

const setup = (length: number, align = 2 * MiB) =>
  Effect.gen(function*() {
    const cpu = yield* Cpu
    const buf = yield* cpu.mmap({ length, align })
    yield* cpu.write(buf, new Uint8Array(length).fill(5))
    return buf
  })

const used = Effect.flatMap(DevicePagemaps, (p) => Effect.map(p.all[0]!.usage, (u) => u.usedBytes))

describe("Xe madvise attributes (DRM_IOCTL_XE_MADVISE, VM_QUERY_MEM_RANGE_ATTRS)", () => {
  it.effect("madvise_args_are_sane: unaligned, empty, out-of-window, unknown pagemap and no attribute are InvalidArgument", () =>
    Effect.gen(function*() {
      const driver = yield* Driver
      const cases: ReadonlyArray<readonly [number, number, Parameters<typeof driver.madvise>[2]]> = [
        [0x1000_0800, 0x1000_2000, { atomic: "global" }],
        [0x1000_0000, 0x1000_0000, { atomic: "global" }],
        [0x1000_0000, 0x1000_1800, { atomic: "global" }],
        [0, 2 ** 48, { atomic: "global" }],
        [0x1000_0000, 0x1000_1000, { preferredLoc: "no-such-pagemap" }],
        [0x1000_0000, 0x1000_1000, { migrationPolicy: "only-system-pages" }],
        [0x1000_0000, 0x1000_1000, { pat: 32 }],
        [0x1000_0000, 0x1000_1000, {}]
      ]
      for (const [s, e, a] of cases) {
        const err = yield* Effect.flip(driver.madvise(s, e, a))
        assert.strictEqual(err._tag, "InvalidArgument", JSON.stringify([s, e, a]))
      }
      assert.strictEqual((yield* Effect.flip(driver.queryAttrs(0x1001, 0x3000)))._tag, "InvalidArgument")
      // nothing changed: one piece over the whole window
      assert.strictEqual((yield* driver.queryAttrs(0x1000_0000, 0x1000_1000)).length, 1)
    }).pipe(Effect.provide(GpuSvmTest.layer(xe))))

  it.effect("xe_vm_alloc_madvise_vma: a madvise cuts the attribute ranges at its ends, VM_QUERY_MEM_RANGE_ATTRS reports them whole", () =>
    Effect.gen(function*() {
      const driver = yield* Driver
      const base = 0x4000_0000
      yield* driver.madvise(base + 64 * KiB, base + 128 * KiB, { atomic: "device", pat: 3 })
      yield* driver.madvise(base + 96 * KiB, base + 192 * KiB, { preferredLoc: "system" })
      const got = yield* driver.queryAttrs(base, base + 256 * KiB)
      assert.deepStrictEqual(got.slice(1, 4).map((p) => [p.start - base, p.end - base, p.attrs.atomic, p.attrs.pat, p.attrs.preferredLoc]), [
        [64 * KiB, 96 * KiB, "device", 3, "device"],
        [96 * KiB, 128 * KiB, "device", 3, "system"],
        [128 * KiB, 192 * KiB, "undefined", 0, "system"]
      ])
      assert.isTrue(got[0]!.start < base && got[4]!.end > base + 256 * KiB, "the outer pieces are whole")
    }).pipe(Effect.provide(GpuSvmTest.layer(xe))))

  it.effect("madvise-no-range-invalidate-same-attr: the same atomic value again zaps no PTE (skip_invalidation); a cut through a range still removes it (xe_svm_unmap_address_range)", () =>
    Effect.gen(function*() {
      const driver = yield* Driver
      const gpu = yield* Gpu
      const svm = yield* GpuSvm
      const buf = yield* setup(64 * KiB)
      yield* driver.madvise(buf, buf + 64 * KiB, { atomic: "global" })
      yield* driver.prefetch(buf, buf + 64 * KiB, { to: "vram" })
      assert.isTrue(yield* gpu.isBound(buf, buf + 64 * KiB))
      const flushes = (yield* gpu.stats).tlbFlushes
      yield* driver.madvise(buf, buf + 64 * KiB, { atomic: "global" })
      assert.strictEqual((yield* driver.counters).madviseInvalidations, 0)
      assert.strictEqual((yield* gpu.stats).tlbFlushes, flushes)
      assert.isTrue(yield* gpu.isBound(buf, buf + 64 * KiB))
      // IGT's second madvise covers half the buffer: the cut goes through the range
      yield* driver.madvise(buf, buf + 32 * KiB, { atomic: "global" })
      assert.strictEqual((yield* driver.counters).madviseInvalidations, 0)
      assert.deepStrictEqual(yield* svm.ranges(), [])
    }).pipe(Effect.provide(GpuSvmTest.layer(xe))))

  it.effect("madvise-range-invalidate-change-attr: a changed atomic value zaps the PTEs of the ranges there (xe_zap_ptes_in_madvise_range); the next GPU access faults and rebinds", () =>
    Effect.gen(function*() {
      const driver = yield* Driver
      const gpu = yield* Gpu
      const buf = yield* setup(64 * KiB)
      yield* driver.madvise(buf, buf + 64 * KiB, { atomic: "global" })
      yield* driver.prefetch(buf, buf + 64 * KiB, { to: "vram" })
      yield* driver.madvise(buf, buf + 64 * KiB, { atomic: "device" })
      assert.strictEqual((yield* driver.counters).madviseInvalidations, 1)
      assert.isFalse(yield* gpu.isBound(buf, buf + 64 * KiB))
      const faults = (yield* gpu.stats).faults
      yield* gpu.access(buf, 4, "atomic")
      assert.strictEqual((yield* gpu.stats).faults, faults + 1)
      const old = yield* gpu.access(buf, 4, "read")
      assert.deepStrictEqual([...old], [6, 5, 5, 5])
    }).pipe(Effect.provide(GpuSvmTest.layer(xe))))

  it.effect("xe_svm_unmap_address_range: a madvise cutting through a GPU SVM range removes that range (evicted from VRAM first)", () =>
    Effect.gen(function*() {
      const driver = yield* Driver
      const svm = yield* GpuSvm
      const cpu = yield* Cpu
      const buf = yield* setup(2 * MiB)
      yield* driver.prefetch(buf, buf + 2 * MiB, { to: "vram" })
      assert.deepStrictEqual((yield* svm.ranges()).map((r) => r.end - r.start), [2 * MiB])
      assert.strictEqual(yield* used, 2 * MiB)
      yield* driver.madvise(buf, buf + 1 * MiB, { pat: 2 })
      assert.deepStrictEqual(yield* svm.ranges(), [])
      assert.strictEqual(yield* used, 0)
      // data intact, and new ranges stay inside one attribute piece
      assert.deepStrictEqual([...(yield* cpu.read(buf + MiB - 2, 4))], [5, 5, 5, 5])
      yield* Gpu.use((g) => g.access(buf + MiB - 4096, 8192, "read"))
      const ranges = (yield* svm.ranges()).map((r) => [r.start - buf, r.end - buf])
      assert.isTrue(ranges.every(([s, e]) => e! <= MiB || s! >= MiB), JSON.stringify(ranges))
    }).pipe(Effect.provide(GpuSvmTest.layer(xe))))

  it.effect("xe_vma_need_vram_for_atomic: a GPU atomic where the atomic attribute is cpu fails AccessDenied (EACCES) without a migration", () =>
    Effect.gen(function*() {
      const driver = yield* Driver
      const gpu = yield* Gpu
      const buf = yield* setup(64 * KiB)
      yield* driver.madvise(buf, buf + 64 * KiB, { preferredLoc: "system", migrationPolicy: "all-pages", atomic: "cpu" })
      const err = yield* Effect.flip(gpu.access(buf, 4, "atomic"))
      assert.strictEqual(err.causeTag, "AccessDenied")
      assert.strictEqual(err.cause?.errno, "EACCES")
      assert.strictEqual(yield* used, 0)
      // reads and writes are fine there
      yield* gpu.access(buf, 4, "write", new Uint8Array([1, 2, 3, 4]))
    }).pipe(Effect.provide(GpuSvmTest.layer(xe))))

  it.effect("xe_vma_need_vram_for_atomic: atomic device needs VRAM unless the device has atomics on system memory (has_device_atomics_on_smem)", () =>
    Effect.gen(function*() {
      const driver = yield* Driver
      const gpu = yield* Gpu
      const buf = yield* setup(64 * KiB)
      yield* driver.madvise(buf, buf + 64 * KiB, { preferredLoc: "system", atomic: "device" })
      yield* gpu.access(buf, 4, "atomic")
      assert.strictEqual(yield* used, 0, "device atomics on smem: stays in system memory")
      yield* driver.madvise(buf, buf + 64 * KiB, { atomic: "global" })
      yield* gpu.access(buf, 4, "atomic")
      assert.strictEqual(yield* used, 64 * KiB, "global atomics need VRAM even with preferred location system")
    }).pipe(Effect.provide(GpuSvmTest.layer({ ...xe, driver: { deviceAtomicsOnSmem: true } }))))

  it.effect("xe_vma_resolve_pagemap: preferred location system keeps a GPU write fault in system memory; device migrates it", () =>
    Effect.gen(function*() {
      const driver = yield* Driver
      const gpu = yield* Gpu
      const buf = yield* setup(128 * KiB)
      yield* driver.madvise(buf, buf + 64 * KiB, { preferredLoc: "system" })
      yield* gpu.access(buf, 4, "write", new Uint8Array(4))
      assert.strictEqual(yield* used, 0)
      yield* gpu.access(buf + 64 * KiB, 4, "write", new Uint8Array(4))
      assert.strictEqual(yield* used, 64 * KiB)
    }).pipe(Effect.provide(GpuSvmTest.layer(xe))))

  it.effect("xe_svm_range_set_default_attr: after munmap the collector puts the range's attributes back to the defaults", () =>
    Effect.gen(function*() {
      const driver = yield* Driver
      const gpu = yield* Gpu
      const cpu = yield* Cpu
      const buf = yield* setup(64 * KiB)
      yield* driver.madvise(buf, buf + 64 * KiB, { atomic: "cpu" })
      yield* gpu.access(buf, 4, "read")
      yield* cpu.munmap(buf, 64 * KiB)
      yield* driver.collectGarbage
      const got = yield* driver.queryAttrs(buf, buf + 64 * KiB)
      assert.deepStrictEqual(got.map((p) => p.attrs.atomic), ["undefined"])
    }).pipe(Effect.provide(GpuSvmTest.layer(xe))))

  it.effect("attributes are per driver instance (per VM): a fresh driver starts with the defaults", () =>
    Effect.gen(function*() {
      const driver = yield* Driver
      const got = yield* driver.queryAttrs(0x1000_0000, 0x1000_1000)
      assert.deepStrictEqual(got[0]!.attrs, { preferredLoc: "device", migrationPolicy: "all-pages", atomic: "undefined", pat: 0 })
    }).pipe(Effect.provide(GpuSvmTest.layer(xe))))
})
