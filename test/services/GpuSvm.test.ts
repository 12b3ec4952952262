/**
 * The GPU SVM core on the simulated machine, step by step as kernel-semantics
 * §2–§7 describe it. Each test names the section it checks.
 */
import { assert, describe, it } from "@effect/vitest"
import { Effect, Exit, Fiber, Option } from "effect"
import { TestClock } from "effect/testing"
import { PROT_READ } from "../../src/domain/Prot.ts"
import { SEQ_NEVER } from "../../src/domain/Range.ts"
import { Cpu } from "../../src/services/Cpu.ts"
import { Dma } from "../../src/services/Dma.ts"
import { GpuSvm } from "../../src/services/GpuSvm.ts"
import { Machine } from "../../src/services/Machine.ts"
import { Mm } from "../../src/services/Mm.ts"
import { runOrder } from "../../src/services/gpusvm/Pages.ts"
import { GPUVA_END, GPUVA_START, KiB, makeDriver, MiB, svmLayer } from "../support/harness.ts"

const fill = (n: number, v = 0xab) => new Uint8Array(n).fill(v)

describe("GpuSvm §2 configuration", () => {
  it.effect("§2 a malformed config fails the layer with InvalidConfig naming the field", () =>
    Effect.gen(function*() {
      const build = Effect.provide(Effect.map(GpuSvm, (svm) => svm.config), svmLayer(makeDriver(), { config: { chunkSizes: [65536, 8192] } }))
      const err = yield* Effect.flip(build)
      assert.strictEqual(err._tag, "InvalidConfig")
      assert.strictEqual((err as { field: string }).field, "chunkSizes")
    }))
})

describe("GpuSvm §3 rangeFindOrInsert", () => {
  it.effect("§3.1 fault address outside [mmStart, mmStart + mmRange) is InvalidArgument (exclusive end)", () => {
    const driver = makeDriver()
    return Effect.gen(function*() {
      const svm = yield* GpuSvm
      const cpu = yield* Cpu
      const end = 64 * MiB + 16 * MiB
      yield* cpu.mmap({ length: 4 * MiB, addr: end - 2 * MiB, fixed: true })
      const past = yield* Effect.flip(svm.rangeFindOrInsert(end, GPUVA_START, GPUVA_END))
      assert.strictEqual(past._tag, "InvalidArgument")
      assert.strictEqual(past.errno, "EINVAL")
      const below = yield* Effect.flip(svm.rangeFindOrInsert(64 * MiB - 4096, GPUVA_START, GPUVA_END))
      assert.strictEqual(below._tag, "InvalidArgument")
      const inside = yield* svm.rangeFindOrInsert(end - 4096, GPUVA_START, GPUVA_END)
      assert.isTrue(inside.end <= end)
    }).pipe(Effect.provide(svmLayer(driver, { config: { mmStart: 64 * MiB, mmRange: 16 * MiB } })))
  })

  it.effect("§3.2 the address space is gone: BadAddress, and no notifier is left", () =>
    Effect.gen(function*() {
      const svm = yield* GpuSvm
      const cpu = yield* Cpu
      const addr = yield* cpu.mmap({ length: 2 * MiB })
      yield* cpu.exit
      const err = yield* Effect.flip(svm.rangeFindOrInsert(addr, GPUVA_START, GPUVA_END))
      assert.strictEqual(err._tag, "BadAddress")
      assert.strictEqual((yield* svm.notifiers).length, 0)
    }).pipe(Effect.provide(svmLayer(makeDriver()))))

  it.effect("§3.3 a notifier covers the aligned notifier-size window and is registered", () =>
    Effect.gen(function*() {
      const svm = yield* GpuSvm
      const cpu = yield* Cpu
      const machine = yield* Machine
      const addr = yield* cpu.mmap({ length: 8 * MiB, addr: 3 * 512 * MiB + 4 * MiB, fixed: true })
      yield* svm.rangeFindOrInsert(addr + 12345, GPUVA_START, GPUVA_END)
      const ns = yield* svm.notifiers
      assert.strictEqual(ns.length, 1)
      assert.strictEqual(ns[0]!.start, 3 * 512 * MiB)
      assert.strictEqual(ns[0]!.end, 4 * 512 * MiB)
      assert.strictEqual((yield* machine.stats).notifiersLive, 1)
    }).pipe(Effect.provide(svmLayer(makeDriver()))))

  it.effect("§3.3 a notifier made by a failed call is unregistered and dropped", () =>
    Effect.gen(function*() {
      const svm = yield* GpuSvm
      const machine = yield* Machine
      const err = yield* Effect.flip(svm.rangeFindOrInsert(5 * 512 * MiB, GPUVA_START, GPUVA_END))
      assert.strictEqual(err._tag, "VmaNotFound")
      assert.strictEqual((yield* svm.notifiers).length, 0)
      assert.strictEqual((yield* svm.ranges()).length, 0)
      assert.strictEqual((yield* machine.stats).notifiersLive, 0)
    }).pipe(Effect.provide(svmLayer(makeDriver()))))

  it.effect("§3.4 no VMA is VmaNotFound (ENOENT); write fault on a read-only VMA is PermissionDenied (EPERM)", () =>
    Effect.gen(function*() {
      const svm = yield* GpuSvm
      const cpu = yield* Cpu
      const ro = yield* cpu.mmap({ length: 2 * MiB, prot: PROT_READ })
      const hole = yield* Effect.flip(svm.rangeFindOrInsert(ro + 2 * MiB + 64 * MiB, GPUVA_START, GPUVA_END))
      assert.strictEqual(hole.errno, "ENOENT")
      const perm = yield* Effect.flip(svm.rangeFindOrInsert(ro, GPUVA_START, GPUVA_END))
      assert.strictEqual(perm._tag, "PermissionDenied")
      assert.strictEqual(perm.errno, "EPERM")
      const ok = yield* svm.rangeFindOrInsert(ro, GPUVA_START, GPUVA_END, { readOnly: true })
      assert.isTrue(ok.start <= ro && ro < ok.end)
    }).pipe(Effect.provide(svmLayer(makeDriver()))))

  it.effect("§3.5 a range already containing the address is returned as is", () =>
    Effect.gen(function*() {
      const svm = yield* GpuSvm
      const cpu = yield* Cpu
      const addr = yield* cpu.mmap({ length: 4 * MiB, align: 2 * MiB })
      const a = yield* svm.rangeFindOrInsert(addr + 100, GPUVA_START, GPUVA_END)
      const b = yield* svm.rangeFindOrInsert(addr + 2 * MiB - 1, GPUVA_START, GPUVA_END)
      assert.strictEqual(a.id, b.id)
      assert.strictEqual((yield* svm.ranges()).length, 1)
    }).pipe(Effect.provide(svmLayer(makeDriver()))))

  it.effect("§3.6 migrateDevmem = devmemPossible && anonymous (not file, not hugetlb)", () =>
    Effect.gen(function*() {
      const svm = yield* GpuSvm
      const cpu = yield* Cpu
      const anon = yield* cpu.mmap({ length: 2 * MiB, align: 2 * MiB })
      const file = yield* cpu.mmap({ length: 2 * MiB, align: 2 * MiB, kind: "file", fileSeed: 3 })
      const huge = yield* cpu.mmap({ length: 2 * MiB, align: 2 * MiB, kind: "hugetlb" })
      assert.isTrue((yield* svm.rangeFindOrInsert(anon, GPUVA_START, GPUVA_END, { devmemPossible: true })).flags.migrateDevmem)
      assert.isFalse((yield* svm.rangeFindOrInsert(file, GPUVA_START, GPUVA_END, { devmemPossible: true })).flags.migrateDevmem)
      assert.isFalse((yield* svm.rangeFindOrInsert(huge, GPUVA_START, GPUVA_END, { devmemPossible: true })).flags.migrateDevmem)
      const anon2 = yield* cpu.mmap({ length: 2 * MiB, align: 2 * MiB })
      assert.isFalse((yield* svm.rangeFindOrInsert(anon2, GPUVA_START, GPUVA_END)).flags.migrateDevmem)
    }).pipe(Effect.provide(svmLayer(makeDriver()))))

  it.effect("§3.7 chunk size: the largest aligned window inside VMA, notifier and GPU VA window", () =>
    Effect.gen(function*() {
      const svm = yield* GpuSvm
      const cpu = yield* Cpu
      const big = yield* cpu.mmap({ length: 4 * MiB, align: 2 * MiB })
      const r1 = yield* svm.rangeFindOrInsert(big + 3 * MiB, GPUVA_START, GPUVA_END)
      assert.deepStrictEqual([r1.start, r1.end], [big + 2 * MiB, big + 4 * MiB])
      const small = yield* cpu.mmap({ length: 128 * KiB, align: 64 * KiB })
      const r2 = yield* svm.rangeFindOrInsert(small + 70 * KiB, GPUVA_START, GPUVA_END)
      assert.strictEqual(r2.end - r2.start, 64 * KiB)
      // GPU VA window cuts the 2 MiB candidate
      const r3 = yield* svm.rangeFindOrInsert(big + 4096, big, big + 1 * MiB)
      assert.strictEqual(r3.end - r3.start, 64 * KiB)
      // No size fits: a GPU VA window not containing the page
      const none = yield* Effect.flip(svm.rangeFindOrInsert(big + 1 * MiB + 5, big + 1 * MiB + 4096, big + 2 * MiB))
      assert.strictEqual(none._tag, "InvalidArgument")
    }).pipe(Effect.provide(svmLayer(makeDriver()))))

  it.effect("§3.7 overlap with an existing range skips to a smaller chunk", () =>
    Effect.gen(function*() {
      const svm = yield* GpuSvm
      const cpu = yield* Cpu
      const base = yield* cpu.mmap({ length: 2 * MiB, align: 2 * MiB })
      const small = yield* svm.rangeFindOrInsert(base + 5 * 4096, base + 4096 * 4, base + 4096 * 8)
      assert.strictEqual(small.end - small.start, 4096)
      const other = yield* svm.rangeFindOrInsert(base + 1 * MiB, GPUVA_START, GPUVA_END)
      assert.strictEqual(other.end - other.start, 64 * KiB)
      const neighbour = yield* svm.rangeFindOrInsert(base + 6 * 4096, GPUVA_START, GPUVA_END)
      assert.strictEqual(neighbour.end - neighbour.start, 4096)
    }).pipe(Effect.provide(svmLayer(makeDriver()))))

  it.effect("§3.7 a chunk at most checkPagesThreshold with unpopulated pages is skipped", () =>
    Effect.gen(function*() {
      const svm = yield* GpuSvm
      const cpu = yield* Cpu
      const base = yield* cpu.mmap({ length: 256 * KiB, align: 64 * KiB })
      const cold = yield* svm.rangeFindOrInsert(base + 4096, GPUVA_START, GPUVA_END, { checkPagesThreshold: 64 * KiB })
      assert.strictEqual(cold.end - cold.start, 4096)
      yield* cpu.write(base + 128 * KiB, fill(64 * KiB))
      const warm = yield* svm.rangeFindOrInsert(base + 130 * KiB, GPUVA_START, GPUVA_END, { checkPagesThreshold: 64 * KiB })
      assert.strictEqual(warm.end - warm.start, 64 * KiB)
    }).pipe(Effect.provide(svmLayer(makeDriver()))))

  it.effect("§3.8 a new range starts with notifierSeq = SEQ_NEVER and no DMA mapping", () =>
    Effect.gen(function*() {
      const svm = yield* GpuSvm
      const cpu = yield* Cpu
      const base = yield* cpu.mmap({ length: 2 * MiB })
      const r = yield* svm.rangeFindOrInsert(base, GPUVA_START, GPUVA_END)
      assert.strictEqual(r.notifierSeq, SEQ_NEVER)
      assert.isFalse(r.flags.hasDmaMapping)
      assert.isUndefined(r.dmaAddr)
      assert.isFalse(yield* svm.withNotifierLock(svm.rangePagesValid(r)))
    }).pipe(Effect.provide(svmLayer(makeDriver()))))
})

describe("GpuSvm §4 rangeGetPages", () => {
  it.effect("§4.3–4.6 maps every page of the range and records the addresses", () =>
    Effect.gen(function*() {
      const svm = yield* GpuSvm
      const cpu = yield* Cpu
      const dma = yield* Dma
      const base = yield* cpu.mmap({ length: 64 * KiB, align: 64 * KiB })
      const r = yield* svm.rangeFindOrInsert(base, GPUVA_START, GPUVA_END)
      yield* svm.rangeGetPages(r)
      const live = Option.getOrThrow(yield* svm.range(r))
      assert.isTrue(live.flags.hasDmaMapping)
      assert.notStrictEqual(live.notifierSeq, SEQ_NEVER)
      const pages = live.dmaAddr!.reduce((n, a) => n + 2 ** a.order, 0)
      assert.strictEqual(pages, 16)
      assert.isTrue(live.dmaAddr!.every((a) => a.proto === "system" && a.dir === "bidirectional"))
      assert.strictEqual(yield* dma.liveMappings, live.dmaAddr!.length)
      assert.isTrue(yield* svm.withNotifierLock(svm.rangePagesValid(r)))
    }).pipe(Effect.provide(svmLayer(makeDriver()))))

  it.effect("§4.2 a range with valid pages is not mapped again", () =>
    Effect.gen(function*() {
      const svm = yield* GpuSvm
      const cpu = yield* Cpu
      const dma = yield* Dma
      const base = yield* cpu.mmap({ length: 64 * KiB, align: 64 * KiB })
      const r = yield* svm.rangeFindOrInsert(base, GPUVA_START, GPUVA_END)
      yield* svm.rangeGetPages(r)
      const before = yield* dma.liveMappings
      const addrs = Option.getOrThrow(yield* svm.range(r)).dmaAddr
      yield* svm.rangeGetPages(r)
      assert.strictEqual(yield* dma.liveMappings, before)
      assert.strictEqual(Option.getOrThrow(yield* svm.range(r)).dmaAddr, addrs)
    }).pipe(Effect.provide(svmLayer(makeDriver()))))

  it.effect("§4.3 read-only ranges map with direction to-device", () =>
    Effect.gen(function*() {
      const svm = yield* GpuSvm
      const cpu = yield* Cpu
      const base = yield* cpu.mmap({ length: 64 * KiB, align: 64 * KiB, prot: PROT_READ })
      const r = yield* svm.rangeFindOrInsert(base, GPUVA_START, GPUVA_END, { readOnly: true })
      yield* svm.rangeGetPages(r, { readOnly: true })
      const live = Option.getOrThrow(yield* svm.range(r))
      assert.isTrue(live.dmaAddr!.length > 0 && live.dmaAddr!.every((a) => a.dir === "to-device"))
      // a write fault on the read-only VMA is refused by HMM (§8) once the pages are gone
      yield* svm.rangeUnmapPages(r)
      const perm = yield* Effect.flip(svm.rangeGetPages(r))
      assert.strictEqual(perm._tag, "PermissionDenied")
    }).pipe(Effect.provide(svmLayer(makeDriver()))))

  it.effect("§4.3 HMM EBUSY is retried (Hmm busy injected 3 times)", () =>
    Effect.gen(function*() {
      const svm = yield* GpuSvm
      const cpu = yield* Cpu
      const machine = yield* Machine
      const base = yield* cpu.mmap({ length: 64 * KiB, align: 64 * KiB })
      const r = yield* svm.rangeFindOrInsert(base, GPUVA_START, GPUVA_END)
      yield* machine.inject({ hmmBusy: 3 })
      yield* svm.rangeGetPages(r)
      assert.isTrue(yield* svm.withNotifierLock(svm.rangePagesValid(r)))
    }).pipe(Effect.provide(svmLayer(makeDriver()))))

  it.effect("Limit the number of retries in drm_gpusvm_get_pages: endless EBUSY fails with Busy after the timeout", () =>
    Effect.gen(function*() {
      const svm = yield* GpuSvm
      const cpu = yield* Cpu
      const machine = yield* Machine
      const base = yield* cpu.mmap({ length: 64 * KiB, align: 64 * KiB })
      const r = yield* svm.rangeFindOrInsert(base, GPUVA_START, GPUVA_END)
      yield* machine.inject({ hmmBusy: 1_000_000_000 })
      const fiber = yield* Effect.forkChild(svm.rangeGetPages(r))
      yield* TestClock.adjust("1001 millis")
      const exit = yield* Fiber.await(fiber)
      assert.isTrue(Exit.isFailure(exit))
      const err = yield* Effect.flip(Fiber.join(fiber))
      assert.strictEqual(err._tag, "Busy")
      assert.strictEqual(err.errno, "EBUSY")
      assert.strictEqual(yield* (yield* Mm).references, 0)
    }).pipe(Effect.provide(svmLayer(makeDriver()))))

  it.effect("§4.4 an unmapped range is BadAddress (EFAULT)", () =>
    Effect.gen(function*() {
      const svm = yield* GpuSvm
      const cpu = yield* Cpu
      const base = yield* cpu.mmap({ length: 128 * KiB, align: 64 * KiB })
      const r = yield* svm.rangeFindOrInsert(base, GPUVA_START, GPUVA_END)
      yield* cpu.munmap(base, 64 * KiB)
      const live = Option.getOrThrow(yield* svm.range(r))
      assert.isTrue(live.flags.unmapped)
      const err = yield* Effect.flip(svm.rangeGetPages(r))
      assert.strictEqual(err.errno, "EFAULT")
    }).pipe(Effect.provide(svmLayer(makeDriver()))))

  it.effect("§4.5 a DMA mapping error is BadAddress and nothing mapped by the call is left", () =>
    Effect.gen(function*() {
      const svm = yield* GpuSvm
      const cpu = yield* Cpu
      const dma = yield* Dma
      const machine = yield* Machine
      const base = yield* cpu.mmap({ length: 64 * KiB, align: 64 * KiB })
      const r = yield* svm.rangeFindOrInsert(base, GPUVA_START, GPUVA_END)
      yield* svm.rangeGetPages(r)
      yield* svm.rangeUnmapPages(r)
      assert.strictEqual(yield* dma.liveMappings, 0)
      // now fail the 1st mapping of the next call
      yield* machine.inject({ dmaMapFail: 1 })
      const err = yield* Effect.flip(svm.rangeGetPages(r))
      assert.strictEqual(err._tag, "BadAddress")
      assert.strictEqual(yield* dma.liveMappings, 0)
      assert.isFalse(yield* svm.withNotifierLock(svm.rangePagesValid(r)))
      assert.deepStrictEqual(yield* machine.violations, [])
    }).pipe(Effect.provide(svmLayer(makeDriver()))))

  it.effect("fix hmm_pfn_to_map_order() usage (CVE-2025-40336): a 2 MiB THP behind a 64 KiB range maps only the range", () =>
    Effect.gen(function*() {
      const svm = yield* GpuSvm
      const cpu = yield* Cpu
      const base = yield* cpu.mmap({ length: 4 * MiB, align: 2 * MiB })
      yield* cpu.write(base, fill(4096))
      // a 64 KiB range in the middle of the THP (2 MiB chunks excluded by the GPU VA window)
      const at = base + 1 * MiB
      const r = yield* svm.rangeFindOrInsert(at, at, at + 64 * KiB)
      assert.strictEqual(r.end - r.start, 64 * KiB)
      yield* svm.rangeGetPages(r)
      const live = Option.getOrThrow(yield* svm.range(r))
      const covered = live.dmaAddr!.reduce((n, a) => n + 2 ** a.order, 0)
      assert.strictEqual(covered, 16)
      assert.isTrue(live.dmaAddr!.every((a) => a.order <= 4))
    }).pipe(Effect.provide(svmLayer(makeDriver()))))

  it("runOrder clamps to the huge page and to the range", () => {
    const entry = (pfn: number, order: number) => ({ valid: true, write: true, error: false, order, page: { _tag: "System" as const, pfn } })
    assert.strictEqual(runOrder(entry(512, 9), 0, 512), 9)
    assert.strictEqual(runOrder(entry(512 + 256, 9), 0, 16), 4)
    assert.strictEqual(runOrder(entry(512 + 510, 9), 0, 16), 1)
    assert.strictEqual(runOrder(entry(512 + 3, 9), 0, 16), 4)
    assert.strictEqual(runOrder(entry(512 + 3, 9), 4, 16), 3)
    assert.strictEqual(runOrder(entry(77, 0), 5, 16), 0)
  })

  it.effect("§4 a removed range behaves as unmapped: BadAddress from get_pages", () =>
    Effect.gen(function*() {
      const svm = yield* GpuSvm
      const cpu = yield* Cpu
      const base = yield* cpu.mmap({ length: 64 * KiB, align: 64 * KiB })
      const r = yield* svm.rangeFindOrInsert(base, GPUVA_START, GPUVA_END)
      yield* svm.rangeRemove(r)
      const err = yield* Effect.flip(svm.rangeGetPages(r))
      assert.strictEqual(err._tag, "BadAddress")
      yield* svm.rangeRemove(r)
      yield* svm.rangeUnmapPages(r)
    }).pipe(Effect.provide(svmLayer(makeDriver()))))
})

describe("GpuSvm §5 the rest of the range API", () => {
  it.effect("§5 rangeUnmapPages drops every DMA mapping and clears the flags", () =>
    Effect.gen(function*() {
      const svm = yield* GpuSvm
      const cpu = yield* Cpu
      const dma = yield* Dma
      const base = yield* cpu.mmap({ length: 2 * MiB, align: 2 * MiB })
      const r = yield* svm.rangeFindOrInsert(base, GPUVA_START, GPUVA_END)
      yield* svm.rangeGetPages(r)
      assert.isTrue((yield* dma.liveMappings) > 0)
      yield* svm.rangeUnmapPages(r)
      assert.strictEqual(yield* dma.liveMappings, 0)
      const live = Option.getOrThrow(yield* svm.range(r))
      assert.isFalse(live.flags.hasDmaMapping)
      assert.isFalse(yield* svm.withNotifierLock(svm.rangePagesValid(r)))
    }).pipe(Effect.provide(svmLayer(makeDriver()))))

  it.effect("§5 rangeRemove drops the range, and the notifier (unregistered) once empty", () =>
    Effect.gen(function*() {
      const svm = yield* GpuSvm
      const cpu = yield* Cpu
      const machine = yield* Machine
      const base = yield* cpu.mmap({ length: 4 * MiB, align: 2 * MiB })
      const a = yield* svm.rangeFindOrInsert(base, GPUVA_START, GPUVA_END)
      const b = yield* svm.rangeFindOrInsert(base + 2 * MiB, GPUVA_START, GPUVA_END)
      yield* svm.rangeGetPages(a)
      yield* svm.rangeRemove(a)
      assert.strictEqual((yield* svm.ranges()).length, 1)
      assert.strictEqual((yield* svm.notifiers).length, 1)
      yield* svm.rangeRemove(b)
      assert.strictEqual((yield* svm.notifiers).length, 0)
      assert.strictEqual((yield* machine.stats).notifiersLive, 0)
      assert.strictEqual((yield* machine.stats).dmaMappingsLive, 0)
      assert.isTrue(Option.isNone(yield* svm.range(a.id)))
      assert.deepStrictEqual(yield* svm.stats, { notifiersCreated: 1, notifiersRemoved: 1, rangesCreated: 2, rangesRemoved: 2, livelocks: 0 })
    }).pipe(Effect.provide(svmLayer(makeDriver()))))

  it.effect("§5 rangeSetUnmapped marks partial unmaps; hasMapping and findVmaStart", () =>
    Effect.gen(function*() {
      const svm = yield* GpuSvm
      const cpu = yield* Cpu
      const base = yield* cpu.mmap({ length: 4 * MiB, align: 2 * MiB })
      const r = yield* svm.rangeFindOrInsert(base, GPUVA_START, GPUVA_END)
      assert.isTrue(yield* svm.hasMapping(base + 4096, base + 8192))
      assert.isFalse(yield* svm.hasMapping(base + 2 * MiB, base + 4 * MiB))
      assert.deepStrictEqual(yield* svm.findVmaStart(base - 8 * MiB, base + 4096), Option.some(base))
      assert.isTrue(Option.isNone(yield* svm.findVmaStart(base + 64 * MiB, base + 65 * MiB)))
      yield* cpu.munmap(base + 1 * MiB, 4096)
      const live = Option.getOrThrow(yield* svm.range(r))
      assert.isTrue(live.flags.unmapped)
      assert.isTrue(live.flags.partialUnmap)
      const whole = yield* svm.rangeFindOrInsert(base + 2 * MiB, GPUVA_START, GPUVA_END)
      yield* cpu.munmap(base + 2 * MiB, 2 * MiB)
      const wl = Option.getOrThrow(yield* svm.range(whole))
      assert.isTrue(wl.flags.unmapped)
      assert.isFalse(wl.flags.partialUnmap)
    }).pipe(Effect.provide(svmLayer(makeDriver()))))

  it.effect("§5 rangeEvict faults the range back with no device owner; releases the mm on every path", () =>
    Effect.gen(function*() {
      const svm = yield* GpuSvm
      const cpu = yield* Cpu
      const mm = yield* Mm
      const machine = yield* Machine
      const base = yield* cpu.mmap({ length: 64 * KiB, align: 64 * KiB })
      const r = yield* svm.rangeFindOrInsert(base, GPUVA_START, GPUVA_END)
      yield* svm.rangeEvict(r)
      assert.strictEqual(yield* mm.references, 0)
      yield* machine.inject({ hmmBusy: 1_000_000_000 })
      const fiber = yield* Effect.forkChild(svm.rangeEvict(r))
      yield* TestClock.adjust("1001 millis")
      const err = yield* Effect.flip(Fiber.join(fiber))
      assert.strictEqual(err._tag, "TimedOut")
      assert.strictEqual(err.errno, "ETIME")
      assert.strictEqual(yield* mm.references, 0)
      yield* cpu.exit
      const gone = yield* Effect.flip(svm.rangeEvict(r))
      assert.strictEqual(gone._tag, "BadAddress")
      assert.strictEqual(yield* mm.references, 0)
    }).pipe(Effect.provide(svmLayer(makeDriver()))))

  it.effect("§5 scanMm reports unpopulated, then system after get_pages", () =>
    Effect.gen(function*() {
      const svm = yield* GpuSvm
      const cpu = yield* Cpu
      const base = yield* cpu.mmap({ length: 64 * KiB, align: 64 * KiB })
      const r = yield* svm.rangeFindOrInsert(base, GPUVA_START, GPUVA_END)
      assert.strictEqual(yield* svm.scanMm(r), "unpopulated")
      yield* svm.rangeGetPages(r)
      assert.strictEqual(yield* svm.scanMm(r), "system")
    }).pipe(Effect.provide(svmLayer(makeDriver()))))

  it.effect("§5 the notifier callback refuses a non-blockable event, and the machine retries it blockably", () => {
    const driver = makeDriver()
    return Effect.gen(function*() {
      const svm = yield* GpuSvm
      const cpu = yield* Cpu
      const machine = yield* Machine
      const base = yield* cpu.mmap({ length: 64 * KiB, align: 64 * KiB })
      const r = yield* svm.rangeFindOrInsert(base, GPUVA_START, GPUVA_END)
      yield* svm.rangeGetPages(r)
      yield* machine.inject({ nonBlockable: 1 })
      yield* cpu.madviseDontNeed(base, 4096)
      assert.strictEqual(driver.invalidations.length, 1)
      assert.isTrue(driver.invalidations[0]!.range.blockable)
      assert.strictEqual(driver.invalidations[0]!.range.event, "clear")
      assert.isFalse(yield* svm.withNotifierLock(svm.rangePagesValid(r)))
    }).pipe(Effect.provide(svmLayer(driver)))
  })

  it.effect("§5 fini leaves zero notifiers, ranges and live DMA mappings", () =>
    Effect.gen(function*() {
      const svm = yield* GpuSvm
      const cpu = yield* Cpu
      const machine = yield* Machine
      const base = yield* cpu.mmap({ length: 8 * MiB, align: 2 * MiB })
      const far = yield* cpu.mmap({ length: 2 * MiB, addr: 7 * 512 * MiB, fixed: true })
      for (const a of [base, base + 2 * MiB, base + 5 * MiB, far]) {
        yield* svm.rangeGetPages(yield* svm.rangeFindOrInsert(a, GPUVA_START, GPUVA_END))
      }
      assert.isTrue((yield* machine.stats).dmaMappingsLive > 0)
      yield* svm.fini
      assert.strictEqual((yield* svm.notifiers).length, 0)
      assert.strictEqual((yield* svm.ranges()).length, 0)
      const stats = yield* machine.stats
      assert.strictEqual(stats.dmaMappingsLive, 0)
      assert.strictEqual(stats.notifiersLive, 0)
      assert.deepStrictEqual(yield* machine.violations, [])
    }).pipe(Effect.provide(svmLayer(makeDriver()))))
})

describe("GpuSvm §7 invalidation", () => {
  it.effect("§7 munmap raises UNMAP on the notifier; the callback sees the ranges and their DMA mappings go first", () => {
    const driver = makeDriver()
    return Effect.gen(function*() {
      const svm = yield* GpuSvm
      const cpu = yield* Cpu
      const machine = yield* Machine
      const base = yield* cpu.mmap({ length: 4 * MiB, align: 2 * MiB })
      yield* cpu.write(base, fill(4 * MiB, 7))
      const a = yield* svm.rangeFindOrInsert(base, GPUVA_START, GPUVA_END)
      const b = yield* svm.rangeFindOrInsert(base + 2 * MiB, GPUVA_START, GPUVA_END)
      yield* svm.rangeGetPages(a)
      yield* svm.rangeGetPages(b)
      yield* cpu.munmap(base, 2 * MiB)
      assert.strictEqual(driver.invalidations.length, 1)
      const inv = driver.invalidations[0]!
      assert.strictEqual(inv.range.event, "unmap")
      assert.deepStrictEqual(inv.rangesUnmapped, [a.id])
      assert.isFalse(yield* svm.withNotifierLock(svm.rangePagesValid(a)))
      assert.isTrue(yield* svm.withNotifierLock(svm.rangePagesValid(b)))
      // the frames were freed only after their DMA mappings went: no violation
      assert.deepStrictEqual(yield* machine.violations, [])
    }).pipe(Effect.provide(svmLayer(driver)))
  })

  it.effect("§7 mprotect raises PROTECTION_VMA; get_pages after it re-faults with a new sequence", () => {
    const driver = makeDriver()
    return Effect.gen(function*() {
      const svm = yield* GpuSvm
      const cpu = yield* Cpu
      const base = yield* cpu.mmap({ length: 64 * KiB, align: 64 * KiB })
      const r = yield* svm.rangeFindOrInsert(base, GPUVA_START, GPUVA_END)
      yield* svm.rangeGetPages(r)
      const seq1 = Option.getOrThrow(yield* svm.range(r)).notifierSeq
      yield* cpu.mprotect(base, 64 * KiB, PROT_READ)
      assert.strictEqual(driver.invalidations.at(-1)!.range.event, "protection-vma")
      const err = yield* Effect.flip(svm.rangeGetPages(r))
      assert.strictEqual(err._tag, "PermissionDenied")
      yield* svm.rangeGetPages(r, { readOnly: true })
      const seq2 = Option.getOrThrow(yield* svm.range(r)).notifierSeq
      assert.notStrictEqual(seq1, seq2)
    }).pipe(Effect.provide(svmLayer(driver)))
  })
})

