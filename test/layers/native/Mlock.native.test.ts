/**
 * Issue #14 part 4 on the native machine (kernel-semantics §11.17): mlock /
 * munlock / MAP_LOCKED are the real system calls in the helper. Mirrors
 * IGT xe_exec_system_allocator's LOCK sections (`once-malloc-mlock`,
 * `once-mmap-shared-remap-dontunmap`) and the simulated machine's
 * `test/layers/simulated/Mlock.test.ts`: the pages are populated at mlock
 * (for writing where private and writable, breaking COW with a CLEAR
 * first), a hole is `VmaNotFound` (Linux ENOMEM), device-resident pages come
 * back to RAM first, mlocked pages still migrate, and the VMA splits and
 * merges are the kernel's own, read from `/proc/<pid>/maps` and `smaps`.
 */
import { readFileSync } from "node:fs"
import { assert, describe, it } from "@effect/vitest"
import { Effect, Exit } from "effect"
import { builtins, loadFile, nativeSkipReason } from "../../../src/cli/load.ts"
import { decodeScenario } from "../../../src/domain/Scenario.ts"
import { PROT_NONE, PROT_READ } from "../../../src/domain/Prot.ts"
import { NativeMachine } from "../../../src/layers/native/Native.ts"
import { Cpu } from "../../../src/services/Cpu.ts"
import { DevicePagemap } from "../../../src/services/DevicePagemap.ts"
import { Machine } from "../../../src/services/Machine.ts"
import { Mm } from "../../../src/services/Mm.ts"
import { failedNatively, fill, lacks, machineLayer, needs, recorder } from "./support.ts"

const P = 4096
const KiB = 1024
const T = 30_000
const BASE = ["linux", "helperBuilt", "userfaultfd", "pfnVisible"] as const
const skip = lacks(...BASE)
const NEEDS = needs(...BASE)

/** Present (and exclusively mapped) pages of `[addr, addr + len)`, from the helper's pagemap. */
const pages = (addr: number, len: number) =>
  Effect.gen(function*() {
    const pm = yield* (yield* NativeMachine).pagemap(addr, addr + len)
    return { present: pm.filter((e) => e.present).length, exclusive: pm.filter((e) => e.present && e.exclusive).length }
  })

/** The kernel's VMAs of `[start, end)` as `[start - base, end - base, VM_LOCKED]`, from `/proc/<pid>/smaps` (`lo` in VmFlags). */
const kernelVmas = (start: number, end: number, base = start) =>
  Effect.gen(function*() {
    const pid = (yield* NativeMachine).pid
    const out: Array<[number, number, boolean]> = []
    let cur: [number, number, boolean] | undefined
    for (const line of readFileSync(`/proc/${pid}/smaps`, "utf8").split("\n")) {
      const h = /^([0-9a-f]+)-([0-9a-f]+) /.exec(line)
      if (h !== null) {
        const s = parseInt(h[1]!, 16)
        const e = parseInt(h[2]!, 16)
        cur = s < end && start < e ? [s - base, e - base, false] : undefined
        if (cur !== undefined) out.push(cur)
      } else if (cur !== undefined && line.startsWith("VmFlags:")) {
        cur[2] = line.split(/\s+/).includes("lo")
      }
    }
    return out
  })

/** The machine's own VMA view of `[start, end)` (`Mm.vmas`: `/proc/<pid>/maps`), relative to `base`. */
const viewVmas = (start: number, end: number, base = start) =>
  Effect.gen(function*() {
    const vs = yield* (yield* Mm).vmas
    return vs.filter((v) => v.start < end && start < v.end).map((v) => [v.start - base, v.end - base])
  })

describe("§11.17 native machine: mlock / munlock / MAP_LOCKED", () => {
  it.live.skipIf(skip)(`§11.17 mlock populates every page of the window (mm_populate), for writing in a private writable VMA, and sets VM_LOCKED; IGT once-malloc-mlock (${NEEDS})`, () =>
    Effect.gen(function*() {
      const cpu = yield* Cpu
      const a = yield* cpu.mmap({ length: 64 * KiB })
      assert.strictEqual((yield* pages(a, 64 * KiB)).present, 0)
      yield* cpu.mlock(a + 100, 16 * KiB) // widened to pages, as do_mlock does: 5 pages
      // FOLL_WRITE: real anonymous pages, mapped exclusively, not the zero page
      assert.deepStrictEqual(yield* pages(a, 5 * P), { present: 5, exclusive: 5 })
      assert.strictEqual((yield* pages(a + 5 * P, 64 * KiB - 5 * P)).present, 0)
      assert.deepStrictEqual(yield* kernelVmas(a, a + 64 * KiB), [[0, 5 * P, true], [5 * P, 64 * KiB, false]])
      // a read-only VMA is populated for reading (the zero page: present, not exclusive)
      const r = yield* cpu.mmap({ length: 8 * KiB, prot: PROT_READ })
      yield* cpu.mlock(r, 8 * KiB)
      assert.deepStrictEqual(yield* pages(r, 8 * KiB), { present: 2, exclusive: 0 })
      assert.deepStrictEqual(yield* (yield* Machine).violations, [])
    }).pipe(Effect.provide(machineLayer())), T)

  it.live.skipIf(skip)(`§11.17 MAP_LOCKED populates the new mapping at mmap and makes it VM_LOCKED (${NEEDS})`, () =>
    Effect.gen(function*() {
      const cpu = yield* Cpu
      const a = yield* cpu.mmap({ length: 64 * KiB, locked: true })
      assert.deepStrictEqual(yield* pages(a, 64 * KiB), { present: 16, exclusive: 16 })
      assert.deepStrictEqual(yield* kernelVmas(a, a + 64 * KiB), [[0, 64 * KiB, true]])
      yield* cpu.write(a, fill(3, 64 * KiB))
      assert.deepStrictEqual(yield* cpu.read(a, 64 * KiB), fill(3, 64 * KiB))
    }).pipe(Effect.provide(machineLayer())), T)

  it.live.skipIf(skip)(`§11.17 mlock's populate breaks COW on read-faulted (zero-page) private pages with a CLEAR first; already exclusive pages raise nothing (${NEEDS})`, () =>
    Effect.gen(function*() {
      const cpu = yield* Cpu
      const a = yield* cpu.mmap({ length: 16 * KiB })
      yield* cpu.read(a, 8 * KiB) // zero-page entries, read-only
      assert.deepStrictEqual(yield* pages(a, 16 * KiB), { present: 2, exclusive: 0 })
      const rec = yield* recorder(a, 16 * KiB)
      yield* cpu.mlock(a, 16 * KiB)
      assert.deepStrictEqual(rec.events.map((e) => [e.event, e.start - a, e.end - a]), [["clear", 0, 8 * KiB]])
      assert.deepStrictEqual(yield* pages(a, 16 * KiB), { present: 4, exclusive: 4 })
      yield* cpu.munlock(a, 16 * KiB)
      yield* cpu.mlock(a, 16 * KiB)
      assert.strictEqual(rec.events.length, 1, "a second mlock copies nothing: no event")
      assert.deepStrictEqual(yield* cpu.read(a, 16 * KiB), fill(0, 16 * KiB))
    }).pipe(Effect.provide(machineLayer())), T)

  it.live.skipIf(skip)(`§11.17 mlock's populate after a fork breaks the COW of the pages the child shares with a CLEAR first (IGT fork-read + mlock) (${NEEDS})`, () =>
    Effect.gen(function*() {
      const cpu = yield* Cpu
      const a = yield* cpu.mmap({ length: 16 * KiB })
      yield* cpu.write(a, fill(7, 16 * KiB))
      yield* cpu.fork
      const rec = yield* recorder(a, 16 * KiB)
      yield* cpu.mlock(a, 16 * KiB)
      assert.deepStrictEqual(rec.events.map((e) => [e.event, e.start - a, e.end - a]), [["clear", 0, 16 * KiB]])
      assert.deepStrictEqual(yield* pages(a, 16 * KiB), { present: 4, exclusive: 4 })
      assert.deepStrictEqual(yield* cpu.read(a, 16 * KiB), fill(7, 16 * KiB))
    }).pipe(Effect.provide(machineLayer())), T)

  it.live.skipIf(skip)(`§11.17 mlock / munlock of a window with a hole is VmaNotFound (Linux ENOMEM) and changes nothing; bad arguments and a call after exit are InvalidArgument (${NEEDS})`, () =>
    Effect.gen(function*() {
      const cpu = yield* Cpu
      const a = yield* cpu.mmap({ length: 64 * KiB })
      yield* cpu.munmap(a + 16 * KiB, 16 * KiB)
      assert.strictEqual((yield* Effect.flip(cpu.mlock(a, 64 * KiB)))._tag, "VmaNotFound")
      assert.strictEqual((yield* Effect.flip(cpu.munlock(a, 64 * KiB)))._tag, "VmaNotFound")
      // Linux would already have locked [a, a + 16K) before finding the hole; the check comes first here
      assert.isTrue((yield* kernelVmas(a, a + 64 * KiB)).every(([, , lo]) => !lo))
      assert.strictEqual((yield* pages(a, 64 * KiB)).present, 0)
      assert.strictEqual((yield* Effect.flip(cpu.mlock(-1, P)))._tag, "InvalidArgument")
      assert.strictEqual((yield* Effect.flip(cpu.mlock(a, -1)))._tag, "InvalidArgument")
      yield* cpu.mlock(a, 0) // an empty window: nothing to do
      yield* cpu.exit
      assert.strictEqual((yield* Effect.flip(cpu.mlock(a, 16 * KiB)))._tag, "InvalidArgument")
      assert.strictEqual((yield* Effect.flip(cpu.munlock(a, 16 * KiB)))._tag, "InvalidArgument")
    }).pipe(Effect.provide(machineLayer())), T)

  it.live.skipIf(skip)(`§11.17 mlock of a PROT_NONE VMA locks it and populates nothing; the kernel's answer (6.x: ENOMEM, no FOLL_FORCE on PROT_NONE) is VmaNotFound (${NEEDS})`, () =>
    Effect.gen(function*() {
      const cpu = yield* Cpu
      const g = yield* cpu.mmap({ length: 16 * KiB, prot: PROT_NONE })
      const r = yield* Effect.result(cpu.mlock(g, 16 * KiB))
      if (r._tag === "Failure") assert.strictEqual(r.failure._tag, "VmaNotFound")
      assert.strictEqual((yield* pages(g, 16 * KiB)).present, 0)
      assert.deepStrictEqual(yield* kernelVmas(g, g + 16 * KiB), [[0, 16 * KiB, true]])
    }).pipe(Effect.provide(machineLayer())), T)

  it.live.skipIf(skip)(`§11.17 mlock brings device-resident pages back to RAM first (MIGRATE, as a CPU touch), then populates; no userfaultfd fault, no deadlock (${NEEDS})`, () =>
    Effect.gen(function*() {
      const cpu = yield* Cpu
      const pm = yield* DevicePagemap
      const nm = yield* NativeMachine
      const a = yield* cpu.mmap({ length: 64 * KiB })
      yield* cpu.write(a, fill(9, 64 * KiB))
      yield* pm.populateMm(a, a + 64 * KiB)
      assert.strictEqual((yield* pm.usage).allocations, 1)
      const rec = yield* recorder(a, 64 * KiB)
      const faults = (yield* nm.uffd).pagefaults
      yield* cpu.mlock(a + 16 * KiB, 16 * KiB)
      assert.strictEqual((yield* pm.usage).allocations, 0)
      assert.deepStrictEqual(rec.events.map((e) => [e.event, e.start - a, e.end - a]), [["migrate", 0, 64 * KiB]])
      assert.strictEqual((yield* nm.uffd).pagefaults, faults, "the kernel's populate took no userfaultfd fault")
      assert.deepStrictEqual(yield* pages(a, 64 * KiB), { present: 16, exclusive: 16 })
      assert.deepStrictEqual(yield* cpu.read(a, 64 * KiB), fill(9, 64 * KiB))
      assert.deepStrictEqual(yield* (yield* Machine).violations, [])
    }).pipe(Effect.provide(machineLayer())), T)

  it.live.skipIf(skip)(`§11.17 mlocked pages still migrate to device memory and back (migrate_vma does not refuse VM_LOCKED; MADV_DONTNEED_LOCKED); IGT once-malloc-mlock (${NEEDS})`, () =>
    Effect.gen(function*() {
      const cpu = yield* Cpu
      const pm = yield* DevicePagemap
      const a = yield* cpu.mmap({ length: 64 * KiB })
      yield* cpu.write(a, fill(5, 64 * KiB))
      yield* cpu.mlock(a, 64 * KiB)
      yield* pm.populateMm(a, a + 64 * KiB)
      assert.strictEqual((yield* pm.usage).allocations, 1)
      assert.strictEqual((yield* pages(a, 64 * KiB)).present, 0, "the locked pages left system memory")
      assert.isTrue((yield* kernelVmas(a, a + 64 * KiB)).every(([, , lo]) => lo), "still VM_LOCKED")
      assert.deepStrictEqual(yield* cpu.read(a, 64 * KiB), fill(5, 64 * KiB))
      assert.strictEqual((yield* pm.usage).allocations, 0)
      assert.strictEqual((yield* pages(a, 64 * KiB)).present, 16)
      assert.deepStrictEqual(yield* kernelVmas(a, a + 64 * KiB), [[0, 64 * KiB, true]])
      assert.deepStrictEqual(yield* (yield* Machine).violations, [])
    }).pipe(Effect.provide(machineLayer())), T)

  it.live.skipIf(skip)(`§11.17 madvise(MADV_DONTNEED) of a VM_LOCKED VMA is the kernel's EINVAL (InvalidArgument): the locked pages stay (${NEEDS})`, () =>
    Effect.gen(function*() {
      const cpu = yield* Cpu
      const a = yield* cpu.mmap({ length: 16 * KiB })
      yield* cpu.write(a, fill(4, 16 * KiB))
      yield* cpu.mlock(a, 16 * KiB)
      assert.strictEqual((yield* Effect.flip(cpu.madviseDontNeed(a, 16 * KiB)))._tag, "InvalidArgument")
      assert.deepStrictEqual(yield* cpu.read(a, 16 * KiB), fill(4, 16 * KiB))
      yield* cpu.munlock(a, 16 * KiB)
      yield* cpu.madviseDontNeed(a, 16 * KiB)
      assert.deepStrictEqual(yield* cpu.read(a, 16 * KiB), fill(0, 16 * KiB))
    }).pipe(Effect.provide(machineLayer())), T)

  it.live.skipIf(skip)(`§11.17 a VM_LOCKED VMA does not merge with its unlocked neighbours (the kernel's split, seen in /proc/<pid>/maps); munlock merges them back (${NEEDS})`, () =>
    Effect.gen(function*() {
      const cpu = yield* Cpu
      const a = yield* cpu.mmap({ length: 64 * KiB })
      yield* cpu.mlock(a + 16 * KiB, 16 * KiB)
      const split = [[0, 16 * KiB, false], [16 * KiB, 32 * KiB, true], [32 * KiB, 64 * KiB, false]]
      assert.deepStrictEqual(yield* kernelVmas(a, a + 64 * KiB), split)
      assert.deepStrictEqual(yield* viewVmas(a, a + 64 * KiB), split.map(([s, e]) => [s, e]))
      // a MAP_LOCKED mapping right after an unlocked VMA stays apart from it
      const b = yield* cpu.mmap({ length: 16 * KiB, addr: a + 64 * KiB, fixed: true, locked: true })
      assert.strictEqual(b, a + 64 * KiB)
      assert.deepStrictEqual((yield* kernelVmas(a, a + 80 * KiB)).slice(-2), [[32 * KiB, 64 * KiB, false], [64 * KiB, 80 * KiB, true]])
      yield* cpu.munlock(a, 64 * KiB)
      assert.deepStrictEqual(yield* kernelVmas(a, a + 64 * KiB), [[0, 64 * KiB, false]])
      assert.deepStrictEqual(yield* viewVmas(a, a + 64 * KiB), [[0, 64 * KiB]])
    }).pipe(Effect.provide(machineLayer())), T)
})

describe("§11.17 mlock scenarios run natively", () => {
  const MLOCK_BUILTINS = ["once-malloc-mlock", "once-mmap-shared-remap-dontunmap"]

  it("§11.17 nativeSkipReason no longer skips mlock / munlock / mmap locked", () =>
    Effect.gen(function*() {
      for (const name of MLOCK_BUILTINS) {
        const b = (yield* builtins()).find((x) => x.name === name)!
        assert.isUndefined(nativeSkipReason((yield* loadFile(b.file)).scenario, () => 0))
      }
      const reason = (steps: ReadonlyArray<unknown>) => {
        const exit = decodeScenario({ name: "t", steps })
        if (Exit.isFailure(exit)) throw new Error(String(exit.cause))
        return nativeSkipReason(exit.value, () => 0)
      }
      assert.isUndefined(reason([{ op: "mmap", as: "a", length: "64K", locked: true }, { op: "cpu-read", buf: "a", expect: "zero" }]))
      assert.isUndefined(reason([{ op: "mmap", as: "a", length: "64K" }, { op: "mlock", buf: "a" }]))
      assert.isUndefined(reason([{ op: "mmap", as: "a", length: "64K" }, { op: "expect-error", step: { op: "munlock", buf: "a" }, tag: "VmaNotFound" }]))
    }).pipe(Effect.runPromise))

  it.live.skipIf(skip)(`§11.17 IGT once-malloc-mlock and once-mmap-shared-remap-dontunmap pass end to end on the native machine (${NEEDS})`, () =>
    Effect.map(failedNatively(MLOCK_BUILTINS), (failed) => assert.deepStrictEqual(failed, [])), 60_000)
})
