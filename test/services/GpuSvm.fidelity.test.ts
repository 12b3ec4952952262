/**
 * Kernel-semantics §11 items of the GPU SVM core: §11.7 (shmem is not
 * anonymous), §11.13 (check_pages retries EBUSY), §11.14 (chunks larger than
 * the notifier are accepted) and §11.16 (the `kernel: "6.17"` profile
 * reproduces the seed's bugs, `"7.0"` — the default — has the fixes). Each
 * 6.17 bug is shown next to the 7.0 behaviour on the same machine.
 */
import { assert, describe, it } from "@effect/vitest"
import { Effect, Exit, Fiber, Option } from "effect"
import { TestClock } from "effect/testing"
import { PROT_READ } from "../../src/domain/Prot.ts"
import type { SimulatedOptions } from "../../src/layers/simulated/Simulated.ts"
import { Cpu } from "../../src/services/Cpu.ts"
import { DevicePagemap } from "../../src/services/DevicePagemap.ts"
import { Dma } from "../../src/services/Dma.ts"
import { GpuSvm } from "../../src/services/GpuSvm.ts"
import { KERNEL_617_RETRY_BUDGET } from "../../src/services/gpusvm/Core.ts"
import { Machine } from "../../src/services/Machine.ts"
import { Mm } from "../../src/services/Mm.ts"
import { GPUVA_END, GPUVA_START, KiB, makeDriver, MiB, svmLayer } from "../support/harness.ts"

const fill = (n: number, v = 0xab) => new Uint8Array(n).fill(v)

const kernel = (k: "6.17" | "7.0", machine?: SimulatedOptions) =>
  svmLayer(makeDriver(), { config: { kernel: k }, ...(machine === undefined ? {} : { machine }) })

describe("GpuSvm §11.7 anonymous means vma_is_anonymous", () => {
  it.effect("§11.7 MAP_SHARED|MAP_ANONYMOUS is shmem: never migrateDevmem; private anonymous still is", () =>
    Effect.gen(function*() {
      const svm = yield* GpuSvm
      const cpu = yield* Cpu
      const shm = yield* cpu.mmap({ length: 2 * MiB, align: 2 * MiB, shared: true })
      const priv = yield* cpu.mmap({ length: 2 * MiB, align: 2 * MiB })
      const vma = Option.getOrThrow(yield* (yield* Mm).vmaLookup(shm))
      assert.strictEqual(vma.kind, "anonymous")
      assert.isTrue(vma.shared)
      assert.isFalse((yield* svm.rangeFindOrInsert(shm, GPUVA_START, GPUVA_END, { devmemPossible: true })).flags.migrateDevmem)
      assert.isTrue((yield* svm.rangeFindOrInsert(priv, GPUVA_START, GPUVA_END, { devmemPossible: true })).flags.migrateDevmem)
    }).pipe(Effect.provide(svmLayer(makeDriver()))))
})

describe("GpuSvm §11.13 check_pages retries EBUSY", () => {
  const warmWindow = (busy: number) =>
    Effect.gen(function*() {
      const svm = yield* GpuSvm
      const cpu = yield* Cpu
      const machine = yield* Machine
      const base = yield* cpu.mmap({ length: 256 * KiB, align: 64 * KiB })
      yield* cpu.write(base, fill(64 * KiB))
      yield* machine.inject({ hmmBusy: busy })
      const fiber = yield* Effect.forkChild(svm.rangeFindOrInsert(base + 4096, GPUVA_START, GPUVA_END, { checkPagesThreshold: 64 * KiB }))
      yield* TestClock.adjust("1001 millis")
      const r = yield* Fiber.join(fiber)
      return { size: r.end - r.start, start: r.start, base }
    }).pipe(Effect.provide(svmLayer(makeDriver())))

  it.effect("§11.13 check_pages retries HMM EBUSY like get_pages: a warm 64 KiB window is still chosen; endless EBUSY gives up at the timeout", () =>
    Effect.gen(function*() {
      const retried = yield* warmWindow(2)
      assert.strictEqual(retried.size, 64 * KiB)
      assert.strictEqual(retried.start, retried.base)
      // past the HMM timeout the check says "not present": the 64 KiB candidate is skipped
      const endless = yield* warmWindow(1_000_000_000)
      assert.strictEqual(endless.size, 4096)
    }))
})

describe("GpuSvm §11.14 chunk sizes larger than the notifier", () => {
  it.effect("§11.14 init accepts a 2 MiB chunk with 1 MiB notifiers; it is never chosen", () =>
    Effect.gen(function*() {
      const svm = yield* GpuSvm
      const cpu = yield* Cpu
      assert.deepStrictEqual(svm.config.chunkSizes, [2 * MiB, 64 * KiB, 4096])
      const base = yield* cpu.mmap({ length: 4 * MiB, align: 2 * MiB })
      const r = yield* svm.rangeFindOrInsert(base, GPUVA_START, GPUVA_END)
      assert.strictEqual(r.end - r.start, 64 * KiB)
      const n = (yield* svm.notifiers)[0]!
      assert.strictEqual(n.end - n.start, 1 * MiB)
    }).pipe(Effect.provide(svmLayer(makeDriver(), { config: { notifierSize: 1 * MiB } }))))
})

describe("GpuSvm §11.16 kernel profiles", () => {
  it.effect("§11.16 the default profile is 7.0", () =>
    Effect.map(GpuSvm, (svm) => assert.strictEqual(svm.config.kernel, "7.0")).pipe(Effect.provide(svmLayer(makeDriver()))))

  // a: get_pages restarts (sequence moved) without bound
  it.effect("§11.16 6.17 unbounded retry: get_pages restarts until the work budget, then Busy (livelock) counted in stats", () =>
    Effect.gen(function*() {
      const svm = yield* GpuSvm
      const cpu = yield* Cpu
      const machine = yield* Machine
      const base = yield* cpu.mmap({ length: 64 * KiB, align: 64 * KiB })
      const r = yield* svm.rangeFindOrInsert(base, GPUVA_START, GPUVA_END)
      yield* machine.inject({ seqRace: 1_000_000_000 })
      const err = yield* Effect.flip(svm.rangeGetPages(r))
      assert.strictEqual(err._tag, "Busy")
      assert.match(err.reason, /^livelock/)
      assert.include(err.reason, String(KERNEL_617_RETRY_BUDGET + 1))
      assert.strictEqual((yield* svm.stats).livelocks, 1)
      assert.strictEqual(yield* (yield* Mm).references, 0)
      assert.strictEqual(yield* (yield* Dma).liveMappings, 0)
    }).pipe(Effect.provide(kernel("6.17"))))

  it.effect("§11.16 7.0 bounded retry: the same endless race fails Busy at the HMM timeout, no livelock", () =>
    Effect.gen(function*() {
      const svm = yield* GpuSvm
      const cpu = yield* Cpu
      const machine = yield* Machine
      const base = yield* cpu.mmap({ length: 64 * KiB, align: 64 * KiB })
      const r = yield* svm.rangeFindOrInsert(base, GPUVA_START, GPUVA_END)
      yield* machine.inject({ seqRace: 1_000_000_000 })
      const fiber = yield* Effect.forkChild(svm.rangeGetPages(r))
      yield* TestClock.adjust("1001 millis")
      const exit = yield* Fiber.await(fiber)
      assert.isTrue(Exit.isFailure(exit))
      const err = yield* Effect.flip(Fiber.join(fiber))
      assert.strictEqual(err._tag, "Busy")
      assert.notMatch(err.reason, /livelock/)
      assert.strictEqual((yield* svm.stats).livelocks, 0)
      assert.strictEqual(yield* (yield* Mm).references, 0)
    }).pipe(Effect.provide(kernel("7.0"))))

  // b: CVE-2025-40336
  const thpRange = Effect.gen(function*() {
    const svm = yield* GpuSvm
    const cpu = yield* Cpu
    const base = yield* cpu.mmap({ length: 2 * MiB, align: 2 * MiB })
    yield* cpu.write(base, fill(2 * MiB))
    // a 64 KiB range at the start of the THP (the GPU VA window excludes 2 MiB chunks)
    const r = yield* svm.rangeFindOrInsert(base, base, base + 64 * KiB)
    assert.strictEqual(r.end - r.start, 64 * KiB)
    yield* svm.rangeGetPages(r)
    return Option.getOrThrow(yield* svm.range(r))
  })

  it.effect("§11.16 6.17 CVE-2025-40336: a 64 KiB range inside a THP DMA-maps order 9, and the IOMMU model flags the mapping past the range; 7.0 maps 16 pages", () =>
    Effect.gen(function*() {
      const fixed = yield* Effect.provide(Effect.zip(thpRange, Effect.flatMap(Machine, (m) => m.violations)), kernel("7.0"))
      assert.strictEqual(fixed[0].dmaAddr!.reduce((n, a) => n + 2 ** a.order, 0), 16)
      assert.deepStrictEqual(fixed[1], [])
      const live = yield* thpRange
      assert.strictEqual(live.dmaAddr!.length, 1)
      assert.strictEqual(live.dmaAddr![0]!.order, 9)
      const vs = yield* (yield* Machine).violations
      assert.strictEqual(vs.length, 1)
      assert.strictEqual(vs[0]!.invariant, "dma-map-past-range")
      assert.include(vs[0]!.detail, "CVE-2025-40336")
    }).pipe(Effect.provide(kernel("6.17"))))

  it.effect("§11.16 6.17 CVE-2025-40336 mid-THP: the unclamped run also leaves its frame; the violation is recorded and the map fails", () =>
    Effect.gen(function*() {
      const svm = yield* GpuSvm
      const cpu = yield* Cpu
      const base = yield* cpu.mmap({ length: 2 * MiB, align: 2 * MiB })
      yield* cpu.write(base, fill(2 * MiB))
      const at = base + 1 * MiB
      const r = yield* svm.rangeFindOrInsert(at, at, at + 64 * KiB)
      const err = yield* Effect.flip(svm.rangeGetPages(r))
      assert.strictEqual(err._tag, "BadAddress")
      const vs = yield* (yield* Machine).violations
      assert.isTrue(vs.some((v) => v.invariant === "dma-map-past-range" && v.detail.includes("CVE-2025-40336")))
      assert.strictEqual(yield* (yield* Dma).liveMappings, 0)
    }).pipe(Effect.provide(kernel("6.17"))))

  // c: read-only ranges
  const readOnlyRange = Effect.gen(function*() {
    const svm = yield* GpuSvm
    const cpu = yield* Cpu
    const base = yield* cpu.mmap({ length: 64 * KiB, align: 64 * KiB, prot: PROT_READ })
    const r = yield* svm.rangeFindOrInsert(base, GPUVA_START, GPUVA_END, { readOnly: true })
    yield* svm.rangeGetPages(r, { readOnly: true })
    return Option.getOrThrow(yield* svm.range(r))
  })

  it.effect("§11.16 6.17 read-only ranges map bidirectional: violation readonly-mapped-bidirectional; 7.0 maps them to-device", () =>
    Effect.gen(function*() {
      const fixed = yield* Effect.provide(Effect.zip(readOnlyRange, Effect.flatMap(Machine, (m) => m.violations)), kernel("7.0"))
      assert.isTrue(fixed[0].dmaAddr!.every((a) => a.dir === "to-device"))
      assert.deepStrictEqual(fixed[1], [])
      const live = yield* readOnlyRange
      assert.isTrue(live.dmaAddr!.length > 0 && live.dmaAddr!.every((a) => a.dir === "bidirectional"))
      const vs = yield* (yield* Machine).violations
      assert.isTrue(vs.length > 0 && vs.every((v) => v.invariant === "readonly-mapped-bidirectional"))
    }).pipe(Effect.provide(kernel("6.17"))))

  // d: no allow_mixed
  const mixed = Effect.gen(function*() {
    const cpu = yield* Cpu
    const svm = yield* GpuSvm
    const pm = yield* DevicePagemap
    const base = yield* cpu.mmap({ length: 64 * KiB, align: 64 * KiB })
    yield* cpu.write(base, fill(64 * KiB, 5))
    const r = yield* svm.rangeFindOrInsert(base, GPUVA_START, GPUVA_END, { devmemPossible: true })
    yield* pm.populateMm(base, base + 32 * KiB)
    return yield* Effect.exit(svm.rangeGetPages(r, { allowMixed: true }))
  })
  const vram = { vramBytes: 16 * MiB, devicePrivateOwner: "test-gpu" }

  it.effect("§11.16 6.17 has no allow_mixed: ctx.allowMixed is ignored, a mixed range is MixedPages; 7.0 accepts it", () =>
    Effect.gen(function*() {
      assert.isTrue(Exit.isSuccess(yield* Effect.provide(mixed, kernel("7.0", vram))))
      const exit = yield* mixed
      assert.isTrue(Exit.isFailure(exit))
      const err = yield* Effect.flip(exit)
      assert.strictEqual(err._tag, "MixedPages")
      assert.strictEqual(yield* (yield* Dma).liveMappings, 0)
    }).pipe(Effect.provide(kernel("6.17", vram))))

  // e: range_evict's mm reference when the pfn array allocation fails
  const evictNoMem = Effect.gen(function*() {
    const svm = yield* GpuSvm
    const cpu = yield* Cpu
    const machine = yield* Machine
    const base = yield* cpu.mmap({ length: 64 * KiB, align: 64 * KiB })
    const r = yield* svm.rangeFindOrInsert(base, GPUVA_START, GPUVA_END)
    yield* svm.rangeGetPages(r)
    yield* machine.inject({ evictPfnAllocFail: 1 })
    const err = yield* Effect.flip(svm.rangeEvict(r))
    assert.strictEqual(err._tag, "OutOfMemory")
    assert.strictEqual(err.errno, "ENOMEM")
    // the injection was for one allocation: the next evict works
    yield* svm.rangeEvict(r)
    return yield* (yield* Mm).references
  })

  it.effect("§11.16 6.17 range_evict leaks its mm reference when the pfn array allocation fails", () =>
    Effect.map(evictNoMem, (refs) => assert.strictEqual(refs, 1)).pipe(Effect.provide(kernel("6.17"))))

  it.effect("§11.16 7.0 range_evict releases its mm reference when the pfn array allocation fails", () =>
    Effect.map(evictNoMem, (refs) => assert.strictEqual(refs, 0)).pipe(Effect.provide(kernel("7.0"))))
})
