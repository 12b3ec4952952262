/**
 * Kernel-initiated page moves on the simulated machine (kernel-semantics §11.17,
 * `src/layers/simulated/KernelMoves.ts`): each move's kernel behaviour (events,
 * new pfns, same bytes, frames freed, KSM COW, collapse order 9), GPU coherence
 * after each under a bound range, the IOMMU model catching a move that frees a
 * DMA-mapped frame without its CLEAR, and the read_retry path a kernel move
 * racing a GPU fault drives.
 */
import { assert, describe, it } from "@effect/vitest"
import { Effect, Layer } from "effect"
import { HUGE_PAGE_SIZE, PAGE_SIZE } from "../../../src/domain/Address.ts"
import { SimState } from "../../../src/layers/simulated/MachineState.ts"
import type { SystemPte } from "../../../src/layers/simulated/PageTable.ts"
import { vpnOf } from "../../../src/layers/simulated/PageTable.ts"
import { Cpu } from "../../../src/services/Cpu.ts"
import { Driver } from "../../../src/programs/Driver.ts"
import { Gpu } from "../../../src/services/Gpu.ts"
import { KERNEL_MOVE_KINDS, type KernelMoveKind, Machine } from "../../../src/services/Machine.ts"
import { GpuSvmTest } from "../../../src/testing/GpuSvmTest.ts"
import { onMachine, pattern, services } from "./support.ts"

const KiB = 1024

const sys = (st: SimState["Service"], addr: number): SystemPte => {
  const p = st.pt.get(vpnOf(addr))
  assert.isDefined(p)
  assert.strictEqual(p!.kind, "system")
  return p as SystemPte
}

const moved = (o: { readonly _tag: string; readonly pages?: number }) => {
  assert.strictEqual(o._tag, "Moved")
  return (o as { readonly pages: number }).pages
}

describe("§11.17 kernel page moves: kernel behaviour", () => {
  it.effect("§11.17 reclaim swaps anonymous pages out (CLEAR first, frames freed) and a touch swaps in to a NEW frame with the same bytes", () =>
    onMachine(Effect.gen(function*() {
      const { cpu, machine, st } = yield* services
      const a = yield* cpu.mmap({ length: 16 * KiB })
      const bytes = pattern(16 * KiB, 3)
      yield* cpu.write(a, bytes)
      const old = [0, 1, 2, 3].map((i) => sys(st, a + i * PAGE_SIZE).pfn)
      const clears = st.invalidations.clear
      assert.strictEqual(moved(yield* machine.kernelMove("reclaim", a, a + 16 * KiB)), 4)
      assert.strictEqual(st.invalidations.clear, clears + 1)
      for (let i = 0; i < 4; i++) {
        assert.isUndefined(st.pt.get(vpnOf(a) + i))
        assert.isTrue(st.swap.has(vpnOf(a) + i))
        assert.isTrue(st.frames.isFreed(old[i]!))
      }
      assert.deepStrictEqual(yield* cpu.read(a, 16 * KiB), bytes)
      for (let i = 0; i < 4; i++) {
        const p = sys(st, a + i * PAGE_SIZE)
        assert.notStrictEqual(p.pfn, old[i])
        assert.isTrue(p.writable)
      }
      assert.strictEqual(st.swap.size, 0)
    }), { thp: false }))

  it.effect("§11.17 reclaim skips VM_LOCKED (mlocked) pages and holes; munmap drops swap entries", () =>
    onMachine(Effect.gen(function*() {
      const { cpu, machine, st } = yield* services
      const a = yield* cpu.mmap({ length: 8 * KiB, locked: true })
      assert.strictEqual(moved(yield* machine.kernelMove("reclaim", a, a + 8 * KiB)), 0)
      const b = yield* cpu.mmap({ length: 8 * KiB })
      yield* cpu.write(b, pattern(8 * KiB, 1))
      assert.strictEqual(moved(yield* machine.kernelMove("reclaim", b, b + 8 * KiB)), 2)
      yield* cpu.munmap(b, 8 * KiB)
      assert.strictEqual(st.swap.size, 0)
      assert.strictEqual(moved(yield* machine.kernelMove("reclaim", b, b + 8 * KiB)), 0)
    }), { thp: false }))

  it.effect("§11.17 compaction migrates pages to new frames (CLEAR, same bytes, old frames freed), a THP to a new 2 MiB frame", () =>
    onMachine(Effect.gen(function*() {
      const { cpu, machine, st } = yield* services
      const a = yield* cpu.mmap({ length: HUGE_PAGE_SIZE, align: HUGE_PAGE_SIZE })
      const bytes = pattern(64 * KiB, 5)
      yield* cpu.write(a, bytes)
      const before = sys(st, a)
      assert.strictEqual(before.order, 9)
      const head = before.pfn
      const clears = st.invalidations.clear
      assert.strictEqual(moved(yield* machine.kernelMove("compact", a, a + PAGE_SIZE)), 512)
      assert.strictEqual(st.invalidations.clear, clears + 1)
      const after = sys(st, a)
      assert.notStrictEqual(after.pfn, head)
      assert.strictEqual(after.order, 9)
      assert.strictEqual(st.frames.frameOf(after.pfn)!.order, 9)
      assert.isTrue(st.frames.isFreed(head))
      assert.deepStrictEqual(yield* cpu.read(a, 64 * KiB), bytes)
    })))

  it.effect("§11.17 khugepaged collapses 512 small pages of an aligned private anonymous block into one THP (order 9, CLEAR over 2 MiB)", () =>
    onMachine(Effect.gen(function*() {
      const { cpu, machine, st } = yield* services
      const a = yield* cpu.mmap({ length: HUGE_PAGE_SIZE, align: HUGE_PAGE_SIZE })
      const bytes = pattern(HUGE_PAGE_SIZE, 9)
      yield* cpu.write(a, bytes)
      assert.strictEqual(moved(yield* machine.kernelMove("split-thp", a, a + HUGE_PAGE_SIZE)), 512)
      assert.strictEqual(sys(st, a).order, 0)
      const old = sys(st, a).pfn
      yield* machine.kernelMove("reclaim", a + PAGE_SIZE, a + 2 * PAGE_SIZE) // a swapped page collapses too
      const clears = st.invalidations.clear
      assert.strictEqual(moved(yield* machine.kernelMove("collapse", a, a + PAGE_SIZE)), 512)
      assert.strictEqual(st.invalidations.clear, clears + 1)
      for (let i = 0; i < 512; i++) assert.strictEqual(sys(st, a + i * PAGE_SIZE).order, 9)
      const f = st.frames.frameOf(sys(st, a).pfn)!
      assert.strictEqual(f.order, 9)
      assert.strictEqual(f.mapcount, 512)
      assert.notStrictEqual(f.head, st.frames.frameOf(old)?.head)
      assert.isTrue(st.frames.isFreed(old))
      assert.strictEqual(st.swap.size, 0)
      assert.deepStrictEqual(yield* cpu.read(a, HUGE_PAGE_SIZE), bytes)
      // already a PMD mapping: nothing to do
      assert.strictEqual(moved(yield* machine.kernelMove("collapse", a, a + HUGE_PAGE_SIZE)), 0)
    })))

  it.effect("§11.17 KSM merges identical pages into one read-only frame (CLEAR); a later write breaks the COW (CLEAR, a copy)", () =>
    onMachine(Effect.gen(function*() {
      const { cpu, machine, st } = yield* services
      const a = yield* cpu.mmap({ length: 16 * KiB })
      const same = pattern(PAGE_SIZE, 7)
      for (let i = 0; i < 3; i++) yield* cpu.write(a + i * PAGE_SIZE, same)
      yield* cpu.write(a + 3 * PAGE_SIZE, pattern(PAGE_SIZE, 8))
      const other = sys(st, a + 3 * PAGE_SIZE).pfn
      const freed = st.frames.freedFrames
      const clears = st.invalidations.clear
      assert.strictEqual(moved(yield* machine.kernelMove("ksm-merge", a, a + 16 * KiB)), 2)
      assert.strictEqual(st.invalidations.clear, clears + 1)
      const k = sys(st, a).pfn
      for (let i = 0; i < 3; i++) {
        assert.strictEqual(sys(st, a + i * PAGE_SIZE).pfn, k)
        assert.isFalse(sys(st, a + i * PAGE_SIZE).writable)
      }
      assert.isTrue(st.frames.frameOf(k)!.ksm)
      assert.strictEqual(st.frames.frameOf(k)!.mapcount, 3)
      assert.strictEqual(sys(st, a + 3 * PAGE_SIZE).pfn, other)
      assert.strictEqual(st.frames.freedFrames, freed + 2)
      // COW: a write to one merged page copies it
      yield* cpu.write(a + PAGE_SIZE, new Uint8Array([42]))
      assert.strictEqual(st.invalidations.clear, clears + 2)
      assert.notStrictEqual(sys(st, a + PAGE_SIZE).pfn, k)
      assert.strictEqual(st.frames.frameOf(k)!.mapcount, 2)
      assert.deepStrictEqual(yield* cpu.read(a, PAGE_SIZE), same)
      assert.strictEqual((yield* cpu.read(a + PAGE_SIZE, 1))[0], 42)
    }), { thp: false }))

  it.effect("§11.17 THP split: 512 PTEs, same frames, CLEAR over the 2 MiB; a partial munmap of a THP splits it the same way first", () =>
    onMachine(Effect.gen(function*() {
      const { cpu, machine, st } = yield* services
      const a = yield* cpu.mmap({ length: HUGE_PAGE_SIZE, align: HUGE_PAGE_SIZE })
      yield* cpu.write(a, pattern(8 * KiB, 2))
      const pfn = sys(st, a + PAGE_SIZE).pfn
      const freed = st.frames.freedFrames
      const clears = st.invalidations.clear
      assert.strictEqual(moved(yield* machine.kernelMove("split-thp", a + PAGE_SIZE, a + 2 * PAGE_SIZE)), 512)
      assert.strictEqual(st.invalidations.clear, clears + 1)
      assert.strictEqual(sys(st, a + PAGE_SIZE).pfn, pfn)
      assert.strictEqual(sys(st, a + PAGE_SIZE).order, 0)
      assert.strictEqual(st.frames.freedFrames, freed)
      // a partial munmap of an intact THP: CLEAR over its 2 MiB, then UNMAP of the part
      const b = yield* cpu.mmap({ length: HUGE_PAGE_SIZE, align: HUGE_PAGE_SIZE })
      yield* cpu.write(b, new Uint8Array([1]))
      assert.strictEqual(sys(st, b).order, 9)
      const c2 = st.invalidations.clear
      yield* cpu.munmap(b + HUGE_PAGE_SIZE - PAGE_SIZE, PAGE_SIZE)
      assert.strictEqual(st.invalidations.clear, c2 + 1)
      assert.strictEqual(sys(st, b).order, 0)
      // partial mprotect too
      const c = yield* cpu.mmap({ length: HUGE_PAGE_SIZE, align: HUGE_PAGE_SIZE })
      yield* cpu.write(c, new Uint8Array([1]))
      const c3 = st.invalidations.clear
      yield* cpu.mprotect(c, PAGE_SIZE, { read: true, write: false, exec: false })
      assert.strictEqual(st.invalidations.clear, c3 + 1)
    })))

  it.effect("§11.17 kernelMove rejects a window that is not page aligned (InvalidArgument); an exited process moves nothing", () =>
    onMachine(Effect.gen(function*() {
      const { cpu, machine } = yield* services
      const a = yield* cpu.mmap({ length: 8 * KiB })
      const e = yield* Effect.flip(machine.kernelMove("reclaim", a + 1, a + PAGE_SIZE))
      assert.strictEqual(e._tag, "InvalidArgument")
      yield* cpu.exit
      for (const k of KERNEL_MOVE_KINDS) assert.strictEqual(moved(yield* machine.kernelMove(k, a, a + 8 * KiB)), 0)
    })))
})

const stack = (policy: "never" | "always" = "never", seed?: number) =>
  Layer.fresh(GpuSvmTest.layerWithState({
    machine: { vramBytes: 64 * 1024 * 1024, ...(seed === undefined ? {} : { schedule: { seed } }) },
    policy
  }))

describe("§11.17 kernel page moves under a bound GPU SVM range", () => {
  for (const kind of KERNEL_MOVE_KINDS) {
    it.effect(`§11.17 ${kind}: the GPU stays coherent (re-faults, same bytes), old frames were unmapped from the IOMMU first, no violation`, () =>
      Effect.gen(function*() {
        const cpu = yield* Cpu
        const gpu = yield* Gpu
        const machine = yield* Machine
        const st = yield* SimState
        const a = yield* cpu.mmap({ length: HUGE_PAGE_SIZE, align: HUGE_PAGE_SIZE })
        const bytes = pattern(64 * KiB, 11)
        for (let i = 0; i < 16; i += 2) yield* cpu.write(a + i * PAGE_SIZE, bytes.subarray(0, 2 * PAGE_SIZE)) // pairs: KSM has work
        if (kind === "collapse") yield* machine.kernelMove("split-thp", a, a + HUGE_PAGE_SIZE)
        const want = yield* cpu.read(a, 64 * KiB)
        assert.deepStrictEqual(yield* gpu.access(a, 64 * KiB, "read"), want)
        assert.isTrue(yield* gpu.isBound(a, a + 64 * KiB))
        const o = yield* machine.kernelMove(kind as KernelMoveKind, a, a + 64 * KiB)
        assert.isAbove(moved(o), 0)
        assert.isFalse(yield* gpu.isBound(a, a + 64 * KiB), "the CLEAR zapped the GPU mapping")
        assert.deepStrictEqual(yield* gpu.access(a, 64 * KiB, "read"), want)
        yield* gpu.access(a, PAGE_SIZE, "write", pattern(PAGE_SIZE, 99))
        assert.deepStrictEqual(yield* cpu.read(a, PAGE_SIZE), pattern(PAGE_SIZE, 99))
        assert.deepStrictEqual(yield* machine.violations, [])
        assert.strictEqual(st.violations.length, 0)
      }).pipe(Effect.provide(stack())))
  }

  it.effect("§11.17 device-private entries are skipped by every move (not LRU pages)", () =>
    Effect.gen(function*() {
      const cpu = yield* Cpu
      const gpu = yield* Gpu
      const machine = yield* Machine
      const st = yield* SimState
      const a = yield* cpu.mmap({ length: 64 * KiB })
      yield* gpu.access(a, 64 * KiB, "write", pattern(64 * KiB, 4))
      assert.isAbove(st.devicePtes, 0)
      for (const k of KERNEL_MOVE_KINDS) assert.strictEqual(moved(yield* machine.kernelMove(k, a, a + 64 * KiB)), 0)
      assert.deepStrictEqual(yield* cpu.read(a, 64 * KiB), pattern(64 * KiB, 4))
    }).pipe(Effect.provide(stack("always"))))

  it.effect("§11.17 the IOMMU model catches a model bug: a move that frees a DMA-mapped frame without its CLEAR is a frame-freed-while-mapped violation", () =>
    Effect.gen(function*() {
      const cpu = yield* Cpu
      const gpu = yield* Gpu
      const st = yield* SimState
      const a = yield* cpu.mmap({ length: 16 * KiB })
      yield* cpu.write(a, pattern(16 * KiB, 1))
      yield* gpu.access(a, 16 * KiB, "read")
      // a buggy "reclaim": the entry and frame go, no invalidation
      const p = sys(st, a)
      st.pt.delete(vpnOf(a))
      st.frames.unmap(st.frames.frameOf(p.pfn)!)
      assert.isTrue(st.violations.some((v) => v.invariant === "frame-freed-while-mapped"))
    }).pipe(Effect.provide(stack())))

  it.effect("§11.17 a kernel actor racing GPU faults drives the read_retry path (sequence moved after hmm_range_fault), data stays coherent", () =>
    Effect.gen(function*() {
      let retries = 0
      let eagain = 0
      for (let seed = 1; seed <= 40; seed++) {
        const r = yield* Effect.gen(function*() {
          const cpu = yield* Cpu
          const gpu = yield* Gpu
          const machine = yield* Machine
          const driver = yield* Driver
          const st = yield* SimState
          const a = yield* cpu.mmap({ length: 64 * KiB })
          const bytes = pattern(64 * KiB, seed)
          yield* cpu.write(a, bytes)
          const kinds: ReadonlyArray<KernelMoveKind> = ["compact", "reclaim", "ksm-merge"]
          yield* Effect.all([
            Effect.forEach([0, 1, 2, 3], (i) =>
              Effect.gen(function*() {
                const got = yield* gpu.access(a + i * 16 * KiB, 16 * KiB, "read")
                assert.deepStrictEqual(got, bytes.subarray(i * 16 * KiB, (i + 1) * 16 * KiB))
              })),
            Effect.forEach([0, 1, 2, 3, 4, 5], (i) => machine.kernelMove(kinds[i % 3]!, a, a + 64 * KiB))
          ], { concurrency: "unbounded" })
          assert.deepStrictEqual(yield* gpu.access(a, 64 * KiB, "read"), bytes)
          assert.strictEqual(st.violations.length, 0)
          return { retries: st.readRetriesMoved, eagain: (yield* driver.counters).faultRetries.EAGAIN }
        }).pipe(Effect.provide(stack("never", seed)))
        retries += r.retries
        eagain += r.eagain
      }
      assert.isAbove(retries + eagain, 0, "no schedule reached the read_retry / EAGAIN retry")
    }))
})
