import { assert, describe, it } from "@effect/vitest"
import { Effect } from "effect"
import { PROT_READ, PROT_RW } from "../../../src/domain/Prot.ts"
import { fileByte } from "../../../src/layers/simulated/Frames.ts"
import { GiB, MiB, onMachine, pattern, services } from "./support.ts"

const P = 4096

/** pfn/writable/order of the page at `addr` (internal view). */
const pteAt = (addr: number) =>
  Effect.map(services, ({ st }) => {
    const e = st.pt.get(addr / P)
    return e === undefined || e.kind !== "system" ? undefined : { pfn: e.pfn, writable: e.writable, order: e.order }
  })

describe("simulated pages and frames (kernel-semantics §8 fault-in, COW)", () => {
  it.effect("§8 private anonymous: read maps the zero page read-only, write breaks COW into a new frame", () =>
    onMachine(Effect.gen(function*() {
      const { cpu, machine } = yield* services
      const a = yield* cpu.mmap({ length: 4 * P })
      assert.deepStrictEqual([...(yield* cpu.read(a + 10, 4))], [0, 0, 0, 0])
      assert.deepStrictEqual(yield* pteAt(a), { pfn: 0, writable: false, order: 0 })
      assert.strictEqual((yield* machine.stats).framesLive, 0)
      yield* cpu.write(a + 10, new Uint8Array([1, 2, 3, 4]))
      const pte = yield* pteAt(a)
      assert.isDefined(pte)
      assert.notStrictEqual(pte!.pfn, 0)
      assert.isTrue(pte!.writable)
      assert.deepStrictEqual([...(yield* cpu.read(a + 9, 6))], [0, 1, 2, 3, 4, 0])
      const s = yield* machine.stats
      assert.strictEqual(s.framesLive, 1)
      assert.strictEqual(s.bytesHeld, P)
      assert.strictEqual(s.invalidations["clear"], 1) // the COW break raised CLEAR
    }), { thp: false }))

  it.effect("§8 writes spanning pages round-trip; untouched pages cost nothing", () =>
    onMachine(Effect.gen(function*() {
      const { cpu, machine } = yield* services
      const a = yield* cpu.mmap({ length: 64 * GiB })
      const buf = pattern(3 * P + 100, 5)
      yield* cpu.write(a + 16 * GiB + 50, buf)
      assert.deepStrictEqual(yield* cpu.read(a + 16 * GiB + 50, buf.length), buf)
      const s = yield* machine.stats
      assert.isAtMost(s.bytesHeld, 4 * P)
      assert.isAtMost(s.framesLive, 512) // one THP at most
    })))

  it.effect("§8 freed frames are poisoned and pfns never reused", () =>
    onMachine(Effect.gen(function*() {
      const { cpu, st } = yield* services
      const a = yield* cpu.mmap({ length: P })
      yield* cpu.write(a, new Uint8Array([9]))
      const pfn = (yield* pteAt(a))!.pfn
      assert.isTrue(st.frames.isLive(pfn))
      yield* cpu.munmap(a, P)
      assert.isTrue(st.frames.isFreed(pfn))
      assert.isUndefined(st.readFrame(pfn, 0, 1))
      const b = yield* cpu.mmap({ length: P })
      yield* cpu.write(b, new Uint8Array([9]))
      assert.isAbove((yield* pteAt(b))!.pfn, pfn)
    }), { thp: false }))

  it.effect("§8 madvise(DONTNEED) drops private anonymous contents (read zero after)", () =>
    onMachine(Effect.gen(function*() {
      const { cpu, machine } = yield* services
      const a = yield* cpu.mmap({ length: 2 * P })
      yield* cpu.write(a, new Uint8Array([5, 6]))
      yield* cpu.madviseDontNeed(a, P)
      assert.deepStrictEqual([...(yield* cpu.read(a, 2))], [0, 0])
      assert.strictEqual((yield* machine.stats).framesLive, 0)
    }), { thp: false }))

  it.effect("§8 shared anonymous gets a real frame on first touch; contents survive madvise", () =>
    onMachine(Effect.gen(function*() {
      const { cpu, machine } = yield* services
      const a = yield* cpu.mmap({ length: 2 * P, shared: true })
      yield* cpu.read(a, 1)
      const pte = yield* pteAt(a)
      assert.notStrictEqual(pte!.pfn, 0)
      assert.isTrue(pte!.writable)
      yield* cpu.write(a, new Uint8Array([42]))
      yield* cpu.madviseDontNeed(a, 2 * P)
      assert.deepStrictEqual([...(yield* cpu.read(a, 1))], [42])
      yield* cpu.munmap(a, 2 * P)
      assert.strictEqual((yield* machine.stats).framesLive, 0)
    })))

  it.effect("§8 file mappings: private read maps the page cache read-only, write COWs; shared writes the page cache", () =>
    onMachine(Effect.gen(function*() {
      const { cpu } = yield* services
      const seed = 17
      const priv = yield* cpu.mmap({ length: 2 * P, kind: "file", fileSeed: seed })
      const expect = [0, 1, 2, P + 3].map((o) => fileByte(seed, o))
      const got = [...(yield* cpu.read(priv, 3)), ...(yield* cpu.read(priv + P + 3, 1))]
      assert.deepStrictEqual(got, expect)
      const cachePte = yield* pteAt(priv)
      assert.isFalse(cachePte!.writable)
      yield* cpu.write(priv, new Uint8Array([200]))
      const cow = yield* pteAt(priv)
      assert.notStrictEqual(cow!.pfn, cachePte!.pfn)
      assert.deepStrictEqual([...(yield* cpu.read(priv, 2))], [200, fileByte(seed, 1)])
      // a shared mapping of the same file still sees the file, then writes it
      const sh = yield* cpu.mmap({ length: 2 * P, kind: "file", fileSeed: seed, shared: true })
      assert.strictEqual((yield* pteAt(sh)) ?? "absent", "absent")
      assert.deepStrictEqual([...(yield* cpu.read(sh, 1))], [fileByte(seed, 0)])
      assert.strictEqual((yield* pteAt(sh))!.pfn, cachePte!.pfn)
      yield* cpu.write(sh + P, new Uint8Array([77]))
      // the private mapping's untouched page 1 reads the page cache, now written
      assert.deepStrictEqual([...(yield* cpu.read(priv + P, 1))], [77])
    })))

  it.effect("§8 THP: an aligned 2 MiB block of a private anonymous VMA is one order-9 frame; partial munmap splits it", () =>
    onMachine(Effect.gen(function*() {
      const { cpu, st, machine } = yield* services
      const a = yield* cpu.mmap({ length: 4 * MiB, align: 2 * MiB })
      yield* cpu.write(a + 5 * P, new Uint8Array([1]))
      const head = yield* pteAt(a)
      assert.strictEqual(head!.order, 9)
      assert.strictEqual(head!.pfn % 512, 0)
      const last = yield* pteAt(a + 2 * MiB - P)
      assert.deepStrictEqual(last, { pfn: head!.pfn + 511, writable: true, order: 9 })
      assert.strictEqual(st.frames.frameOf(head!.pfn + 100)!.order, 9)
      assert.strictEqual((yield* machine.stats).framesLive, 512)
      yield* cpu.munmap(a + MiB, P)
      const after = yield* pteAt(a + 5 * P)
      assert.deepStrictEqual(after, { pfn: head!.pfn + 5, writable: true, order: 0 })
      assert.isUndefined(yield* pteAt(a + MiB))
      assert.deepStrictEqual([...(yield* cpu.read(a + 5 * P, 1))], [1])
    })))

  it.effect("§8 THP split by a partial mprotect keeps the frames", () =>
    onMachine(Effect.gen(function*() {
      const { cpu } = yield* services
      const a = yield* cpu.mmap({ length: 2 * MiB, align: 2 * MiB })
      yield* cpu.write(a, new Uint8Array([3]))
      const before = yield* pteAt(a + P)
      yield* cpu.mprotect(a, P, PROT_READ)
      assert.deepStrictEqual(yield* pteAt(a), { pfn: before!.pfn - 1, writable: false, order: 0 })
      assert.deepStrictEqual(yield* pteAt(a + P), { ...before!, order: 0 })
      yield* cpu.mprotect(a, P, PROT_RW)
      yield* cpu.write(a, new Uint8Array([4]))
      assert.deepStrictEqual(yield* pteAt(a), { pfn: before!.pfn - 1, writable: true, order: 0 }) // reused, not copied
    })))

  it.effect("§8 hugetlb populates 2 MiB frames of order 9 on any touch", () =>
    onMachine(Effect.gen(function*() {
      const { cpu } = yield* services
      const h = yield* cpu.mmap({ length: 4 * MiB, kind: "hugetlb" })
      yield* cpu.read(h + 2 * MiB + 7 * P, 1)
      const e = yield* pteAt(h + 2 * MiB + 7 * P)
      assert.strictEqual(e!.order, 9)
      assert.strictEqual((e!.pfn - 7) % 512, 0)
      assert.isUndefined(yield* pteAt(h))
    }), { thp: false }))

  it.effect("§6 mremap moves pages (same frames) and keeps order 9 for a 2 MiB-multiple shift", () =>
    onMachine(Effect.gen(function*() {
      const { cpu } = yield* services
      const a = yield* cpu.mmap({ length: 2 * MiB, align: 2 * MiB })
      yield* cpu.write(a + P, new Uint8Array([8]))
      const pfn = (yield* pteAt(a + P))!.pfn
      const t = a + 64 * MiB
      yield* cpu.mremap(a, 2 * MiB, 2 * MiB, { newAddr: t })
      assert.deepStrictEqual(yield* pteAt(t + P), { pfn, writable: true, order: 9 })
      const t2 = t + 2 * MiB + P
      yield* cpu.mremap(t, 2 * MiB, 2 * MiB, { newAddr: t2 })
      assert.deepStrictEqual(yield* pteAt(t2 + P), { pfn, writable: true, order: 0 })
      assert.deepStrictEqual([...(yield* cpu.read(t2 + P, 1))], [8])
    })))

  it.effect("§7 §11.1 exit: RELEASE then UNMAP, all frames freed, VMAs gone, acquire fails, ops are typed errors", () =>
    onMachine(Effect.gen(function*() {
      const { cpu, mm, mn, machine } = yield* services
      const a = yield* cpu.mmap({ length: 4 * MiB })
      const f = yield* cpu.mmap({ length: 2 * P, kind: "file", fileSeed: 3, shared: true })
      yield* cpu.write(a, pattern(3 * MiB, 1))
      yield* cpu.read(f, 1)
      const events: Array<string> = []
      yield* mn.insert(a, 4096, (r) => Effect.sync(() => (events.push(r.event), true)))
      yield* mm.acquire
      assert.strictEqual(yield* mm.references, 1)
      yield* mm.release
      yield* cpu.exit
      assert.deepStrictEqual(events, ["release", "unmap"])
      const s = yield* machine.stats
      assert.strictEqual(s.framesLive, 0)
      assert.strictEqual(s.bytesHeld, 0)
      assert.deepStrictEqual(yield* mm.vmas, [])
      assert.strictEqual((yield* Effect.flip(mm.acquire))._tag, "BadAddress")
      assert.strictEqual((yield* Effect.flip(cpu.read(a, 1)))._tag, "BadAddress")
      assert.strictEqual((yield* Effect.flip(cpu.mmap({ length: P })))._tag, "InvalidArgument")
      yield* cpu.exit // idempotent
      assert.deepStrictEqual(events, ["release", "unmap"])
    })))
})
