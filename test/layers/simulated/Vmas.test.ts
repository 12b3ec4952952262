import { assert, describe, it } from "@effect/vitest"
import { Effect, Option } from "effect"
import { PROT_NONE, PROT_READ, PROT_RW } from "../../../src/domain/Prot.ts"
import { MiB, onMachine, services } from "./support.ts"

const P = 4096

describe("simulated VMAs (kernel-semantics §6 mmap lock / §7 changes)", () => {
  it.effect("§6 mmap places first-fit, deterministic, and adjacent anonymous private mappings merge", () =>
    onMachine(Effect.gen(function*() {
      const { cpu, mm } = yield* services
      const a = yield* cpu.mmap({ length: 4 * P })
      const b = yield* cpu.mmap({ length: 4 * P })
      assert.strictEqual(a, 0x1_0000_0000)
      assert.strictEqual(b, a + 4 * P)
      const vmas = yield* mm.vmas
      assert.strictEqual(vmas.length, 1)
      assert.deepStrictEqual([vmas[0]!.start, vmas[0]!.end], [a, a + 8 * P])
      // a different prot does not merge
      const c = yield* cpu.mmap({ length: P, prot: PROT_READ })
      assert.strictEqual(c, a + 8 * P)
      assert.strictEqual((yield* mm.vmas).length, 2)
      // shared anonymous mappings never merge with each other
      yield* cpu.mmap({ length: P, shared: true })
      yield* cpu.mmap({ length: P, shared: true })
      assert.strictEqual((yield* mm.vmas).length, 4)
    })))

  it.effect("§6 mprotect splits a VMA in three and mprotect back merges it", () =>
    onMachine(Effect.gen(function*() {
      const { cpu, mm } = yield* services
      const a = yield* cpu.mmap({ length: 8 * P })
      yield* cpu.mprotect(a + 2 * P, 2 * P, PROT_READ)
      const v = yield* mm.vmas
      assert.deepStrictEqual(v.map((x) => [x.start - a, x.end - a, x.prot.write]), [
        [0, 2 * P, true],
        [2 * P, 4 * P, false],
        [4 * P, 8 * P, true]
      ])
      yield* cpu.mprotect(a + 2 * P, 2 * P, PROT_RW)
      assert.strictEqual((yield* mm.vmas).length, 1)
      const look = yield* mm.vmaLookup(a + 3 * P)
      assert.isTrue(Option.isSome(look))
      assert.isTrue(Option.isNone(yield* mm.vmaLookup(a + 8 * P)))
      const inter = yield* mm.findVmaIntersection(a - P, a + 1)
      assert.strictEqual(Option.getOrThrow(inter).start, a)
    })))

  it.effect("§6 munmap of the middle splits; munmap of a hole is fine; mprotect over a hole is VmaNotFound", () =>
    onMachine(Effect.gen(function*() {
      const { cpu, mm } = yield* services
      const a = yield* cpu.mmap({ length: 8 * P })
      yield* cpu.munmap(a + 3 * P, 2 * P)
      assert.deepStrictEqual((yield* mm.vmas).map((x) => [x.start - a, x.end - a]), [[0, 3 * P], [5 * P, 8 * P]])
      yield* cpu.munmap(a + 3 * P, 2 * P) // hole: no error
      const err = yield* Effect.flip(cpu.mprotect(a, 8 * P, PROT_READ))
      assert.strictEqual(err._tag, "VmaNotFound")
      // state unchanged by the failed mprotect
      assert.isTrue((yield* mm.vmas).every((x) => x.prot.write))
    })))

  it.effect("§6 MAP_FIXED replaces existing mappings", () =>
    onMachine(Effect.gen(function*() {
      const { cpu, mm } = yield* services
      const a = yield* cpu.mmap({ length: 8 * P })
      yield* cpu.write(a + 2 * P, new Uint8Array([7]))
      const f = yield* cpu.mmap({ addr: a + 2 * P, length: 2 * P, fixed: true, prot: PROT_READ })
      assert.strictEqual(f, a + 2 * P)
      assert.strictEqual((yield* mm.vmas).length, 3)
      assert.deepStrictEqual([...(yield* cpu.read(a + 2 * P, 1))], [0])
    })))

  it.effect("§6 mremap: shrink, grow in place, move when blocked, newAddr, dontUnmap", () =>
    onMachine(Effect.gen(function*() {
      const { cpu, mm } = yield* services
      const a = yield* cpu.mmap({ length: 4 * P })
      yield* cpu.write(a, new Uint8Array([1, 2, 3]))
      // shrink
      assert.strictEqual(yield* cpu.mremap(a, 4 * P, 2 * P), a)
      assert.strictEqual((yield* mm.vmas)[0]!.end, a + 2 * P)
      // grow in place (room)
      assert.strictEqual(yield* cpu.mremap(a, 2 * P, 6 * P), a)
      assert.strictEqual((yield* mm.vmas)[0]!.end, a + 6 * P)
      // block growth with another mapping, then grow → moves
      yield* cpu.mmap({ addr: a + 6 * P, length: P, fixed: true, prot: PROT_READ })
      const moved = yield* cpu.mremap(a, 6 * P, 8 * P)
      assert.notStrictEqual(moved, a)
      assert.deepStrictEqual([...(yield* cpu.read(moved, 3))], [1, 2, 3])
      assert.isTrue(Option.isNone(yield* mm.vmaLookup(a)))
      // newAddr
      const target = moved + 64 * P
      assert.strictEqual(yield* cpu.mremap(moved, 8 * P, 8 * P, { newAddr: target }), target)
      assert.deepStrictEqual([...(yield* cpu.read(target, 3))], [1, 2, 3])
      // dontUnmap: old range stays mapped, empty
      const t2 = yield* cpu.mremap(target, 8 * P, 8 * P, { dontUnmap: true })
      assert.deepStrictEqual([...(yield* cpu.read(t2, 3))], [1, 2, 3])
      assert.deepStrictEqual([...(yield* cpu.read(target, 3))], [0, 0, 0])
    })))

  it.effect("§6 hugetlb needs 2 MiB length and address; bad input is InvalidArgument naming the argument, state unchanged", () =>
    onMachine(Effect.gen(function*() {
      const { cpu, mm } = yield* services
      const e1 = yield* Effect.flip(cpu.mmap({ length: MiB, kind: "hugetlb" }))
      assert.strictEqual(e1._tag, "InvalidArgument")
      assert.include(e1.reason, "length")
      const e2 = yield* Effect.flip(cpu.mmap({ length: 2 * MiB, kind: "hugetlb", addr: 0x1_0000_1000, fixed: true }))
      assert.include(e2.reason, "addr")
      const e3 = yield* Effect.flip(cpu.mmap({ length: 0 }))
      assert.include(e3.reason, "length")
      const e4 = yield* Effect.flip(cpu.munmap(2 ** 53, P))
      assert.include(e4.reason, "addr")
      const e5 = yield* Effect.flip(cpu.mprotect(0x1000, 123, PROT_NONE))
      assert.include(e5.reason, "length")
      const e6 = yield* Effect.flip(cpu.mmap({ length: P, align: 3000 }))
      assert.include(e6.reason, "align")
      const e7 = yield* Effect.flip(cpu.mremap(0x1234, P, P))
      assert.include(e7.reason, "addr")
      const e8 = yield* Effect.flip(cpu.read(2 ** 53 + 2, 1))
      assert.strictEqual(e8._tag, "BadAddress")
      assert.deepStrictEqual(yield* mm.vmas, [])
      const h = yield* cpu.mmap({ length: 4 * MiB, kind: "hugetlb" })
      assert.strictEqual(h % (2 * MiB), 0)
      const e9 = yield* Effect.flip(cpu.munmap(h + P, P))
      assert.strictEqual(e9._tag, "InvalidArgument")
      assert.strictEqual((yield* mm.vmas).length, 1)
    })))

  it.effect("§8 Cpu.read/write of unmapped is BadAddress, write on read-only VMA is PermissionDenied", () =>
    onMachine(Effect.gen(function*() {
      const { cpu, machine } = yield* services
      const a = yield* cpu.mmap({ length: 2 * P, prot: PROT_READ })
      assert.strictEqual((yield* Effect.flip(cpu.read(a + 2 * P, 1)))._tag, "BadAddress")
      assert.strictEqual((yield* Effect.flip(cpu.read(a + P, P + 1)))._tag, "BadAddress")
      assert.strictEqual((yield* Effect.flip(cpu.write(a, new Uint8Array(1))))._tag, "PermissionDenied")
      assert.strictEqual((yield* machine.stats).framesLive, 0)
    })))
})
