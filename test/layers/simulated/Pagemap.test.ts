/**
 * The GPU SVM core over the simulated machine's device memory
 * (kernel-semantics §4, §5, §8, §9): `rangeGetPages` on device pages, mixed
 * and devmem-only ranges, `rangeEvict`, foreign owners, CPU touches of mapped
 * device pages, and the whole driver (fault handler + simulated GPU) reaching
 * VRAM.
 */
import { assert, describe, it } from "@effect/vitest"
import { Effect, Layer, Option } from "effect"
import type { Range } from "../../../src/domain/Range.ts"
import { Driver } from "../../../src/stacks/Driver.ts"
import { Cpu } from "../../../src/services/Cpu.ts"
import { DevicePagemap, DevicePagemaps } from "../../../src/services/DevicePagemap.ts"
import { Gpu } from "../../../src/services/Gpu.ts"
import { GpuSvm } from "../../../src/services/GpuSvm.ts"
import { Hmm } from "../../../src/services/Hmm.ts"
import { Machine } from "../../../src/services/Machine.ts"
import { Mm } from "../../../src/services/Mm.ts"
import { MmuNotifier } from "../../../src/services/MmuNotifier.ts"
import { GPUVA_END, GPUVA_START, KiB, makeDriver, MiB, svmLayer } from "../../support/harness.ts"
import { pattern } from "./support.ts"

const P = 4096
const OWNER = "test-gpu" // the harness config's devicePrivateOwner

const env = Effect.gen(function*() {
  return {
    svm: yield* GpuSvm,
    cpu: yield* Cpu,
    pm: yield* DevicePagemap,
    pms: (yield* DevicePagemaps).all,
    machine: yield* Machine
  }
})

/** Reads a range's bytes through its recorded device addresses (device pages only). */
const readThrough = (range: Range) =>
  Effect.gen(function*() {
    const { svm, pms } = yield* env
    const r = Option.getOrThrow(yield* svm.range(range))
    const { start, end } = r
    assert.isDefined(r.dmaAddr)
    const out = new Uint8Array(end - start)
    let at = 0
    for (const a of r.dmaAddr!) {
      const pm = pms.find((p) => p.proto === a.proto && a.addr >= p.dpaBase && a.addr < p.dpaBase + p.totalBytes)!
      const n = P * 2 ** a.order
      out.set(yield* pm.readDevice(a.addr, n), at)
      at += n
    }
    return out
  })

describe("GpuSvm over simulated device memory (kernel-semantics §4, §5, §9)", () => {
  it.effect("§4 rangeGetPages maps device pages through device_map: hasDevmemPages, the range's pagemap, device addresses with order 9", () => {
    const driver = makeDriver()
    return Effect.gen(function*() {
      const { svm, cpu, pm, machine } = yield* env
      const a = yield* cpu.mmap({ length: 2 * MiB, align: 2 * MiB })
      const data = pattern(2 * MiB, 31)
      yield* cpu.write(a, data)
      const r = yield* svm.rangeFindOrInsert(a, GPUVA_START, GPUVA_END, { devmemPossible: true })
      assert.isTrue(r.flags.migrateDevmem)
      yield* pm.populateMm(r.start, r.end)
      assert.deepInclude(driver.invalidations[0]!.range, { event: "migrate", owner: OWNER })
      yield* svm.rangeGetPages(r)
      const live = Option.getOrThrow(yield* svm.range(r))
      assert.isTrue(live.flags.hasDevmemPages && live.flags.hasDmaMapping)
      assert.strictEqual(live.pagemap, "vram0")
      assert.strictEqual(live.dmaAddr!.length, 1)
      assert.deepInclude(live.dmaAddr![0]!, { proto: "vram", order: 9 })
      assert.strictEqual(yield* pm.liveMappings, 1)
      assert.deepStrictEqual(yield* readThrough(r), data)
      assert.strictEqual(yield* svm.scanMm(r), "equal")
      yield* svm.rangeUnmapPages(r)
      assert.strictEqual(yield* pm.liveMappings, 0)
      assert.deepStrictEqual(yield* machine.violations, [])
    }).pipe(Effect.provide(svmLayer(driver, { machine: { vramBytes: 8 * MiB, devicePrivateOwner: OWNER } })))
  })

  it.effect("§4 mixed range: MixedPages (nothing left mapped); allowMixed accepts it; devmemOnly with a system page is BadAddress", () =>
    Effect.gen(function*() {
      const { svm, cpu, pm, machine } = yield* env
      const a = yield* cpu.mmap({ length: 64 * KiB, align: 64 * KiB })
      const data = pattern(64 * KiB, 32)
      yield* cpu.write(a, data)
      const r = yield* svm.rangeFindOrInsert(a, GPUVA_START, GPUVA_END, { devmemPossible: true })
      assert.strictEqual(r.end - r.start, 64 * KiB)
      yield* pm.populateMm(a, a + 32 * KiB)
      const mixed = yield* Effect.flip(svm.rangeGetPages(r))
      assert.strictEqual(mixed._tag, "MixedPages")
      assert.strictEqual(yield* pm.liveMappings, 0)
      assert.strictEqual((yield* machine.stats).dmaMappingsLive, 0)
      const only = yield* Effect.flip(svm.rangeGetPages(r, { devmemOnly: true, allowMixed: true }))
      assert.strictEqual(only._tag, "BadAddress")
      yield* svm.rangeGetPages(r, { allowMixed: true })
      const live = Option.getOrThrow(yield* svm.range(r))
      assert.isTrue(live.flags.hasDevmemPages)
      assert.strictEqual(live.pagemap, "vram0")
      assert.deepStrictEqual([...new Set(live.dmaAddr!.map((x) => x.proto))].sort(), ["system", "vram"])
      assert.strictEqual(yield* svm.scanMm(r), "mixed")
      yield* svm.rangeUnmapPages(r)
      // two allocations of one pagemap are mixed too
      yield* pm.populateMm(a + 32 * KiB, a + 64 * KiB)
      assert.strictEqual((yield* pm.usage).allocations, 2)
      assert.strictEqual((yield* Effect.flip(svm.rangeGetPages(r)))._tag, "MixedPages")
      assert.deepStrictEqual(yield* machine.violations, [])
    }).pipe(Effect.provide(svmLayer(makeDriver(), { machine: { vramBytes: 8 * MiB, devicePrivateOwner: OWNER } }))))

  it.effect("§5 rangeEvict brings every device page back to system memory, byte-exact, after a MIGRATE invalidation", () => {
    const driver = makeDriver()
    return Effect.gen(function*() {
      const { svm, cpu, pm, machine } = yield* env
      const a = yield* cpu.mmap({ length: 2 * MiB, align: 2 * MiB })
      const data = pattern(2 * MiB, 33)
      yield* cpu.write(a, data)
      const r = yield* svm.rangeFindOrInsert(a, GPUVA_START, GPUVA_END, { devmemPossible: true })
      yield* pm.populateMm(r.start, r.end, { timesliceMs: 0 })
      yield* svm.rangeGetPages(r)
      const before = driver.invalidations.length
      yield* svm.rangeEvict(r)
      assert.deepInclude(driver.invalidations[before]!.range, { event: "migrate", owner: OWNER })
      assert.isFalse(yield* svm.rangePagesValid(r))
      assert.strictEqual(yield* svm.scanMm(r), "system")
      assert.deepStrictEqual(yield* pm.usage, { totalBytes: 8 * MiB, usedBytes: 0, allocations: 0 })
      assert.strictEqual(yield* pm.liveMappings, 0)
      yield* svm.rangeGetPages(r)
      assert.isFalse(Option.getOrThrow(yield* svm.range(r)).flags.hasDevmemPages)
      assert.deepStrictEqual(yield* cpu.read(a, 2 * MiB), data)
      assert.deepStrictEqual(yield* machine.violations, [])
    }).pipe(Effect.provide(svmLayer(driver, { machine: { vramBytes: 8 * MiB, devicePrivateOwner: OWNER } })))
  })

  it.effect("§8/§9 two pagemaps with different owners: a foreign device page is migrated back by a faulting get_pages, and is not valid without fault", () =>
    Effect.gen(function*() {
      const { svm, cpu, pms, machine } = yield* env
      const mine = pms.find((p) => p.id === "mine")!
      const other = pms.find((p) => p.id === "other")!
      const a = yield* cpu.mmap({ length: 128 * KiB, align: 64 * KiB })
      const data = pattern(128 * KiB, 34)
      yield* cpu.write(a, data)
      const r1 = yield* svm.rangeFindOrInsert(a, GPUVA_START, GPUVA_END, { devmemPossible: true })
      const r2 = yield* svm.rangeFindOrInsert(a + 64 * KiB, GPUVA_START, GPUVA_END, { devmemPossible: true })
      yield* mine.populateMm(r1.start, r1.end)
      yield* other.populateMm(r2.start, r2.end)
      assert.strictEqual(yield* svm.scanMm(r2), "unpopulated") // foreign device pages are invisible without fault
      assert.strictEqual(yield* svm.scanMm(r2, "other-gpu"), "equal")
      // without fault: not valid (HMM directly, our owner)
      const hmm = yield* Hmm
      const mm = yield* Mm
      const n = (yield* svm.notifiers)[0]!
      const pfns = yield* mm.withReadLock(hmm.rangeFault({
        notifier: n.handle,
        notifierSeq: yield* (yield* MmuNotifier).readBegin(n.handle),
        start: r2.start,
        end: r2.end,
        fault: false,
        write: false,
        devicePrivateOwner: OWNER
      }))
      assert.isTrue(pfns.every((p) => !p.valid))
      // with fault (get_pages): migrated back, then mapped as system pages
      yield* svm.rangeGetPages(r2)
      const live2 = Option.getOrThrow(yield* svm.range(r2))
      assert.isFalse(live2.flags.hasDevmemPages)
      assert.isTrue(live2.dmaAddr!.every((x) => x.proto === "system"))
      assert.deepStrictEqual(yield* other.usage, { totalBytes: MiB, usedBytes: 0, allocations: 0 })
      // our own pagemap's pages are device pages
      yield* svm.rangeGetPages(r1)
      const live1 = Option.getOrThrow(yield* svm.range(r1))
      assert.strictEqual(live1.pagemap, "mine")
      assert.deepStrictEqual(yield* readThrough(r1), data.subarray(0, 64 * KiB))
      assert.deepStrictEqual(yield* cpu.read(a, 128 * KiB), data)
      assert.deepStrictEqual(yield* machine.violations, [])
    }).pipe(Effect.provide(svmLayer(makeDriver(), {
      machine: { pagemaps: [{ id: "mine", owner: OWNER, vramBytes: MiB }, { id: "other", owner: "other-gpu", vramBytes: MiB }] }
    }))))

  it.effect("§9 a CPU touch of mapped device pages: MIGRATE invalidation first, the driver unmaps, the range is no longer valid, no stale mapping", () => {
    const driver = makeDriver()
    return Effect.gen(function*() {
      const { svm, cpu, pm, machine } = yield* env
      const a = yield* cpu.mmap({ length: 64 * KiB, align: 64 * KiB })
      const data = pattern(64 * KiB, 35)
      yield* cpu.write(a, data)
      const r = yield* svm.rangeFindOrInsert(a, GPUVA_START, GPUVA_END, { devmemPossible: true })
      yield* pm.populateMm(r.start, r.end)
      yield* svm.rangeGetPages(r)
      assert.isTrue(yield* svm.rangePagesValid(r))
      assert.deepStrictEqual(yield* cpu.read(a + 5, 3), data.subarray(5, 8))
      const last = driver.invalidations[driver.invalidations.length - 1]!
      assert.deepInclude(last.range, { event: "migrate", owner: OWNER })
      assert.deepStrictEqual(last.rangesUnmapped, [r.id])
      assert.isFalse(yield* svm.rangePagesValid(r))
      assert.strictEqual(yield* pm.liveMappings, 0)
      assert.deepStrictEqual(yield* pm.usage, { totalBytes: 8 * MiB, usedBytes: 0, allocations: 0 })
      assert.deepStrictEqual(yield* machine.violations, [])
    }).pipe(Effect.provide(svmLayer(driver, { machine: { vramBytes: 8 * MiB, devicePrivateOwner: OWNER } })))
  })
})

describe("the driver and the simulated GPU over device memory (kernel-semantics §9, §10)", () => {
  const stack = () =>
    Driver.simulated({
      machine: { vramBytes: 32 * MiB, devicePrivateOwner: OWNER },
      config: { name: "test", devicePrivateOwner: OWNER },
      policy: "always",
      driver: { timesliceMs: 0 }
    })

  it.effect("§10 GPU faults migrate to VRAM, GPU writes and atomics land in VRAM, the CPU reads them back byte-exact", () =>
    Effect.gen(function*() {
      const gpu = yield* Gpu
      const cpu = yield* Cpu
      const pm = yield* DevicePagemap
      const machine = yield* Machine
      const a = yield* cpu.mmap({ length: 2 * MiB, align: 2 * MiB })
      const data = pattern(2 * MiB, 36)
      yield* cpu.write(a, data)
      const got = yield* gpu.access(a + 100, 1000, "read")
      assert.deepStrictEqual(got, data.subarray(100, 1100))
      assert.strictEqual((yield* pm.usage).allocations, 1)
      yield* gpu.access(a + 4096, 3, "write", new Uint8Array([9, 8, 7]))
      for (let i = 0; i < 5; i++) yield* gpu.access(a + 8192, 4, "atomic")
      assert.isTrue((yield* pm.traffic).bytesToVram >= 2 * MiB)
      data.set([9, 8, 7], 4096)
      const v = new DataView(data.buffer).getUint32(8192, true)
      new DataView(data.buffer).setUint32(8192, (v + 5) % 2 ** 32, true)
      assert.deepStrictEqual(yield* cpu.read(a, 2 * MiB), data)
      assert.deepStrictEqual(yield* pm.usage, { totalBytes: 32 * MiB, usedBytes: 0, allocations: 0 })
      yield* cpu.munmap(a, 2 * MiB)
      assert.deepStrictEqual(yield* machine.violations, [])
    }).pipe(Effect.provide(stack())))
})
