/**
 * Device-exclusive entries on the simulated machine (kernel-semantics §11.17,
 * issue #14 part 5; mm/rmap.c `make_device_exclusive`, mm/memory.c
 * `remove_device_exclusive_entry`, the HMM selftests `exclusive` and
 * `exclusive_mprotect`): the EXCLUSIVE event owned by the caller when a page is
 * taken, the EXCLUSIVE event with no owner when a CPU touch revokes it, the
 * bytes kept, hmm_range_fault's treatment, mprotect / munmap, and the errors.
 */
import { assert, describe, it } from "@effect/vitest"
import { Effect } from "effect"
import type { MmuRange } from "../../../src/domain/MmuRange.ts"
import type { NotifierHandle } from "../../../src/domain/NotifierHandle.ts"
import { PROT_READ } from "../../../src/domain/Prot.ts"
import { vpnOf } from "../../../src/layers/simulated/PageTable.ts"
import { onMachine, pattern, services } from "./support.ts"

const P = 4096
const KiB = 1024
const OWNER = "dev0"

/** A notifier over `[a, a + len)` that logs every event and always sets the sequence. */
const logging = (a: number, len: number) =>
  Effect.gen(function*() {
    const { mn } = yield* services
    const log: Array<MmuRange> = []
    const cell: { h?: NotifierHandle } = {}
    cell.h = yield* mn.insert(a, len, (r, cur) => Effect.andThen(Effect.sync(() => log.push(r)), Effect.as(mn.setSeq(cell.h!, cur), true)))
    return { log, h: cell.h }
  })

const kinds = (st: { pt: { forEachIn: (s: number, e: number, f: (v: number, p: { kind: string }) => void) => void } }, a: number, len: number) => {
  const out: Array<string> = []
  st.pt.forEachIn(vpnOf(a), vpnOf(a + len), (_v, p) => out.push(p.kind))
  return out
}

describe("§11.17 make_device_exclusive (simulated)", () => {
  it.effect("§11.17 selftest exclusive: each page raises EXCLUSIVE owned by the caller and becomes device-exclusive; a CPU read then a write revoke each page (EXCLUSIVE, no owner) and see / keep the bytes", () =>
    onMachine(Effect.gen(function*() {
      const { cpu, hmm, mm, st } = yield* services
      const a = yield* cpu.mmap({ length: 16 * KiB })
      const bytes = pattern(16 * KiB, 3)
      yield* cpu.write(a, bytes)
      const { log } = yield* logging(a, 16 * KiB)
      yield* mm.withReadLock(hmm.makeDeviceExclusive(a, a + 16 * KiB, OWNER))
      assert.deepStrictEqual(log.map((r) => [r.event, r.owner, r.start - a, r.end - a]), [0, 1, 2, 3].map((i) => ["exclusive", OWNER, i * P, (i + 1) * P]))
      assert.deepStrictEqual(kinds(st, a, 16 * KiB), ["exclusive", "exclusive", "exclusive", "exclusive"])
      assert.strictEqual(st.exclusivePtes, 4)
      log.length = 0
      // a CPU read of one page revokes that page only
      const got = yield* cpu.read(a + P, 16)
      assert.deepStrictEqual([...got], [...bytes.subarray(P, P + 16)])
      assert.deepStrictEqual(log.map((r) => [r.event, r.owner, r.start - a]), [["exclusive", undefined, P]])
      assert.deepStrictEqual(kinds(st, a, 16 * KiB), ["exclusive", "system", "exclusive", "exclusive"])
      // a write revokes the rest and keeps the other bytes
      yield* cpu.write(a, new Uint8Array([9]))
      yield* cpu.write(a + 2 * P, new Uint8Array(2 * P).fill(5))
      assert.deepStrictEqual(log.map((r) => [r.event, r.owner, r.start - a]), [["exclusive", undefined, P], ["exclusive", undefined, 0], ["exclusive", undefined, 2 * P], ["exclusive", undefined, 3 * P]])
      const all = yield* cpu.read(a, 16 * KiB)
      assert.strictEqual(all[0], 9)
      assert.deepStrictEqual([...all.subarray(1, 2 * P)], [...bytes.subarray(1, 2 * P)])
      assert.isTrue(all.subarray(2 * P).every((b) => b === 5))
      assert.strictEqual(st.exclusivePtes, 0)
      st.pt.forEachIn(vpnOf(a), vpnOf(a + 16 * KiB), (_v, pte) => assert.isTrue(pte.kind === "system" && pte.writable))
    })))

  it.effect("§11.17 make_device_exclusive faults the page in writable first: an untouched page is allocated, a zero-page entry breaks COW with CLEAR before EXCLUSIVE", () =>
    onMachine(Effect.gen(function*() {
      const { cpu, hmm, mm, st } = yield* services
      const a = yield* cpu.mmap({ length: 8 * KiB })
      yield* cpu.read(a, P) // zero page, read-only
      const { log } = yield* logging(a, 8 * KiB)
      yield* mm.withReadLock(hmm.makeDeviceExclusive(a, a + 8 * KiB, OWNER))
      assert.deepStrictEqual(log.map((r) => [r.event, r.start - a]), [["clear", 0], ["exclusive", 0], ["exclusive", P]])
      assert.deepStrictEqual(kinds(st, a, 8 * KiB), ["exclusive", "exclusive"])
      const z = yield* cpu.read(a, 8 * KiB)
      assert.isTrue(z.every((b) => b === 0))
    })))

  it.effect("§11.17 hmm_range_fault: without fault a device-exclusive entry is not valid and stays; with fault it is revoked (EXCLUSIVE, no owner), the call is Busy and the retry sees the page", () =>
    onMachine(Effect.gen(function*() {
      const { cpu, hmm, mm, mn, st } = yield* services
      const a = yield* cpu.mmap({ length: 8 * KiB })
      yield* cpu.write(a, pattern(8 * KiB, 1))
      yield* mm.withReadLock(hmm.makeDeviceExclusive(a, a + P, OWNER))
      const { log, h } = yield* logging(a, 8 * KiB)
      const walk = (fault: boolean) =>
        Effect.flatMap(mn.readBegin(h), (seq) => mm.withReadLock(hmm.rangeFault({ notifier: h, notifierSeq: seq, start: a, end: a + 8 * KiB, fault, write: false })))
      const snap = yield* walk(false)
      assert.deepStrictEqual(snap.map((e) => e.valid), [false, true])
      assert.strictEqual(st.exclusivePtes, 1)
      const busy = yield* Effect.flip(walk(true))
      assert.strictEqual(busy._tag, "Busy")
      assert.deepStrictEqual(log.map((r) => [r.event, r.owner, r.start - a]), [["exclusive", undefined, 0]])
      const again = yield* walk(true)
      assert.deepStrictEqual(again.map((e) => e.valid && e.write), [true, true])
      assert.strictEqual(st.exclusivePtes, 0)
    })))

  it.effect("§11.17 selftest exclusive_mprotect: mprotect(PROT_READ) raises PROTECTION_VMA but leaves the entries device-exclusive; the CPU read then restores read-only PTEs", () =>
    onMachine(Effect.gen(function*() {
      const { cpu, hmm, mm, st } = yield* services
      const a = yield* cpu.mmap({ length: 8 * KiB })
      yield* cpu.write(a, pattern(8 * KiB, 2))
      yield* mm.withReadLock(hmm.makeDeviceExclusive(a, a + 8 * KiB, OWNER))
      const { log } = yield* logging(a, 8 * KiB)
      yield* cpu.mprotect(a, 8 * KiB, PROT_READ)
      assert.deepStrictEqual(log.map((r) => r.event), ["protection-vma"])
      assert.deepStrictEqual(kinds(st, a, 8 * KiB), ["exclusive", "exclusive"])
      const got = yield* cpu.read(a, 8 * KiB)
      assert.deepStrictEqual([...got], [...pattern(8 * KiB, 2)])
      st.pt.forEachIn(vpnOf(a), vpnOf(a + 8 * KiB), (_v, pte) => assert.isTrue(pte.kind === "system" && !pte.writable))
      const denied = yield* Effect.flip(cpu.write(a, new Uint8Array([1])))
      assert.strictEqual(denied._tag, "PermissionDenied")
    })))

  it.effect("§11.17 munmap and madvise(DONTNEED) drop device-exclusive entries and their frames (no leak, no revoke event)", () =>
    onMachine(Effect.gen(function*() {
      const { cpu, hmm, machine, mm, st } = yield* services
      const a = yield* cpu.mmap({ length: 8 * KiB })
      yield* cpu.write(a, pattern(8 * KiB, 4))
      yield* mm.withReadLock(hmm.makeDeviceExclusive(a, a + 8 * KiB, OWNER))
      const { log } = yield* logging(a, 8 * KiB)
      yield* cpu.madviseDontNeed(a, P)
      yield* cpu.munmap(a + P, P)
      assert.deepStrictEqual(log.map((r) => r.event), ["clear", "unmap"])
      assert.strictEqual(st.exclusivePtes, 0)
      const z = yield* cpu.read(a, P)
      assert.isTrue(z.every((b) => b === 0))
      yield* cpu.exit
      const v = yield* machine.violations
      assert.deepStrictEqual(v, [])
    })))

  it.effect("§11.17 errors: no VMA or a read-only VMA is BadAddress (GUP FOLL_WRITE EFAULT); a shared mapping is InvalidArgument (Linux EOPNOTSUPP); an unaligned window InvalidArgument", () =>
    onMachine(Effect.gen(function*() {
      const { cpu, hmm, mm } = yield* services
      const x = (s: number, e: number) => Effect.flip(mm.withReadLock(hmm.makeDeviceExclusive(s, e, OWNER)))
      const r = yield* cpu.mmap({ length: 8 * KiB, prot: PROT_READ })
      assert.strictEqual((yield* x(r, r + P))._tag, "BadAddress")
      yield* cpu.munmap(r, 8 * KiB)
      assert.strictEqual((yield* x(r, r + P))._tag, "BadAddress")
      const s = yield* cpu.mmap({ length: 8 * KiB, shared: true })
      const shared = yield* x(s, s + P)
      assert.strictEqual(shared._tag, "InvalidArgument")
      assert.include(shared.reason, "EOPNOTSUPP")
      assert.strictEqual((yield* x(s + 1, s + P))._tag, "InvalidArgument")
    })))
})
