/**
 * The upstream `allow_mixed` fix of `drm_gpusvm_get_pages` (kernel-semantics §4.5):
 * without `allowMixed`, system pages and device pages in one range are
 * `MixedPages` in either order; with it, system pages plus one pagemap are
 * accepted in either order — including a device page *after* system pages,
 * which the first version of the upstream fix still refused.
 */
import { assert, describe, it } from "@effect/vitest"
import { Effect, Option } from "effect"
import { Cpu } from "../../src/services/Cpu.ts"
import { DevicePagemap } from "../../src/services/DevicePagemap.ts"
import { Dma } from "../../src/services/Dma.ts"
import { GpuSvm } from "../../src/services/GpuSvm.ts"
import { GPUVA_END, GPUVA_START, KiB, makeDriver, svmLayer } from "../support/harness.ts"

const withVram = svmLayer(makeDriver(), { machine: { vramBytes: 16 * 1024 * KiB, devicePrivateOwner: "test-gpu" } })

const mixedRange = (deviceFirst: boolean) =>
  Effect.gen(function*() {
    const cpu = yield* Cpu
    const svm = yield* GpuSvm
    const pm = yield* DevicePagemap
    const base = yield* cpu.mmap({ length: 64 * KiB, align: 64 * KiB })
    yield* cpu.write(base, new Uint8Array(64 * KiB).fill(5))
    const r = yield* svm.rangeFindOrInsert(base, GPUVA_START, GPUVA_END, { devmemPossible: true })
    assert.strictEqual(r.end - r.start, 64 * KiB)
    // half of the range in device memory, the other half in system memory
    const half = deviceFirst ? [base, base + 32 * KiB] : [base + 32 * KiB, base + 64 * KiB]
    yield* pm.populateMm(half[0]!, half[1]!)
    return r
  })

describe("GpuSvm §4.5 allowMixed (upstream fix)", () => {
  for (const deviceFirst of [true, false]) {
    const order = deviceFirst ? "device pages then system pages" : "system pages then a device page"
    it.effect(`§4.5 ${order}: MixedPages without allowMixed, nothing left mapped`, () =>
      Effect.gen(function*() {
        const r = yield* mixedRange(deviceFirst)
        const svm = yield* GpuSvm
        const err = yield* Effect.flip(svm.rangeGetPages(r))
        assert.strictEqual(err._tag, "MixedPages")
        assert.strictEqual(err.errno, "EOPNOTSUPP")
        assert.strictEqual(yield* (yield* Dma).liveMappings, 0)
        assert.isFalse(yield* svm.withNotifierLock(svm.rangePagesValid(r)))
      }).pipe(Effect.provide(withVram)))

    it.effect(`§4.5 ${order}: accepted with allowMixed, both kinds mapped`, () =>
      Effect.gen(function*() {
        const r = yield* mixedRange(deviceFirst)
        const svm = yield* GpuSvm
        yield* svm.rangeGetPages(r, { allowMixed: true })
        const live = Option.getOrThrow(yield* svm.range(r))
        assert.isTrue(live.flags.hasDmaMapping)
        assert.isTrue(live.flags.hasDevmemPages)
        const protos = new Set(live.dmaAddr!.map((a) => a.proto))
        assert.isTrue(protos.has("system") && protos.size === 2)
        assert.strictEqual(live.dmaAddr!.reduce((n, a) => n + 2 ** a.order, 0), 16)
        assert.strictEqual(yield* svm.scanMm(r), "mixed")
      }).pipe(Effect.provide(withVram)))
  }
})
