/**
 * Issue #13 (kernel-semantics §11) on the simulated machine layers: exit's
 * RELEASE then UNMAP (§11.1), hmm_range_fault's address-order walk (§11.5),
 * the mmap lock modes of populate / DONTNEED (§11.9), mprotect's events
 * (§11.11), mmap hints and MREMAP_DONTUNMAP (§11.15), and the notifier
 * sequence being the callback's job (issue item 8).
 */
import { assert, describe, it } from "@effect/vitest"
import { Deferred, Effect, Exit, Fiber } from "effect"
import { ADDRESS_LIMIT } from "../../../src/domain/Address.ts"
import type { MmuRange } from "../../../src/domain/MmuRange.ts"
import type { NotifierHandle } from "../../../src/domain/NotifierHandle.ts"
import { PROT_READ, PROT_RW } from "../../../src/domain/Prot.ts"
import { SimState } from "../../../src/layers/simulated/MachineState.ts"
import { Driver } from "../../../src/programs/Driver.ts"
import { Cpu } from "../../../src/services/Cpu.ts"
import { DevicePagemap } from "../../../src/services/DevicePagemap.ts"
import { Gpu } from "../../../src/services/Gpu.ts"
import type { MmuNotifier } from "../../../src/services/MmuNotifier.ts"
import { GpuSvmTest } from "../../../src/testing/index.ts"
import { MiB, onMachine, pattern, services } from "./support.ts"

const P = 4096
const KiB = 1024

/** Inserts a notifier whose callback logs every range and publishes `curSeq` (as a well-behaved subscriber does). */
const logging = (mn: MmuNotifier["Service"], start: number, length: number, log: Array<MmuRange>, name?: string, names?: Array<string>) => {
  const cell: { h?: NotifierHandle } = {}
  return Effect.tap(
    mn.insert(start, length, (r, cur) =>
      Effect.andThen(Effect.sync(() => {
        log.push(r)
        if (name !== undefined) names?.push(`${name}:${r.event}`)
      }), Effect.as(mn.setSeq(cell.h!, cur), true))),
    (h) => Effect.sync(() => (cell.h = h))
  )
}

describe("§11.1 process exit (exit_mmap)", () => {
  it.effect("§11.1 Cpu.exit raises RELEASE over [0, ULONG_MAX) on every notifier, then UNMAP over the whole space", () =>
    onMachine(Effect.gen(function*() {
      const { cpu, mn, st, machine } = yield* services
      const a = yield* cpu.mmap({ length: 4 * MiB })
      const b = yield* cpu.mmap({ length: 64 * P })
      yield* cpu.write(a + P, pattern(P, 3))
      yield* cpu.write(b, pattern(P, 5))
      const log: Array<MmuRange> = []
      const names: Array<string> = []
      const presentAtRelease: Array<boolean> = []
      yield* logging(mn, a, 4 * MiB, log, "A", names)
      yield* logging(mn, b, 64 * P, log, "B", names)
      // pages are still there when RELEASE is delivered (exit_mmap: mmu_notifier_release before unmap_vmas)
      yield* mn.insert(b, P, (r) => Effect.sync(() => (r.event === "release" && presentAtRelease.push(st.pt.get(b / P) !== undefined), true)).pipe(Effect.tap(() => Effect.void)))
      yield* cpu.exit
      assert.deepStrictEqual(names, ["A:release", "B:release", "A:unmap", "B:unmap"])
      for (const r of log) {
        assert.strictEqual(r.start, 0)
        assert.strictEqual(r.end, ADDRESS_LIMIT)
        assert.isTrue(r.blockable)
      }
      assert.deepStrictEqual(presentAtRelease, [true])
      const s = yield* machine.stats
      assert.strictEqual(s.invalidations.release, 1)
      assert.strictEqual(s.invalidations.unmap, 1)
      assert.strictEqual(s.framesLive, 0)
      // exit again: nothing more
      yield* cpu.exit
      assert.strictEqual(names.length, 4)
    })))
})

describe("issue13.8 the notifier sequence is the callback's job (mmu_interval_set_seq)", () => {
  it.effect("issue13.8 notifier-seq-not-set: only setSeq moves the sequence; a blockable callback returning true without it is recorded, one that calls it (or refuses a non-blockable offer) is not", () =>
    onMachine(Effect.gen(function*() {
      const { cpu, mn, machine } = yield* services
      const a = yield* cpu.mmap({ length: 12 * P })
      const lazy = yield* mn.insert(a, 4 * P, () => Effect.succeed(true))
      const good = yield* logging(mn, a + 4 * P, 4 * P, [])
      const cell: { h?: NotifierHandle } = {}
      cell.h = yield* mn.insert(a + 8 * P, 4 * P, (r, cur) => (r.blockable ? Effect.as(mn.setSeq(cell.h!, cur), true) : Effect.succeed(false)))
      const s0 = yield* mn.readBegin(lazy)
      const g0 = yield* mn.readBegin(good)
      const t0 = yield* mn.readBegin(cell.h)
      yield* cpu.madviseDontNeed(a, 12 * P)
      // a refused non-blockable offer, retried blockably with setSeq: no violation either
      const t1 = yield* mn.readBegin(cell.h)
      yield* machine.inject({ nonBlockable: 1 })
      yield* cpu.madviseDontNeed(a + 8 * P, 4 * P)
      assert.isTrue(yield* mn.readRetry(cell.h, t1))
      // as in Linux: the sequence moves only when the callback sets it, so read_retry does not fire for `lazy`
      assert.isFalse(yield* mn.readRetry(lazy, s0))
      assert.strictEqual(yield* mn.readBegin(lazy), s0)
      assert.isTrue(yield* mn.readRetry(good, g0))
      assert.isTrue(yield* mn.readRetry(cell.h, t0))
      const v = yield* machine.violations
      assert.deepStrictEqual(v.map((x) => x.invariant), ["notifier-seq-not-set"])
      assert.include(v[0]!.detail, `notifier ${lazy.id}`)
      assert.include(v[0]!.detail, "clear")
    })))
})

/** hmm_range_fault retried while `Busy` (re-reading the sequence), as drm_gpusvm's callers do; returns the final exit. */
const faultUntilSettled = (
  s: Effect.Success<typeof services>,
  h: NotifierHandle,
  start: number,
  end: number,
  write: boolean
) =>
  Effect.gen(function*() {
    for (let i = 0; i < 10; i++) {
      const seq = yield* s.mn.readBegin(h)
      const r = yield* Effect.exit(s.hmm.rangeFault({ notifier: h, notifierSeq: seq, start, end, fault: true, write }))
      if (Exit.isFailure(r) && String(r.cause).includes("Busy")) continue
      return r
    }
    return assert.fail("rangeFault stayed Busy")
  })

describe("§11.5 hmm_range_fault walks in address order", () => {
  it.effect("§11.5 a device-private head and a hole tail: rangeFault fails BadAddress, the head is back in RAM and its device memory released", () =>
    onMachine(Effect.gen(function*() {
      const s = yield* services
      const { cpu, mn, st } = s
      const pm = yield* DevicePagemap
      const a = yield* cpu.mmap({ length: 128 * KiB, align: 128 * KiB })
      yield* cpu.write(a, pattern(128 * KiB, 17))
      yield* pm.populateMm(a, a + 128 * KiB)
      yield* cpu.munmap(a + 64 * KiB, 64 * KiB) // the tail's device pages go with it (the block stays: the head still uses it)
      assert.isAbove((yield* pm.usage).usedBytes, 0)
      const h = yield* logging(mn, a, 128 * KiB, [])
      const r = yield* faultUntilSettled(s, h, a, a + 128 * KiB, false)
      assert.isTrue(Exit.isFailure(r))
      if (Exit.isFailure(r)) assert.include(String(r.cause), "BadAddress")
      for (let v = a / P; v < (a + 64 * KiB) / P; v++) assert.strictEqual(st.pt.get(v)?.kind, "system")
      const u = yield* pm.usage
      assert.strictEqual(u.usedBytes, 0)
      assert.strictEqual(u.allocations, 0)
      assert.deepStrictEqual(yield* cpu.read(a, 64 * KiB), pattern(128 * KiB, 17).subarray(0, 64 * KiB))
    }), { vramBytes: 4 * MiB, thp: false }))

  it.effect("§11.5 pages below a hole are faulted in (COW broken for write), pages above it are untouched", () =>
    onMachine(Effect.gen(function*() {
      const s = yield* services
      const { cpu, mn, st } = s
      const a = yield* cpu.mmap({ length: 16 * P })
      yield* cpu.munmap(a + 8 * P, 2 * P)
      yield* cpu.read(a, 1) // page 0: the shared zero page, read-only
      const h = yield* logging(mn, a, 16 * P, [])
      const r = yield* faultUntilSettled(s, h, a, a + 16 * P, true)
      assert.isTrue(Exit.isFailure(r))
      if (Exit.isFailure(r)) assert.include(String(r.cause), "BadAddress")
      for (let i = 0; i < 8; i++) {
        const pte = st.pt.get(a / P + i)
        assert.strictEqual(pte?.kind, "system", `page ${i}`)
        assert.isTrue(pte?.writable, `page ${i} writable`)
        if (pte?.kind === "system") assert.notStrictEqual(pte.pfn, 0, `page ${i} is not the zero page`)
      }
      for (let i = 10; i < 16; i++) assert.isUndefined(st.pt.get(a / P + i), `page ${i}`)
    }), { thp: false }))
})

describe("§11.5 range_evict after a partial munmap (driver level)", () => {
  it.effect("§11.5 atomic fault moves 2 MiB to VRAM, munmap of the upper half, GC: the lower half's bytes are in RAM, VRAM used is 0", () =>
    Effect.gen(function*() {
      const cpu = yield* Cpu
      const gpu = yield* Gpu
      const driver = yield* Driver
      const pm = yield* DevicePagemap
      const st = yield* SimState
      const buf = yield* cpu.mmap({ length: 2 * MiB, align: 2 * MiB })
      const bytes = pattern(2 * MiB, 29)
      yield* cpu.write(buf, bytes)
      yield* gpu.access(buf + 64, 4, "atomic")
      assert.strictEqual((yield* pm.usage).usedBytes, 2 * MiB)
      yield* cpu.munmap(buf + MiB, MiB)
      yield* driver.collectGarbage
      for (let v = buf / P; v < (buf + MiB) / P; v++) assert.strictEqual(st.pt.get(v)?.kind, "system", `page ${v - buf / P}`)
      const u = yield* pm.usage
      assert.strictEqual(u.usedBytes, 0)
      assert.strictEqual(u.allocations, 0)
      const expect = bytes.slice(0, MiB)
      const atomic = new DataView(expect.buffer).getUint32(64, true) + 1
      new DataView(expect.buffer).setUint32(64, atomic, true)
      assert.deepStrictEqual(yield* cpu.read(buf, MiB), expect)
    }).pipe(Effect.provide(GpuSvmTest.layerWithState({ policy: "xe", machine: { vramBytes: 64 * MiB, devicePrivateOwner: "test-gpu" } }))))
})

describe("§11.9 lock modes: populate_mm and MADV_DONTNEED hold the mmap lock for reading", () => {
  it.live("§11.9 madviseDontNeed and populateMm run while another fiber holds the mmap read lock; munmap waits for it", () =>
    onMachine(Effect.gen(function*() {
      const { cpu, mm } = yield* services
      const pm = yield* DevicePagemap
      const a = yield* cpu.mmap({ length: 64 * KiB })
      yield* cpu.write(a, pattern(64 * KiB, 3))
      const held = yield* Deferred.make<void>()
      const gate = yield* Deferred.make<void>()
      const reader = yield* Effect.forkChild(mm.withReadLock(Effect.andThen(Deferred.succeed(held, undefined), Deferred.await(gate))))
      yield* Deferred.await(held)
      const dn = yield* Effect.timeout(cpu.madviseDontNeed(a, 16 * KiB), "1 second").pipe(Effect.exit)
      assert.isTrue(Exit.isSuccess(dn), "DONTNEED must not wait for the reader")
      const pop = yield* Effect.timeout(pm.populateMm(a, a + 64 * KiB), "1 second").pipe(Effect.exit)
      assert.isTrue(Exit.isSuccess(pop), "populate must not wait for the reader")
      const un = yield* Effect.forkChild(cpu.munmap(a, 64 * KiB))
      yield* Effect.sleep("20 millis")
      assert.isUndefined(un.pollUnsafe(), "munmap keeps the write lock: it waits for the reader")
      yield* Deferred.succeed(gate, undefined)
      yield* Fiber.join(reader)
      yield* Fiber.join(un)
    }), { vramBytes: 4 * MiB }))

  it.live("§11.9 populate racing a DONTNEED of part of the window: migrate_vma collects fewer pages, populate fails Busy, the data stays coherent", () =>
    onMachine(Effect.gen(function*() {
      const { cpu, mn, machine } = yield* services
      const pm = yield* DevicePagemap
      const a = yield* cpu.mmap({ length: 64 * KiB })
      const bytes = pattern(64 * KiB, 11)
      yield* cpu.write(a, bytes)
      const entered = yield* Deferred.make<void>()
      const gate = yield* Deferred.make<void>()
      const cell: { h?: NotifierHandle } = {}
      cell.h = yield* mn.insert(a, 64 * KiB, (r, cur) =>
        Effect.andThen(
          mn.setSeq(cell.h!, cur),
          r.event === "clear" ? Effect.as(Effect.andThen(Deferred.succeed(entered, undefined), Deferred.await(gate)), true) : Effect.succeed(true)
        ))
      // the DONTNEED's CLEAR is in flight (its callback is running) over [16 KiB, 48 KiB) of the window
      const dn = yield* Effect.forkChild(cpu.madviseDontNeed(a + 16 * KiB, 32 * KiB))
      yield* Deferred.await(entered)
      const pop = yield* Effect.timeout(pm.populateMm(a, a + 64 * KiB), "2 seconds").pipe(Effect.flip)
      assert.strictEqual(pop._tag, "Busy")
      if (pop._tag === "Busy") assert.include(pop.reason, "fewer pages")
      assert.strictEqual((yield* pm.usage).usedBytes, 0, "the allocation went back")
      yield* Deferred.succeed(gate, undefined)
      yield* Fiber.join(dn)
      const expect = bytes.slice()
      expect.fill(0, 16 * KiB, 48 * KiB)
      assert.deepStrictEqual(yield* cpu.read(a, 64 * KiB), expect)
      assert.deepStrictEqual(yield* machine.violations, [])
    }), { vramBytes: 4 * MiB, thp: false }))

  it.effect("§11.9 seeded: populate racing DONTNEED on the same window ends coherent for every seed; both Busy and success occur", () =>
    Effect.gen(function*() {
      const outcomes = new Set<string>()
      for (let seed = 1; seed <= 60; seed++) {
        const outcome = yield* onMachine(Effect.gen(function*() {
          const { cpu, mn, machine } = yield* services
          const pm = yield* DevicePagemap
          const a = yield* cpu.mmap({ length: 64 * KiB })
          const bytes = pattern(64 * KiB, seed)
          yield* cpu.write(a, bytes)
          const cell: { h?: NotifierHandle } = {}
          cell.h = yield* mn.insert(a, 64 * KiB, (_r, cur) =>
            Effect.andThen(
              Effect.andThen(mn.readRetry(cell.h!, cur), mn.readRetry(cell.h!, cur)),
              Effect.as(mn.setSeq(cell.h!, cur), true)
            ))
          const [pop] = yield* Effect.all([
            Effect.exit(pm.populateMm(a, a + 64 * KiB)),
            cpu.madviseDontNeed(a + 16 * KiB, 32 * KiB)
          ], { concurrency: 2 })
          const expect = bytes.slice()
          expect.fill(0, 16 * KiB, 48 * KiB)
          assert.deepStrictEqual(yield* cpu.read(a, 64 * KiB), expect, `seed ${seed}`)
          assert.deepStrictEqual(yield* machine.violations, [], `seed ${seed}`)
          yield* cpu.munmap(a, 64 * KiB)
          assert.strictEqual((yield* pm.usage).usedBytes, 0, `seed ${seed}: no device memory left`)
          if (Exit.isSuccess(pop)) return "ok"
          assert.include(String(pop.cause), "Busy", `seed ${seed}`)
          return "busy"
        }), { vramBytes: 4 * MiB, thp: false, schedule: { seed } })
        outcomes.add(outcome)
      }
      assert.deepStrictEqual([...outcomes].sort(), ["busy", "ok"])
    }))
})

describe("§11.11 mprotect events", () => {
  it.effect("§11.11 mprotect with unchanged flags raises no event; a change raises PROTECTION_VMA per changed VMA over its populated part", () =>
    onMachine(Effect.gen(function*() {
      const { cpu, mn, st } = yield* services
      const a = yield* cpu.mmap({ length: 8 * MiB, align: 8 * MiB })
      yield* cpu.mprotect(a + 2 * MiB, 2 * MiB, PROT_READ) // VMAs: [0, 2) rw, [2, 4) r, [4, 8) rw (MiB)
      yield* cpu.write(a + MiB + P, Uint8Array.of(1))
      yield* cpu.write(a + 5 * MiB, Uint8Array.of(2))
      const log: Array<MmuRange> = []
      yield* logging(mn, a, 8 * MiB, log)
      yield* cpu.mprotect(a, 2 * MiB, PROT_RW) // same flags
      yield* cpu.mprotect(a + 2 * MiB, 2 * MiB, PROT_READ) // same flags
      yield* cpu.mprotect(a + 4 * MiB, 4 * MiB, PROT_RW) // same flags
      assert.deepStrictEqual(log, [], "unchanged flags: no event at all")
      yield* cpu.mprotect(a + 2 * MiB, 2 * MiB, PROT_RW) // changed, but nothing populated there
      assert.deepStrictEqual(log, [], "a changed VMA without present pages raises nothing")
      yield* cpu.mprotect(a + 2 * MiB, 2 * MiB, PROT_READ)
      // now [0, 2) rw, [2, 4) r, [4, 8) rw; to read-only: VMAs 1 and 3 change, each over its populated part
      yield* cpu.mprotect(a, 8 * MiB, PROT_READ)
      assert.deepStrictEqual(log.map((r) => [r.event, (r.start - a) / MiB, (r.end - a) / MiB]), [
        ["protection-vma", 0, 2],
        ["protection-vma", 4, 8]
      ])
      assert.isFalse(st.pt.get((a + 5 * MiB) / P)?.writable)
      assert.deepStrictEqual((yield* (yield* services).mm.vmas).filter((v) => v.start >= a && v.end <= a + 8 * MiB).length, 1)
    }), { thp: false }))

  it.effect("§11.11 the event starts at the first populated PMD of the changed part", () =>
    onMachine(Effect.gen(function*() {
      const { cpu, mn } = yield* services
      const a = yield* cpu.mmap({ length: 8 * MiB, align: 8 * MiB })
      yield* cpu.write(a + 5 * MiB + 3 * P, Uint8Array.of(1))
      const log: Array<MmuRange> = []
      yield* logging(mn, a, 8 * MiB, log)
      yield* cpu.mprotect(a + P, 8 * MiB - 2 * P, PROT_READ)
      assert.deepStrictEqual(log.map((r) => [r.start - a, r.end - a]), [[4 * MiB, 8 * MiB - P]])
    }), { thp: false }))
})

describe("§11.15 mmap hints and MREMAP_DONTUNMAP", () => {
  it.effect("§11.15 a non-fixed hint is rounded down to a page; one that does not fit is ignored, not an error", () =>
    onMachine(Effect.gen(function*() {
      const { cpu } = yield* services
      const hint = 0x2_0000_0000
      assert.strictEqual(yield* cpu.mmap({ length: 4 * P, addr: hint + 123 }), hint)
      // taken: the window overlaps the first mapping → ignored, placed elsewhere
      const b = yield* cpu.mmap({ length: 4 * P, addr: hint + P + 5 })
      assert.isTrue(b >= hint + 4 * P || b + 4 * P <= hint)
      // past the top of user space → ignored
      const c = yield* cpu.mmap({ length: 4 * P, addr: 2 ** 53 - P })
      assert.isBelow(c, 2 ** 47)
      // MAP_FIXED still insists
      assert.strictEqual((yield* Effect.flip(cpu.mmap({ length: P, addr: hint + 1, fixed: true })))._tag, "InvalidArgument")
    })))

  it.effect("§11.15 MREMAP_DONTUNMAP on a shared mapping: the pages move and the old range stays mapped to the same object", () =>
    onMachine(Effect.gen(function*() {
      const { cpu, mm, mn } = yield* services
      const a = yield* cpu.mmap({ length: 16 * P, shared: true })
      const bytes = pattern(16 * P, 41)
      yield* cpu.write(a, bytes)
      const log: Array<MmuRange> = []
      yield* logging(mn, a, 16 * P, log)
      const to = yield* cpu.mremap(a, 16 * P, 16 * P, { dontUnmap: true })
      assert.notStrictEqual(to, a)
      assert.deepStrictEqual(yield* cpu.read(to, 16 * P), bytes)
      assert.deepStrictEqual(yield* cpu.read(a, 16 * P), bytes, "shared: the old range refaults the same pages")
      assert.isTrue((yield* mm.vmas).some((v) => v.start <= a && a + 16 * P <= v.end), "the old range is still mapped")
      assert.deepStrictEqual(log.map((r) => r.event), ["unmap"])
    })))
})
