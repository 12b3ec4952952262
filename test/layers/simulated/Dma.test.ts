import { assert, describe, it } from "@effect/vitest"
import { Effect } from "effect"
import * as PageRef from "../../../src/domain/PageRef.ts"
import { MiB, onMachine, services } from "./support.ts"

const P = 4096

/** Writes a byte at `addr` and returns the pfn now backing it. */
const touch = (addr: number, byte: number) =>
  Effect.gen(function*() {
    const { cpu, st } = yield* services
    yield* cpu.write(addr, new Uint8Array([byte]))
    const e = st.pt.get(addr / P)
    return e?.kind === "system" ? e.pfn : -1
  })

describe("simulated DMA API with an IOMMU (kernel-semantics §4 step 5, §5, §6 safety)", () => {
  it.effect("§4 mapPage gives fresh size-aligned IOVAs that translate to the frame; unmap removes them", () =>
    onMachine(Effect.gen(function*() {
      const { cpu, dma, st } = yield* services
      const a = yield* cpu.mmap({ length: 4 * MiB, align: 2 * MiB })
      const pfn = yield* touch(a + 3 * P, 0xab)
      const small = yield* dma.mapPage(PageRef.system(pfn), 0, "bidirectional")
      const head = pfn - 3
      const huge = yield* dma.mapPage(PageRef.system(head), 9, "to-device")
      const again = yield* dma.mapPage(PageRef.system(pfn), 0, "bidirectional")
      assert.strictEqual(small.proto, "system")
      assert.strictEqual(huge.addr % (2 * MiB), 0)
      assert.strictEqual(small.addr % P, 0)
      assert.notStrictEqual(again.addr, small.addr)
      assert.strictEqual(yield* dma.liveMappings, 3)
      const t = st.translateIova(huge.addr + 3 * P + 5)
      assert.deepStrictEqual(t, { pfn, offset: 5, mapping: st.iommu.mappingAt(huge.addr) })
      assert.deepStrictEqual([...st.readFrame(t!.pfn, 0, 1)!], [0xab])
      assert.isTrue(st.writeFrame(t!.pfn, 1, new Uint8Array([0xcd])))
      assert.deepStrictEqual([...(yield* cpu.read(a + 3 * P, 2))], [0xab, 0xcd])
      yield* dma.unmapPage(small)
      yield* dma.unmapPage(huge)
      yield* dma.unmapPage(again)
      assert.strictEqual(yield* dma.liveMappings, 0)
      assert.isUndefined(st.translateIova(huge.addr)) // IOMMU fault
      const next = yield* dma.mapPage(PageRef.system(pfn), 0, "bidirectional")
      assert.isTrue(next.addr > again.addr) // never reused
    })))

  it.effect("§6 unmapping an unknown address is a recorded violation, not an error", () =>
    onMachine(Effect.gen(function*() {
      const { cpu, dma, machine } = yield* services
      const a = yield* cpu.mmap({ length: P })
      const pfn = yield* touch(a, 1)
      const m = yield* dma.mapPage(PageRef.system(pfn), 0, "bidirectional")
      yield* dma.unmapPage(m)
      yield* dma.unmapPage(m) // double unmap
      yield* dma.unmapPage({ addr: 0x1234000, proto: "system", order: 0, dir: "bidirectional" })
      const v = yield* machine.violations
      assert.deepStrictEqual(v.map((x) => x.invariant), ["dma-unmap-unknown", "dma-unmap-unknown"])
    })))

  it.effect("§6 a frame freed while a live DMA mapping covers it is a recorded violation", () =>
    onMachine(Effect.gen(function*() {
      const { cpu, dma, machine } = yield* services
      const a = yield* cpu.mmap({ length: 2 * P })
      const pfn = yield* touch(a, 1)
      const pfn2 = yield* touch(a + P, 2)
      const m = yield* dma.mapPage(PageRef.system(pfn), 0, "bidirectional")
      const m2 = yield* dma.mapPage(PageRef.system(pfn2), 0, "bidirectional")
      yield* dma.unmapPage(m2)
      assert.deepStrictEqual(yield* machine.violations, [])
      yield* cpu.munmap(a, 2 * P) // frees both; only the first is still mapped
      const v = yield* machine.violations
      assert.strictEqual(v.length, 1)
      assert.strictEqual(v[0]!.invariant, "frame-freed-while-mapped")
      assert.include(v[0]!.detail, `pfn ${pfn}`)
      yield* dma.unmapPage(m)
    }), { thp: false }))

  it.effect("§4 mapPage refuses device pages, freed frames, runs crossing frames, and injected failures", () =>
    onMachine(Effect.gen(function*() {
      const { cpu, dma, machine } = yield* services
      const a = yield* cpu.mmap({ length: P })
      const pfn = yield* touch(a, 1)
      const dev = yield* Effect.flip(dma.mapPage(PageRef.device("vram0", 1, 1, "me"), 0, "bidirectional"))
      assert.include(dev.reason, "system")
      const cross = yield* Effect.flip(dma.mapPage(PageRef.system(pfn), 9, "bidirectional"))
      assert.strictEqual(cross._tag, "BadAddress")
      yield* machine.inject({ dmaMapFail: 1 })
      const inj = yield* Effect.flip(dma.mapPage(PageRef.system(pfn), 0, "bidirectional"))
      assert.include(inj.reason, "injected")
      yield* dma.unmapPage(yield* dma.mapPage(PageRef.system(pfn), 0, "bidirectional"))
      yield* cpu.munmap(a, P)
      const freed = yield* Effect.flip(dma.mapPage(PageRef.system(pfn), 0, "bidirectional"))
      assert.include(freed.reason, "freed")
      assert.deepStrictEqual((yield* machine.violations).map((v) => v.invariant), ["dma-map-freed-frame"])
      assert.strictEqual(yield* dma.liveMappings, 0)
      assert.strictEqual((yield* machine.stats).dmaMappingsLive, 0)
    }), { thp: false }))
})
