/**
 * fork(2) and several processes on the simulated machine (kernel-semantics
 * §11.17, issue #14 parts 1–2; IGT xe_exec_system_allocator `fork-read`,
 * HMM selftests `anon_write_child`, `anon_write_child_shared`): the child gets
 * a copy-on-write copy of private mappings (PROTECTION_PAGE to the parent's
 * notifiers, both sides read-only, a write by either breaks the COW with a
 * CLEAR), shared mappings stay shared, VM_LOCKED is not inherited, and a new
 * process shares the machine's memory and IOMMU but has its own address space.
 */
import { assert, describe, it } from "@effect/vitest"
import { Context, Effect } from "effect"
import type { MmuRange } from "../../../src/domain/MmuRange.ts"
import type { NotifierHandle } from "../../../src/domain/NotifierHandle.ts"
import { PROT_READ } from "../../../src/domain/Prot.ts"
import { SimState } from "../../../src/layers/simulated/Simulated.ts"
import { vpnOf } from "../../../src/layers/simulated/PageTable.ts"
import { Cpu } from "../../../src/services/Cpu.ts"
import { Gpu } from "../../../src/services/Gpu.ts"
import { Machine } from "../../../src/services/Machine.ts"
import { Mm } from "../../../src/services/Mm.ts"
import { MmuNotifier } from "../../../src/services/MmuNotifier.ts"
import { MiB, onMachine, pattern, services } from "./support.ts"

const KiB = 1024

/** Records every invalidation of `[addr, addr + len)` through `mn`. */
const watch = (mn: MmuNotifier["Service"], addr: number, len: number) =>
  Effect.gen(function*() {
    const log: Array<MmuRange> = []
    const cell: { h?: NotifierHandle } = {}
    cell.h = yield* mn.insert(addr, len, (r, cur) => Effect.andThen(Effect.sync(() => log.push(r)), Effect.as(mn.setSeq(cell.h!, cur), true)))
    return log
  })

/** The simulated state behind a process's services (white-box: the services `fork` / `spawn` return are the simulated ones). */
const stateOf = <R>(c: Context.Context<R>) => Context.get(c as unknown as Context.Context<SimState>, SimState)

const events = (log: ReadonlyArray<MmuRange>, base: number) => log.map((r) => [r.event, r.start - base, r.end - base])

describe("§11.17 fork (simulated)", () => {
  it.effect("§11.17 fork raises PROTECTION_PAGE over each private VMA to the parent, write-protects both sides and shares the frames", () =>
    onMachine(Effect.gen(function*() {
      const { cpu, mn, st } = yield* services
      const a = yield* cpu.mmap({ length: 64 * KiB })
      yield* cpu.write(a, pattern(16 * KiB, 3))
      const log = yield* watch(mn, a, 64 * KiB)
      const child = yield* cpu.fork
      assert.deepStrictEqual(events(log, a), [["protection-page", 0, 64 * KiB]])
      const cst = stateOf(child)
      assert.notStrictEqual(cst, st)
      assert.strictEqual(cst.frames, st.frames, "one machine: the frames are shared")
      for (let v = vpnOf(a); v < vpnOf(a + 16 * KiB); v++) {
        const p = st.pt.get(v)!
        const c = cst.pt.get(v)!
        assert.isTrue(p.kind === "system" && c.kind === "system" && p.pfn === c.pfn && !p.writable && !c.writable)
      }
      // the child sees the parent's bytes
      const got = yield* Context.get(child, Cpu).read(a, 16 * KiB)
      assert.deepStrictEqual(got, pattern(16 * KiB, 3))
    })))

  it.effect("§11.17 HMM selftest anon_write_child: after fork a write by either side breaks the COW with a CLEAR; the other keeps its bytes", () =>
    onMachine(Effect.gen(function*() {
      const { cpu, mn, st } = yield* services
      const a = yield* cpu.mmap({ length: 16 * KiB })
      yield* cpu.write(a, pattern(16 * KiB, 1))
      const child = yield* cpu.fork
      const ccpu = Context.get(child, Cpu)
      const clog = yield* watch(Context.get(child, MmuNotifier), a, 16 * KiB)
      const plog = yield* watch(mn, a, 16 * KiB)
      yield* ccpu.write(a, pattern(4 * KiB, 9))
      assert.deepStrictEqual(events(clog, a), [["clear", 0, 4 * KiB]], "the child's write copies its page (wp_page_copy)")
      assert.deepStrictEqual(plog, [], "the parent's notifiers see nothing of the child's COW")
      assert.deepStrictEqual(yield* cpu.read(a, 4 * KiB), pattern(4 * KiB, 1))
      assert.deepStrictEqual(yield* ccpu.read(a, 4 * KiB), pattern(4 * KiB, 9))
      // the parent writes the page the child already copied: it is the last mapper, so it reuses it (no event)
      yield* cpu.write(a, pattern(4 * KiB, 5))
      assert.deepStrictEqual(plog, [])
      // a page both still share: the parent's write copies (CLEAR to the parent)
      yield* cpu.write(a + 8 * KiB, pattern(4 * KiB, 6))
      assert.deepStrictEqual(events(plog, a), [["clear", 8 * KiB, 12 * KiB]])
      assert.deepStrictEqual(yield* ccpu.read(a + 8 * KiB, 4 * KiB), pattern(16 * KiB, 1).subarray(8 * KiB, 12 * KiB))
      const cst = stateOf(child)
      assert.notStrictEqual(st.pt.get(vpnOf(a + 8 * KiB)), cst.pt.get(vpnOf(a + 8 * KiB)))
    })))

  it.effect("§11.17 HMM selftest anon_write_child_shared: a MAP_SHARED mapping stays shared across fork (no PTE copy, no event)", () =>
    onMachine(Effect.gen(function*() {
      const { cpu, mn } = yield* services
      const a = yield* cpu.mmap({ length: 16 * KiB, shared: true })
      yield* cpu.write(a, pattern(16 * KiB, 2))
      const log = yield* watch(mn, a, 16 * KiB)
      const child = yield* cpu.fork
      assert.deepStrictEqual(log, [])
      const cst = stateOf(child)
      assert.strictEqual(cst.pt.size, 0, "vma_needs_copy is false for a shared mapping: the child faults from the object")
      const ccpu = Context.get(child, Cpu)
      yield* ccpu.write(a, pattern(4 * KiB, 8))
      assert.deepStrictEqual(yield* cpu.read(a, 4 * KiB), pattern(4 * KiB, 8), "the parent sees the child's write")
      // the parent exits first: the child still has the object
      yield* cpu.exit
      assert.deepStrictEqual(yield* ccpu.read(a + 4 * KiB, 4 * KiB), pattern(16 * KiB, 2).subarray(4 * KiB, 8 * KiB))
    })))

  it.effect("§11.17 a THP is shared read-only across fork; a write by the parent splits it and copies one page", () =>
    onMachine(Effect.gen(function*() {
      const { cpu, st } = yield* services
      const a = yield* cpu.mmap({ length: 2 * MiB, align: 2 * MiB })
      yield* cpu.write(a, pattern(2 * MiB, 4))
      assert.strictEqual(st.pt.get(vpnOf(a))!.order, 9)
      const child = yield* cpu.fork
      yield* cpu.write(a + 4 * KiB, pattern(4 * KiB, 7))
      assert.strictEqual(st.pt.get(vpnOf(a))!.order, 0, "the parent's PMD was split")
      const ccpu = Context.get(child, Cpu)
      assert.deepStrictEqual(yield* ccpu.read(a, 2 * MiB), pattern(2 * MiB, 4))
      yield* Context.get(child, Cpu).exit
      assert.deepStrictEqual((yield* cpu.read(a + 4 * KiB, 4 * KiB)), pattern(4 * KiB, 7))
    })))

  it.effect("§11.17 mlock is not inherited across fork; the child's exit leaves the parent's pages and frees its own", () =>
    onMachine(Effect.gen(function*() {
      const { cpu, st } = yield* services
      const a = yield* cpu.mmap({ length: 16 * KiB, locked: true })
      yield* cpu.write(a, pattern(16 * KiB, 5))
      const framesBefore = st.frames.liveBasePages
      const child = yield* cpu.fork
      const cst = stateOf(child)
      assert.isTrue(st.vmas.find(a)!.locked === true)
      assert.isFalse(cst.vmas.find(a)!.locked === true)
      const ccpu = Context.get(child, Cpu)
      yield* ccpu.write(a, pattern(8 * KiB, 6)) // two private copies
      assert.strictEqual(st.frames.liveBasePages, framesBefore + 2)
      yield* ccpu.exit
      assert.strictEqual(st.frames.liveBasePages, framesBefore)
      assert.deepStrictEqual(yield* cpu.read(a, 16 * KiB), pattern(16 * KiB, 5))
      const e = yield* Effect.flip(ccpu.fork)
      assert.strictEqual(e._tag, "InvalidArgument")
    })))

  it.effect("§11.17 a read-only private VMA is still a COW mapping: PROTECTION_PAGE is raised, entries are shared read-only", () =>
    onMachine(Effect.gen(function*() {
      const { cpu, mn } = yield* services
      const a = yield* cpu.mmap({ length: 8 * KiB, prot: PROT_READ })
      yield* cpu.read(a, 8 * KiB)
      const log = yield* watch(mn, a, 8 * KiB)
      yield* cpu.fork
      assert.deepStrictEqual(events(log, a), [["protection-page", 0, 8 * KiB]])
    })))
})

describe("§11.17 several processes on one machine (simulated)", () => {
  it.effect("§11.17 Machine.spawn: a new, empty address space sharing the machine's memory and IOMMU; its own GPU VM and notifiers", () =>
    onMachine(Effect.gen(function*() {
      const { cpu, machine, st } = yield* services
      const a = yield* cpu.mmap({ length: 16 * KiB, addr: 0x2_0000_0000, fixed: true })
      yield* cpu.write(a, pattern(16 * KiB, 1))
      const other = yield* machine.spawn
      const ost = stateOf(other)
      assert.strictEqual(ost.iommu, st.iommu)
      assert.strictEqual(ost.vmas.list.length, 0)
      assert.notStrictEqual(Context.get(other, Gpu), yield* Gpu)
      // the same address is free there: a different mapping, different bytes
      const ocpu = Context.get(other, Cpu)
      const b = yield* ocpu.mmap({ length: 16 * KiB, addr: 0x2_0000_0000, fixed: true })
      assert.strictEqual(b, a)
      assert.deepStrictEqual(yield* ocpu.read(b, 16), new Uint8Array(16))
      yield* Context.get(other, Mm).acquire
      yield* Context.get(other, Mm).release
      const s = yield* Context.get(other, Machine).stats
      assert.strictEqual(s.framesLive, (yield* machine.stats).framesLive, "memory counters are machine-wide")
    })))

  it.effect("§11.17 Gpu.createVm: a second VM has its own page table over the same memories", () =>
    onMachine(Effect.gen(function*() {
      const gpu = yield* Gpu
      const vm = yield* gpu.createVm
      yield* gpu.bind(0x10_0000, 0x10_1000, [{ addr: 0x1000_0000, proto: "system", order: 0, dir: "bidirectional" }])
      assert.isTrue(yield* gpu.isBound(0x10_0000, 0x10_1000))
      assert.isFalse(yield* vm.isBound(0x10_0000, 0x10_1000))
    })))
})
