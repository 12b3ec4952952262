/**
 * Device memory of the simulated machine (kernel-semantics §9, §8): populate_mm,
 * migrate_to_ram, eviction, device_map / device reads, fault injection — on
 * the pagemap and HMM services directly (no GPU SVM core).
 */
import { assert, describe, it } from "@effect/vitest"
import { Effect, Fiber } from "effect"
import { TestClock } from "effect/testing"
import type { HmmPfn } from "../../../src/domain/HmmPfn.ts"
import type { MmuRange } from "../../../src/domain/MmuRange.ts"
import type { NotifierHandle } from "../../../src/domain/NotifierHandle.ts"
import type { DevicePage } from "../../../src/domain/PageRef.ts"
import type { SimState, SimulatedOptions, SimulatedServices } from "../../../src/layers/simulated/Simulated.ts"
import { mulberry32 } from "../../../src/layers/simulated/SeededYields.ts"
import { DevicePagemap, DevicePagemaps } from "../../../src/services/DevicePagemap.ts"
import { runOrder } from "../../../src/services/gpusvm/Pages.ts"
import { MiB, onMachine, pattern, services } from "./support.ts"

const P = 4096
const KiB = 1024

/** Machine services plus the pagemaps. */
const all = Effect.gen(function*() {
  return { ...(yield* services), pm: yield* DevicePagemap, pms: (yield* DevicePagemaps).all }
})

const onVram = <A, E>(e: Effect.Effect<A, E, SimulatedServices | SimState>, o: SimulatedOptions = { vramBytes: 16 * MiB }) =>
  onMachine(e, o)

/** Kinds of the page-table entries of `[start, end)` ("none" | "system" | "device"). */
const kinds = (st: import("../../../src/layers/simulated/MachineState.ts").MachineState, start: number, end: number) => {
  const out: Array<string> = []
  for (let a = start; a < end; a += P) out.push(st.pt.get(a / P)?.kind ?? "none")
  return out
}

/** A notifier recording every range it is offered, and the page kind at `probe` at that moment. */
const recorder = (start: number, end: number, probe?: number) =>
  Effect.gen(function*() {
    const { mn, st } = yield* services
    const seen: Array<{ range: MmuRange; kindAtProbe: string }> = []
    const box: { h?: NotifierHandle } = {}
    const h = yield* mn.insert(start, end - start, (r, cur) =>
      Effect.sync(() => {
        seen.push({ range: r, kindAtProbe: probe === undefined ? "" : (st.pt.get(probe / P)?.kind ?? "none") })
      }).pipe(Effect.andThen(mn.setSeq(box.h!, cur)), Effect.as(true)))
    box.h = h
    return { h, seen }
  })

/** hmm_range_fault over `[start, end)` with `owner`, retrying EBUSY a few times. */
const fault = (h: NotifierHandle, start: number, end: number, o: { fault: boolean; owner?: string; write?: boolean }) =>
  Effect.gen(function*() {
    const { mn, mm, hmm } = yield* services
    for (let i = 0;; i++) {
      const seq = yield* mn.readBegin(h)
      const r = yield* Effect.result(mm.withReadLock(hmm.rangeFault({
        notifier: h,
        notifierSeq: seq,
        start,
        end,
        fault: o.fault,
        write: o.write ?? false,
        devicePrivateOwner: o.owner
      })))
      if (r._tag === "Success") return r.success
      if (r.failure._tag !== "Busy" || i > 4) return yield* r.failure
    }
  })

/** Reads `[start, end)` through the device: HMM device pages → deviceMap → readDevice → deviceUnmap. */
const deviceRead = (h: NotifierHandle, start: number, end: number) =>
  Effect.gen(function*() {
    const { pms } = yield* all
    const pfns = yield* fault(h, start, end, { fault: false, owner: pms[0]!.owner })
    const out = new Uint8Array(end - start)
    const orders: Array<number> = []
    for (let i = 0; i < pfns.length;) {
      const p = pfns[i]!
      assert.isTrue(p.valid, `page ${i} valid`)
      assert.strictEqual(p.page?._tag, "Device")
      const page = p.page as DevicePage
      const pm = pms.find((x) => x.id === page.pagemap)!
      const order = runOrder(p, i, pfns.length)
      orders.push(p.order)
      const a = yield* pm.deviceMap(page, order, "bidirectional")
      assert.strictEqual(a.addr, page.devicePfn * P)
      assert.strictEqual(a.proto, pm.proto)
      out.set(yield* pm.readDevice(a.addr, P * 2 ** order), i * P)
      yield* pm.deviceUnmap(a)
      i += 2 ** order
    }
    return { bytes: out, orders }
  })

describe("simulated device memory: populate_mm and migrate_to_ram (kernel-semantics §9)", () => {
  const roundTrip = (name: string, size: number, offset: number, expectOrder: number) =>
    it.effect(`§9 populate_mm → device read → CPU touch migrates back, byte-exact: ${name}`, () =>
      onVram(Effect.gen(function*() {
        const { cpu, pm, st, machine } = yield* all
        const buf = yield* cpu.mmap({ length: 4 * MiB, align: 2 * MiB })
        const start = buf + offset
        const end = start + size
        const data = pattern(size, size % 251)
        yield* cpu.write(start, data)
        yield* cpu.write(buf, pattern(offset + 1, 9).subarray(0, Math.min(offset, 16))) // neighbours hold data too
        const { h } = yield* recorder(buf, buf + 4 * MiB)
        yield* pm.populateMm(start, end)
        assert.deepStrictEqual(kinds(st, start, end), new Array(size / P).fill("device"))
        assert.strictEqual((yield* pm.usage).allocations, 1)
        const dev = yield* deviceRead(h, start, end)
        assert.deepStrictEqual(dev.bytes, data)
        assert.strictEqual(dev.orders[0], expectOrder)
        const back = yield* cpu.read(start, size)
        assert.deepStrictEqual(back, data)
        assert.deepStrictEqual(kinds(st, start, end), new Array(size / P).fill("system"))
        assert.deepStrictEqual(yield* pm.usage, { totalBytes: 16 * MiB, usedBytes: 0, allocations: 0 })
        const t = yield* pm.traffic
        assert.strictEqual(t.bytesToVram, size)
        assert.strictEqual(t.bytesToRam, size)
        assert.strictEqual(st.devicePtes, 0)
        assert.strictEqual(yield* pm.liveMappings, 0)
        assert.deepStrictEqual(yield* machine.violations, [])
      })))
  roundTrip("4 KiB", 4 * KiB, 3 * P, 0)
  roundTrip("64 KiB (aligned: order 4)", 64 * KiB, 64 * KiB, 4)
  roundTrip("2 MiB (aligned THP: order 9)", 2 * MiB, 0, 9)
  roundTrip("unaligned 20 KiB across a THP split", 20 * KiB, 2 * MiB - 8 * KiB, 0)

  it.effect("§9 MIGRATE invalidation with the pagemap's owner is raised before the pages change", () =>
    onVram(Effect.gen(function*() {
      const { cpu, pm, machine } = yield* all
      const a = yield* cpu.mmap({ length: 64 * KiB })
      yield* cpu.write(a, pattern(64 * KiB, 1))
      const { seen } = yield* recorder(a, a + 64 * KiB, a)
      yield* pm.populateMm(a, a + 64 * KiB)
      assert.strictEqual(seen.length, 1)
      assert.deepInclude(seen[0]!.range, { start: a, end: a + 64 * KiB, event: "migrate", owner: "gpusvm" })
      assert.strictEqual(seen[0]!.kindAtProbe, "system")
      yield* cpu.read(a, 1)
      assert.strictEqual(seen.length, 2)
      assert.deepInclude(seen[1]!.range, { event: "migrate", owner: "gpusvm" })
      assert.strictEqual(seen[1]!.kindAtProbe, "device")
      assert.strictEqual((yield* machine.stats).invalidations["migrate"], 2)
    })))

  it.effect("§9 untouched pages are not copied and read as zeros both ways", () =>
    onVram(Effect.gen(function*() {
      const { cpu, pm, machine } = yield* all
      const a = yield* cpu.mmap({ length: 256 * KiB })
      yield* cpu.write(a + 5 * P, pattern(P, 4))
      yield* cpu.read(a + 9 * P, 1) // zero page mapped
      const held = (yield* machine.stats).bytesHeld
      yield* pm.populateMm(a, a + 256 * KiB)
      assert.strictEqual((yield* pm.traffic).bytesToVram, P)
      assert.strictEqual((yield* pm.traffic).pagesToVram, 64)
      assert.isBelow((yield* machine.stats).bytesHeld, held)
      const back = yield* cpu.read(a, 256 * KiB)
      const want = new Uint8Array(256 * KiB)
      want.set(pattern(P, 4), 5 * P)
      assert.deepStrictEqual(back, want)
      assert.strictEqual((yield* pm.traffic).bytesToRam, P)
      assert.strictEqual((yield* machine.stats).bytesHeld, held)
    }), { vramBytes: 1 * MiB, thp: false }))

  it.effect("§9 CPU write to a device page migrates back first, then writes", () =>
    onVram(Effect.gen(function*() {
      const { cpu, pm, st } = yield* all
      const a = yield* cpu.mmap({ length: 64 * KiB })
      const data = pattern(64 * KiB, 2)
      yield* cpu.write(a, data)
      yield* pm.populateMm(a, a + 64 * KiB)
      yield* cpu.write(a + 100, new Uint8Array([1, 2, 3]))
      data.set([1, 2, 3], 100)
      assert.deepStrictEqual(kinds(st, a, a + 64 * KiB), new Array(16).fill("system"))
      assert.deepStrictEqual(yield* cpu.read(a, 64 * KiB), data)
    })))

  it.effect("§9 bad input: outside VMAs, across VMAs, unaligned, file / shared / hugetlb VMAs, exited → BadAddress, state unchanged", () =>
    onVram(Effect.gen(function*() {
      const { cpu, pm, st, machine } = yield* all
      const a = yield* cpu.mmap({ length: 64 * KiB })
      const b = yield* cpu.mmap({ length: 64 * KiB, addr: a + 64 * KiB, fixed: true, prot: { read: true, write: false, exec: false } })
      const file = yield* cpu.mmap({ length: 64 * KiB, kind: "file", fileSeed: 3 })
      const shared = yield* cpu.mmap({ length: 64 * KiB, shared: true })
      const huge = yield* cpu.mmap({ length: 2 * MiB, kind: "hugetlb" })
      for (const x of [a, file, shared, huge]) yield* cpu.write(x, pattern(P, 5))
      const before = kinds(st, a, a + 64 * KiB).join()
      const cases: Array<[number, number]> = [
        [a - 64 * KiB, a], // hole
        [a, b + 64 * KiB], // two VMAs
        [a + 1, a + P], // unaligned start
        [a, a + P + 1], // unaligned end
        [a + P, a + P], // empty
        [a + P, a], // reversed
        [file, file + P],
        [shared, shared + P],
        [huge, huge + 2 * MiB],
        [Number.NaN, P]
      ]
      for (const [s, e] of cases) {
        const err = yield* Effect.flip(pm.populateMm(s, e))
        assert.strictEqual(err._tag, "BadAddress", `[${s}, ${e})`)
      }
      assert.strictEqual((yield* Effect.flip(pm.populateMm(a, a + P, { timesliceMs: -1 })))._tag, "BadAddress")
      assert.strictEqual(kinds(st, a, a + 64 * KiB).join(), before)
      assert.strictEqual((yield* machine.stats).invalidations["migrate"], 0)
      assert.deepStrictEqual(yield* pm.usage, { totalBytes: 16 * MiB, usedBytes: 0, allocations: 0 })
      yield* cpu.exit
      assert.strictEqual((yield* Effect.flip(pm.populateMm(a, a + P)))._tag, "BadAddress")
    })))

  it.effect("§9 zero-size pagemap, no pagemap, window larger than VRAM → OutOfMemory, state unchanged", () =>
    Effect.gen(function*() {
      yield* onVram(Effect.gen(function*() {
        const { cpu, pm, pms, machine } = yield* all
        assert.strictEqual(pms.length, 1)
        const a = yield* cpu.mmap({ length: 64 * KiB })
        assert.strictEqual((yield* Effect.flip(pm.populateMm(a, a + P)))._tag, "OutOfMemory")
        assert.strictEqual((yield* machine.stats).invalidations["migrate"], 0)
      }), { vramBytes: 0 })
      yield* onVram(Effect.gen(function*() {
        const { cpu, pm, pms } = yield* all
        assert.strictEqual(pms.length, 0)
        assert.strictEqual(pm.totalBytes, 0)
        const a = yield* cpu.mmap({ length: 64 * KiB })
        assert.strictEqual((yield* Effect.flip(pm.populateMm(a, a + P)))._tag, "OutOfMemory")
      }), {})
      yield* onVram(Effect.gen(function*() {
        const { cpu, pm, st, machine } = yield* all
        const a = yield* cpu.mmap({ length: 128 * KiB })
        yield* cpu.write(a, pattern(128 * KiB, 6))
        yield* pm.populateMm(a, a + 32 * KiB)
        assert.strictEqual((yield* Effect.flip(pm.populateMm(a, a + 128 * KiB)))._tag, "OutOfMemory")
        assert.deepStrictEqual(kinds(st, a, a + 128 * KiB), [...new Array(8).fill("device"), ...new Array(24).fill("system")])
        assert.strictEqual((yield* machine.stats).invalidations["migrate"], 1)
        assert.deepStrictEqual(yield* cpu.read(a, 128 * KiB), pattern(128 * KiB, 6))
      }), { vramBytes: 64 * KiB })
      // invalid sizes are reported, never thrown
      yield* onVram(Effect.gen(function*() {
        const { pm, machine } = yield* all
        assert.strictEqual(pm.totalBytes, 0)
        assert.strictEqual((yield* machine.violations)[0]?.invariant, "bad-pagemap-option")
      }), { vramBytes: -5 })
    }))

  it.effect("§9 vramAllocFail → OutOfMemory with nothing changed; the next populate succeeds", () =>
    onVram(Effect.gen(function*() {
      const { cpu, pm, st, machine } = yield* all
      const a = yield* cpu.mmap({ length: 64 * KiB })
      yield* cpu.write(a, pattern(64 * KiB, 7))
      yield* machine.inject({ vramAllocFail: 1 })
      const err = yield* Effect.flip(pm.populateMm(a, a + 64 * KiB))
      assert.strictEqual(err._tag, "OutOfMemory")
      assert.deepStrictEqual(kinds(st, a, a + 64 * KiB), new Array(16).fill("system"))
      assert.strictEqual((yield* machine.stats).invalidations["migrate"], 0)
      assert.deepStrictEqual(yield* pm.usage, { totalBytes: 16 * MiB, usedBytes: 0, allocations: 0 })
      yield* pm.populateMm(a, a + 64 * KiB)
      assert.deepStrictEqual(kinds(st, a, a + 64 * KiB), new Array(16).fill("device"))
    })))

  it.effect("§9 copy failure mid-way to VRAM: Busy, every page untouched (no half page, no lost byte), VRAM released", () =>
    onVram(Effect.gen(function*() {
      const { cpu, pm, st, machine } = yield* all
      const a = yield* cpu.mmap({ length: 64 * KiB })
      const data = pattern(64 * KiB, 8)
      yield* cpu.write(a, data)
      yield* machine.inject({ copyFail: 1 })
      const err = yield* Effect.flip(pm.populateMm(a, a + 64 * KiB))
      assert.strictEqual(err._tag, "Busy")
      assert.deepStrictEqual(kinds(st, a, a + 64 * KiB), new Array(16).fill("system"))
      assert.deepStrictEqual(yield* pm.usage, { totalBytes: 16 * MiB, usedBytes: 0, allocations: 0 })
      assert.deepStrictEqual(yield* cpu.read(a, 64 * KiB), data)
      assert.strictEqual((yield* pm.traffic).pagesToVram, 0)
      yield* pm.populateMm(a, a + 64 * KiB)
      assert.deepStrictEqual(yield* cpu.read(a, 64 * KiB), data)
      assert.deepStrictEqual(yield* machine.violations, [])
    })))

  it.effect("§9 copy failure mid-way back to RAM: the CPU access fails (SIGBUS), pages stay in VRAM intact; a retry succeeds", () =>
    onVram(Effect.gen(function*() {
      const { cpu, pm, st, machine } = yield* all
      const a = yield* cpu.mmap({ length: 64 * KiB })
      const data = pattern(64 * KiB, 9)
      yield* cpu.write(a, data)
      yield* pm.populateMm(a, a + 64 * KiB)
      yield* machine.inject({ copyFail: 1 })
      const err = yield* Effect.flip(cpu.read(a + 3 * P, 10))
      assert.strictEqual(err._tag, "BadAddress")
      assert.deepStrictEqual(kinds(st, a, a + 64 * KiB), new Array(16).fill("device"))
      assert.strictEqual((yield* pm.usage).allocations, 1)
      assert.strictEqual((yield* pm.traffic).pagesToRam, 0)
      // eviction with a failing copy leaves the allocation where it is
      yield* machine.inject({ copyFail: 1 })
      yield* pm.evictAll
      assert.strictEqual((yield* pm.usage).allocations, 1)
      assert.strictEqual((yield* pm.traffic).evictions, 0)
      assert.deepStrictEqual(yield* cpu.read(a, 64 * KiB), data)
      assert.strictEqual((yield* pm.usage).allocations, 0)
    })))

  it.effect("§9 memory pressure evicts least-recently-used allocations, each with its own MIGRATE invalidation", () =>
    onVram(Effect.gen(function*() {
      const { cpu, pm, st } = yield* all
      const bufs: Array<number> = []
      for (let i = 0; i < 4; i++) {
        const b = yield* cpu.mmap({ length: 64 * KiB })
        yield* cpu.write(b, pattern(64 * KiB, 20 + i))
        bufs.push(b)
      }
      const [A, B, C, D] = bufs as [number, number, number, number]
      const recB = yield* recorder(B, B + 64 * KiB)
      const recC = yield* recorder(C, C + 64 * KiB)
      yield* pm.populateMm(A, A + 64 * KiB)
      yield* pm.populateMm(B, B + 64 * KiB)
      yield* pm.populateMm(C, C + 64 * KiB)
      // the device uses A: A is now the most recently used
      const pte = st.pt.get(A / P)!
      assert.strictEqual(pte.kind, "device")
      if (pte.kind === "device") yield* pm.readDevice(pte.devicePfn * P, 16)
      yield* pm.populateMm(D, D + 64 * KiB)
      const where = (b: number) => kinds(st, b, b + 64 * KiB)[0]
      assert.deepStrictEqual([where(A), where(B), where(C), where(D)], ["device", "system", "device", "device"])
      assert.strictEqual(recB.seen.filter((s) => s.range.event === "migrate").length, 2) // populate + eviction
      assert.deepInclude(recB.seen[1]!.range, { start: B, end: B + 64 * KiB, event: "migrate", owner: "gpusvm" })
      assert.strictEqual((yield* pm.traffic).evictions, 1)
      yield* pm.populateMm(B, B + 64 * KiB) // next LRU: C
      assert.deepStrictEqual([where(A), where(B), where(C), where(D)], ["device", "device", "system", "device"])
      assert.strictEqual(recC.seen.length, 2)
      for (let i = 0; i < 4; i++) assert.deepStrictEqual(yield* cpu.read(bufs[i]!, 64 * KiB), pattern(64 * KiB, 20 + i))
      assert.deepStrictEqual(yield* pm.usage, { totalBytes: 192 * KiB, usedBytes: 0, allocations: 0 })
    }), { vramBytes: 192 * KiB }))

  it.effect("§9 evictAll brings every allocation back byte-exact", () =>
    onVram(Effect.gen(function*() {
      const { cpu, pm, st } = yield* all
      const a = yield* cpu.mmap({ length: 4 * MiB })
      const data = pattern(4 * MiB, 11)
      yield* cpu.write(a, data)
      yield* pm.populateMm(a, a + MiB)
      yield* pm.populateMm(a + 2 * MiB, a + 4 * MiB)
      assert.strictEqual((yield* pm.usage).allocations, 2)
      yield* pm.evictAll
      assert.deepStrictEqual(yield* pm.usage, { totalBytes: 16 * MiB, usedBytes: 0, allocations: 0 })
      assert.strictEqual((yield* pm.traffic).evictions, 2)
      assert.strictEqual(st.devicePtes, 0)
      assert.deepStrictEqual(yield* cpu.read(a, 4 * MiB), data)
    })))

  it.effect("§9 timeslice: a CPU touch waits on the Effect clock until the allocation's timeslice expires", () =>
    onVram(Effect.gen(function*() {
      const { cpu, pm, st } = yield* all
      const a = yield* cpu.mmap({ length: 64 * KiB })
      const data = pattern(64 * KiB, 12)
      yield* cpu.write(a, data)
      yield* pm.populateMm(a, a + 64 * KiB, { timesliceMs: 100 })
      yield* TestClock.adjust("40 millis")
      const reader = yield* Effect.forkChild(cpu.read(a, 64 * KiB))
      for (let i = 0; i < 20; i++) yield* Effect.yieldNow
      assert.isUndefined(reader.pollUnsafe())
      assert.strictEqual(kinds(st, a, a + P)[0], "device")
      yield* TestClock.adjust("59 millis")
      for (let i = 0; i < 20; i++) yield* Effect.yieldNow
      assert.isUndefined(reader.pollUnsafe())
      yield* TestClock.adjust("1 millis")
      assert.deepStrictEqual(yield* Fiber.join(reader), data)
      assert.strictEqual(kinds(st, a, a + P)[0], "system")
      // an expired (or zero) timeslice does not wait
      yield* pm.populateMm(a, a + 64 * KiB)
      assert.deepStrictEqual(yield* cpu.read(a, 64 * KiB), data)
    })))

  it.effect("§9 blocks are released when an allocation's last page leaves: munmap, madvise, exit; partial unmap splits the block order", () =>
    onVram(Effect.gen(function*() {
      const { cpu, pm, st } = yield* all
      const a = yield* cpu.mmap({ length: 4 * MiB, align: 2 * MiB })
      yield* cpu.write(a, pattern(4 * MiB, 13))
      yield* pm.populateMm(a, a + 2 * MiB)
      assert.strictEqual((st.pt.get(a / P) as { order: number }).order, 9)
      yield* cpu.munmap(a, 64 * KiB)
      assert.deepStrictEqual(yield* pm.usage, { totalBytes: 16 * MiB, usedBytes: 2 * MiB, allocations: 1 })
      assert.strictEqual((st.pt.get((a + 64 * KiB) / P) as { order: number }).order, 0)
      yield* cpu.madviseDontNeed(a + 64 * KiB, 2 * MiB - 64 * KiB)
      assert.deepStrictEqual(yield* pm.usage, { totalBytes: 16 * MiB, usedBytes: 0, allocations: 0 })
      assert.deepStrictEqual(yield* cpu.read(a + 64 * KiB, 16), new Uint8Array(16))
      yield* pm.populateMm(a + 2 * MiB, a + 4 * MiB)
      assert.strictEqual((yield* pm.usage).allocations, 1)
      yield* cpu.exit
      assert.deepStrictEqual(yield* pm.usage, { totalBytes: 16 * MiB, usedBytes: 0, allocations: 0 })
      assert.strictEqual(st.devicePtes, 0)
    })))

  it.effect("§8 a 4 MiB device block is reported as order-9 runs (a PMD at most), and mremap by 2 MiB keeps them consistent", () =>
    onVram(Effect.gen(function*() {
      const { cpu, pm, st } = yield* all
      const a = yield* cpu.mmap({ length: 4 * MiB, align: 4 * MiB })
      const data = pattern(4 * MiB, 18)
      yield* cpu.write(a, data)
      yield* pm.populateMm(a, a + 4 * MiB)
      const { h } = yield* recorder(a, a + 4 * MiB)
      const dev = yield* deviceRead(h, a, a + 4 * MiB)
      assert.deepStrictEqual(dev.orders, [9, 9])
      assert.deepStrictEqual(dev.bytes, data)
      const b = yield* cpu.mremap(a, 4 * MiB, 4 * MiB, { newAddr: a + 64 * MiB + 2 * MiB })
      const { h: h2 } = yield* recorder(b, b + 4 * MiB)
      const moved = yield* deviceRead(h2, b, b + 4 * MiB)
      assert.deepStrictEqual(moved.bytes, data)
      assert.deepStrictEqual(yield* cpu.read(b, 4 * MiB), data)
      assert.strictEqual(st.devicePtes, 0)
    })))

  it.effect("§9 mremap moves device-private entries; a touch at the new address migrates back byte-exact", () =>
    onVram(Effect.gen(function*() {
      const { cpu, pm } = yield* all
      const a = yield* cpu.mmap({ length: 128 * KiB })
      const data = pattern(128 * KiB, 14)
      yield* cpu.write(a, data)
      yield* pm.populateMm(a, a + 128 * KiB)
      const b = yield* cpu.mremap(a, 128 * KiB, 128 * KiB, { newAddr: a + 64 * MiB + P })
      assert.deepStrictEqual(yield* cpu.read(b, 128 * KiB), data)
      assert.deepStrictEqual(yield* pm.usage, { totalBytes: 16 * MiB, usedBytes: 0, allocations: 0 })
    })))

  it.effect("§9 pages already in this pagemap stay; pages of another pagemap are migrated (via RAM)", () =>
    onVram(Effect.gen(function*() {
      const { cpu, pms, st, machine } = yield* all
      const [x, y] = pms as [typeof pms[0], typeof pms[0]]
      const a = yield* cpu.mmap({ length: 128 * KiB })
      const data = pattern(128 * KiB, 15)
      yield* cpu.write(a, data)
      const rec = yield* recorder(a, a + 128 * KiB)
      yield* x.populateMm(a, a + 64 * KiB)
      const first = st.pt.get(a / P)
      yield* x.populateMm(a, a + 128 * KiB)
      assert.strictEqual(st.pt.get(a / P), first) // left in place
      assert.strictEqual((yield* x.usage).allocations, 2)
      yield* x.populateMm(a, a + 128 * KiB) // all already there: nothing to do
      assert.strictEqual(rec.seen.length, 2)
      yield* y.populateMm(a, a + 128 * KiB)
      assert.deepStrictEqual(rec.seen.map((s) => s.range.owner), ["own-x", "own-x", "own-x", "own-y"])
      assert.deepStrictEqual(yield* x.usage, { totalBytes: MiB, usedBytes: 0, allocations: 0 })
      assert.strictEqual((yield* y.usage).allocations, 1)
      const pte = st.pt.get(a / P)!
      assert.isTrue(pte.kind === "device" && pte.pagemap === "y" && y.dpaBase <= pte.devicePfn * P && x.dpaBase + x.totalBytes <= y.dpaBase)
      assert.deepStrictEqual(yield* cpu.read(a, 128 * KiB), data)
      assert.deepStrictEqual(yield* machine.violations, [])
    }), { pagemaps: [{ id: "x", owner: "own-x", vramBytes: MiB }, { id: "y", owner: "own-y", vramBytes: MiB }] }))
})

describe("simulated device memory: device access and hmm_range_fault (kernel-semantics §8, §9)", () => {
  it.effect("§8 own device pages are returned as device pages; a foreign owner with fault migrates them back (EBUSY once); without fault they are not valid", () =>
    onVram(Effect.gen(function*() {
      const { cpu, pm, st } = yield* all
      const a = yield* cpu.mmap({ length: 64 * KiB })
      const data = pattern(64 * KiB, 16)
      yield* cpu.write(a, data)
      yield* pm.populateMm(a, a + 64 * KiB)
      const { h } = yield* recorder(a, a + 64 * KiB)
      const own = yield* fault(h, a, a + 64 * KiB, { fault: true, owner: "gpusvm", write: true })
      assert.isTrue(own.every((e: HmmPfn) => e.valid && e.write && e.page?._tag === "Device" && e.order === 4))
      const noFault = yield* fault(h, a, a + 64 * KiB, { fault: false, owner: "someone-else" })
      assert.isTrue(noFault.every((e) => !e.valid))
      assert.strictEqual(kinds(st, a, a + P)[0], "device")
      const { mn, mm, hmm } = yield* services
      const first = yield* Effect.flip(mm.withReadLock(hmm.rangeFault({
        notifier: h,
        notifierSeq: yield* mn.readBegin(h),
        start: a,
        end: a + 64 * KiB,
        fault: true,
        write: false,
        devicePrivateOwner: "someone-else"
      })))
      assert.strictEqual(first._tag, "Busy")
      const sys = yield* fault(h, a, a + 64 * KiB, { fault: true, owner: "someone-else" })
      assert.isTrue(sys.every((e) => e.valid && e.page?._tag === "System"))
      assert.deepStrictEqual(yield* cpu.read(a, 64 * KiB), data)
    })))

  it.effect("§9 device reads/writes of freed pages fail with BadAddress and record stale-device-access; unknown device_unmap is recorded", () =>
    onVram(Effect.gen(function*() {
      const { cpu, pm, st, machine } = yield* all
      const a = yield* cpu.mmap({ length: 64 * KiB })
      yield* pm.populateMm(a, a + 64 * KiB)
      const pte = st.pt.get(a / P)!
      assert.strictEqual(pte.kind, "device")
      const page: DevicePage = pte.kind === "device"
        ? { _tag: "Device", pagemap: pte.pagemap, devicePfn: pte.devicePfn, allocation: pte.allocation, owner: pte.owner }
        : { _tag: "Device", pagemap: "", devicePfn: 0, allocation: 0, owner: "" }
      const dpa = page.devicePfn * P
      yield* pm.writeDevice(dpa + 10, new Uint8Array([7, 7]))
      assert.deepStrictEqual(yield* pm.readDevice(dpa + 9, 4), new Uint8Array([0, 7, 7, 0]))
      assert.deepStrictEqual(yield* cpu.read(a + 9, 4), new Uint8Array([0, 7, 7, 0])) // migrated back
      assert.strictEqual((yield* Effect.flip(pm.readDevice(dpa, 4)))._tag, "BadAddress")
      assert.strictEqual((yield* Effect.flip(pm.writeDevice(dpa, new Uint8Array(4))))._tag, "BadAddress")
      assert.strictEqual((yield* Effect.flip(pm.deviceMap(page, 0, "bidirectional")))._tag, "BadAddress")
      assert.strictEqual((yield* Effect.flip(pm.readDevice(12345 * P, 4)))._tag, "BadAddress")
      yield* pm.deviceUnmap({ addr: dpa, proto: "vram", order: 0, dir: "bidirectional" })
      const v = (yield* machine.violations).map((x) => x.invariant)
      assert.deepStrictEqual(v, ["stale-device-access", "stale-device-access", "stale-device-access", "device-unmap-unknown"])
    })))

  it.effect("§9 deviceMap refuses foreign pagemaps, misaligned orders and runs crossing allocations", () =>
    onVram(Effect.gen(function*() {
      const { cpu, pm, st } = yield* all
      const a = yield* cpu.mmap({ length: 64 * KiB })
      yield* pm.populateMm(a, a + 32 * KiB)
      yield* pm.populateMm(a + 32 * KiB, a + 64 * KiB)
      const at = (addr: number): DevicePage => {
        const p = st.pt.get(addr / P)!
        return p.kind === "device"
          ? { _tag: "Device", pagemap: p.pagemap, devicePfn: p.devicePfn, allocation: p.allocation, owner: p.owner }
          : { _tag: "Device", pagemap: "", devicePfn: -1, allocation: 0, owner: "" }
      }
      const p0 = at(a)
      const ok = yield* pm.deviceMap(p0, 3, "to-device")
      assert.deepStrictEqual(ok, { addr: p0.devicePfn * P, proto: "vram", order: 3, dir: "to-device" })
      yield* pm.deviceUnmap(ok)
      for (const [p, o] of [[{ ...p0, pagemap: "other" }, 0], [at(a + P), 1], [p0, 4]] as const) {
        assert.strictEqual((yield* Effect.flip(pm.deviceMap(p, o, "bidirectional")))._tag, "BadAddress")
      }
      assert.strictEqual(yield* pm.liveMappings, 0)
    })))

  it.effect("§9 readDevice / writeDevice have no yield point (a device read-modify-write stays atomic)", () =>
    onVram(Effect.gen(function*() {
      const { cpu, pm, st } = yield* all
      const a = yield* cpu.mmap({ length: 64 * KiB })
      yield* pm.populateMm(a, a + 64 * KiB)
      const pte = st.pt.get(a / P)!
      const dpa = pte.kind === "device" ? pte.devicePfn * P : -1
      let ticks = 0
      const other = yield* Effect.forkChild(Effect.forever(Effect.andThen(Effect.sync(() => ticks++), Effect.yieldNow)))
      yield* Effect.yieldNow
      const before = ticks
      for (let i = 0; i < 50; i++) {
        const v = (yield* pm.readDevice(dpa, 4))[0]!
        yield* pm.writeDevice(dpa, new Uint8Array([v + 1, 0, 0, 0]))
      }
      assert.strictEqual(ticks, before)
      assert.strictEqual((yield* pm.readDevice(dpa, 1))[0], 50)
      yield* Fiber.interrupt(other)
    }), { vramBytes: MiB, schedule: { seed: 3, yieldProbability: 1 } }))
})

describe("simulated device memory: random sequences against a plain model (kernel-semantics §9)", () => {
  it.effect("§9 populate / CPU touch / device write / evict / munmap keep every byte equal to the model and leak no VRAM", () =>
    Effect.gen(function*() {
      for (let seed = 1; seed <= 12; seed++) {
        yield* onVram(Effect.gen(function*() {
          const { cpu, pm, st, machine } = yield* all
          const rand = mulberry32(seed)
          const int = (n: number) => Math.floor(rand() * n)
          const SIZE = 256 * KiB
          const bufs: Array<number> = []
          const model: Array<Uint8Array> = []
          for (let i = 0; i < 3; i++) {
            bufs.push(yield* cpu.mmap({ length: SIZE, align: i === 0 ? 2 * MiB : P }))
            model.push(new Uint8Array(SIZE))
          }
          for (let step = 0; step < 60; step++) {
            const i = int(3)
            const base = bufs[i]!
            const op = int(7)
            if (op === 0 || op === 1) { // CPU write
              const off = int(SIZE - 1)
              const len = 1 + int(Math.min(3 * P, SIZE - off))
              const bytes = pattern(len, seed * 100 + step)
              yield* cpu.write(base + off, bytes)
              model[i]!.set(bytes, off)
            } else if (op === 2 || op === 3) { // populate a page window
              const s = int(SIZE / P)
              const e = s + 1 + int(SIZE / P - s)
              const r = yield* Effect.result(pm.populateMm(base + s * P, base + e * P))
              if (r._tag === "Failure") assert.strictEqual(r.failure._tag, "OutOfMemory")
            } else if (op === 4) { // CPU read vs model
              const off = int(SIZE - 1)
              const len = 1 + int(Math.min(5 * P, SIZE - off))
              assert.deepStrictEqual(yield* cpu.read(base + off, len), model[i]!.subarray(off, off + len), `seed ${seed} step ${step}`)
            } else if (op === 5) { // device write through a device page
              const off = int(SIZE / P) * P
              const pte = st.pt.get((base + off) / P)
              if (pte?.kind === "device") {
                const bytes = pattern(64, step)
                const at = 8 * int(500)
                yield* pm.writeDevice(pte.devicePfn * P + at, bytes)
                model[i]!.set(bytes, off + at)
              }
            } else if (rand() < 0.5) {
              yield* pm.evictAll
            } else { // munmap and map again (fresh zeros)
              yield* cpu.munmap(base, SIZE)
              bufs[i] = yield* cpu.mmap({ length: SIZE, addr: base, fixed: true })
              model[i]!.fill(0)
            }
          }
          for (let i = 0; i < 3; i++) assert.deepStrictEqual(yield* cpu.read(bufs[i]!, SIZE), model[i]!, `seed ${seed} final`)
          for (const b of bufs) yield* cpu.munmap(b, SIZE)
          assert.deepStrictEqual(yield* pm.usage, { totalBytes: 512 * KiB, usedBytes: 0, allocations: 0 })
          assert.strictEqual(st.devicePtes, 0)
          assert.strictEqual((yield* machine.stats).framesLive, 0)
          assert.deepStrictEqual(yield* machine.violations, [])
        }), { vramBytes: 512 * KiB, schedule: { seed } })
      }
    }))

  it.effect("§9 concurrent CPU owners, populate_mm and evictAll under seeded schedules: every byte kept, nothing leaked", () =>
    Effect.gen(function*() {
      for (let seed = 1; seed <= 16; seed++) {
        yield* onVram(Effect.gen(function*() {
          const { cpu, pm, st, machine } = yield* all
          const SIZE = 128 * KiB
          const owner = (i: number) =>
            Effect.gen(function*() {
              const rand = mulberry32(seed * 10 + i)
              const int = (n: number) => Math.floor(rand() * n)
              const base = yield* cpu.mmap({ length: SIZE })
              const model = new Uint8Array(SIZE)
              for (let step = 0; step < 25; step++) {
                const op = int(4)
                if (op === 0) {
                  const off = int(SIZE - 1)
                  const bytes = pattern(1 + int(Math.min(2 * P, SIZE - off - 1)), seed + step + i)
                  yield* cpu.write(base + off, bytes)
                  model.set(bytes, off)
                } else if (op === 1 || op === 2) {
                  const s = int(SIZE / P)
                  const e = s + 1 + int(SIZE / P - s)
                  const r = yield* Effect.result(pm.populateMm(base + s * P, base + e * P))
                  if (r._tag === "Failure") assert.strictEqual(r.failure._tag, "OutOfMemory")
                } else {
                  const off = int(SIZE - 1)
                  const len = 1 + int(Math.min(3 * P, SIZE - off - 1))
                  assert.deepStrictEqual(yield* cpu.read(base + off, len), model.subarray(off, off + len), `seed ${seed} owner ${i} step ${step}`)
                }
              }
              assert.deepStrictEqual(yield* cpu.read(base, SIZE), model, `seed ${seed} owner ${i} final`)
              yield* cpu.munmap(base, SIZE)
            })
          const chaos = Effect.gen(function*() {
            for (let k = 0; k < 8; k++) {
              yield* pm.evictAll
              yield* Effect.yieldNow
            }
          })
          yield* Effect.all([owner(0), owner(1), owner(2), chaos], { concurrency: "unbounded", discard: true })
          assert.deepStrictEqual(yield* pm.usage, { totalBytes: 256 * KiB, usedBytes: 0, allocations: 0 })
          assert.strictEqual(st.devicePtes, 0)
          assert.strictEqual((yield* machine.stats).framesLive, 0)
          assert.deepStrictEqual(yield* machine.violations, [])
        }), { vramBytes: 256 * KiB, schedule: { seed } })
      }
    }))

  it.effect("§9 populate_mm interrupted during its MIGRATE invalidation: nothing migrated, its device memory released", () =>
    onVram(Effect.gen(function*() {
      const { cpu, pm, mn, st } = yield* all
      const a = yield* cpu.mmap({ length: 64 * KiB })
      yield* cpu.write(a, pattern(64 * KiB, 17))
      yield* mn.insert(a, 64 * KiB, () => Effect.as(Effect.sleep("1 hour"), true))
      const f = yield* Effect.forkChild(pm.populateMm(a, a + 64 * KiB))
      for (let i = 0; i < 10; i++) yield* Effect.yieldNow
      assert.strictEqual((yield* pm.usage).allocations, 1)
      yield* Fiber.interrupt(f)
      assert.deepStrictEqual(yield* pm.usage, { totalBytes: 16 * MiB, usedBytes: 0, allocations: 0 })
      assert.deepStrictEqual(kinds(st, a, a + 64 * KiB), new Array(16).fill("system"))
      assert.deepStrictEqual(yield* cpu.read(a, 64 * KiB), pattern(64 * KiB, 17))
    })))
})
