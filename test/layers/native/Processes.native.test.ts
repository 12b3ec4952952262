/**
 * Issue #14 parts 1–2 on the native machine (kernel-semantics §11.17):
 * `Machine.spawn` starts another helper process (its own address space, the
 * same device memory) and `Cpu.fork` forks the helper into a child that keeps
 * serving (a copy-on-write copy made by Linux). Mirrors IGT
 * xe_exec_system_allocator `processes-*` / `fork-read*` and the HMM selftests
 * `anon_write_child`, `anon_write_child_shared`, `hmm_cow_in_device`. Every
 * process is killed and reaped when the machine's layer scope closes.
 */
import { assert, describe, it } from "@effect/vitest"
import { Context, Effect, Exit, Layer, Scope } from "effect"
import { builtins, loadFile, nativeSkipReason } from "../../../src/cli/load.ts"
import { NativeMachine } from "../../../src/layers/native/Native.ts"
import { Cpu } from "../../../src/services/Cpu.ts"
import { DevicePagemap } from "../../../src/services/DevicePagemap.ts"
import { Hmm } from "../../../src/services/Hmm.ts"
import { Machine, type MachineServices } from "../../../src/services/Machine.ts"
import { MmuNotifier } from "../../../src/services/MmuNotifier.ts"
import { failedNatively, fill, isGone, lacks, machineLayer, needs, recorder } from "./support.ts"

const KiB = 1024
const T = 30_000
const BASE = ["linux", "helperBuilt", "userfaultfd", "pfnVisible"] as const
const skip = lacks(...BASE)
const NEEDS = needs(...BASE)

/** The pid of a process's helper (its `NativeMachine`, which the native machine's process contexts carry too). */
const pidOf = (ctx: Context.Context<MachineServices>): number => Context.get(ctx as unknown as Context.Context<NativeMachine>, NativeMachine).pid

/** This process's Cpu and pagemap, and a spawned second process's. */
const twoProcesses = Effect.gen(function*() {
  const ctx = yield* (yield* Machine).spawn
  return { cpu: yield* Cpu, pm: yield* DevicePagemap, ctx, cpu1: Context.get(ctx, Cpu), pm1: Context.get(ctx, DevicePagemap) }
})

/** A private 64 KiB buffer of `cpu` filled with `v`, then migrated to the device by `pm` when given. */
const buffer = (cpu: Cpu["Service"], v: number, pm?: DevicePagemap["Service"]) =>
  Effect.gen(function*() {
    const a = yield* cpu.mmap({ length: 64 * KiB })
    yield* cpu.write(a, fill(v, 64 * KiB))
    if (pm !== undefined) yield* pm.populateMm(a, a + 64 * KiB)
    return a
  })

describe("§11.17 native machine: Machine.spawn", () => {
  it.live.skipIf(skip)(`§11.17 spawn (IGT processes-*) is another helper process: an independent address space on the same device memory (${NEEDS})`, () =>
    Effect.gen(function*() {
      const { cpu, cpu1, ctx, pm, pm1 } = yield* twoProcesses
      assert.notStrictEqual(pidOf(ctx), (yield* NativeMachine).pid)
      // the same placement in both processes: the same address, two different mappings
      const a = yield* cpu.mmap({ length: 64 * KiB })
      const b = yield* cpu1.mmap({ length: 64 * KiB })
      assert.strictEqual(a, b)
      yield* cpu.write(a, fill(1, 64 * KiB))
      assert.deepStrictEqual(yield* cpu1.read(b, 64 * KiB), fill(0, 64 * KiB))
      yield* cpu1.write(b, fill(2, 64 * KiB))
      assert.deepStrictEqual(yield* cpu.read(a, 64 * KiB), fill(1, 64 * KiB))
      // one device memory: a migration of either process shows in both pagemaps' usage
      yield* pm.populateMm(a, a + 64 * KiB)
      yield* pm1.populateMm(b, b + 64 * KiB)
      assert.deepStrictEqual(yield* pm1.usage, yield* pm.usage)
      assert.strictEqual((yield* pm.usage).allocations, 2)
      assert.deepStrictEqual(yield* cpu.read(a, 64 * KiB), fill(1, 64 * KiB))
      assert.deepStrictEqual(yield* cpu1.read(b, 64 * KiB), fill(2, 64 * KiB))
      assert.strictEqual((yield* pm.usage).allocations, 0)
      assert.deepStrictEqual(yield* (yield* Machine).violations, [])
    }).pipe(Effect.provide(machineLayer())), T)

  it.live.skipIf(skip)(`§11.17 eviction crosses processes (IGT processes-evict-malloc): a full device evicts the other process's allocation, bytes intact (${NEEDS})`, () =>
    Effect.gen(function*() {
      const { cpu, cpu1, pm, pm1 } = yield* twoProcesses
      const a = yield* buffer(cpu, 3, pm)
      const b = yield* buffer(cpu1, 4, pm1)
      const t = yield* pm.traffic
      assert.strictEqual(t.evictions, 1)
      assert.strictEqual((yield* pm.usage).allocations, 1)
      assert.deepStrictEqual(yield* cpu.read(a, 64 * KiB), fill(3, 64 * KiB))
      assert.deepStrictEqual(yield* cpu1.read(b, 64 * KiB), fill(4, 64 * KiB))
    }).pipe(Effect.provide(machineLayer({ vramBytes: 64 * KiB }))), T)
})

describe("§11.17 native machine: Cpu.fork", () => {
  it.live.skipIf(skip)(`§11.17 fork (HMM anon_write_child, IGT fork-read): the child is a real COW copy; a private write by either side is not seen by the other (${NEEDS})`, () =>
    Effect.gen(function*() {
      const cpu = yield* Cpu
      const a = yield* buffer(cpu, 7)
      const ctx = yield* cpu.fork
      const child = Context.get(ctx, Cpu)
      const childPid = pidOf(ctx)
      assert.notStrictEqual(childPid, (yield* NativeMachine).pid)
      assert.deepStrictEqual(yield* child.read(a, 64 * KiB), fill(7, 64 * KiB))
      yield* child.write(a, fill(9, 4 * KiB))
      assert.deepStrictEqual(yield* cpu.read(a, 4 * KiB), fill(7, 4 * KiB))
      yield* cpu.write(a + 8 * KiB, fill(5, 4 * KiB))
      assert.deepStrictEqual(yield* child.read(a + 8 * KiB, 4 * KiB), fill(7, 4 * KiB))
      assert.deepStrictEqual(yield* child.read(a, 4 * KiB), fill(9, 4 * KiB))
      // the child maps what it forked with and can map more on its own
      const c = yield* child.mmap({ length: 64 * KiB })
      yield* child.write(c, fill(6, 64 * KiB))
      assert.deepStrictEqual(yield* child.read(c, 64 * KiB), fill(6, 64 * KiB))
      yield* child.exit
      assert.deepStrictEqual(yield* cpu.read(a + 8 * KiB, 4 * KiB), fill(5, 4 * KiB))
      assert.deepStrictEqual(yield* (yield* Machine).violations, [])
    }).pipe(Effect.provide(machineLayer())), T)

  it.live.skipIf(skip)(`§11.17 fork of MAP_SHARED (HMM anon_write_child_shared): writes are seen both ways, and no PROTECTION_PAGE (${NEEDS})`, () =>
    Effect.gen(function*() {
      const cpu = yield* Cpu
      const a = yield* cpu.mmap({ length: 64 * KiB, shared: true })
      yield* cpu.write(a, fill(7, 64 * KiB))
      const rec = yield* recorder(a, 64 * KiB)
      const ctx = yield* cpu.fork
      const child = Context.get(ctx, Cpu)
      yield* child.write(a, fill(9, 4 * KiB))
      assert.deepStrictEqual(yield* cpu.read(a, 4 * KiB), fill(9, 4 * KiB))
      yield* cpu.write(a + 4 * KiB, fill(5, 4 * KiB))
      assert.deepStrictEqual(yield* child.read(a + 4 * KiB, 4 * KiB), fill(5, 4 * KiB))
      assert.deepStrictEqual(rec.events.filter((e) => e.event === "protection-page"), [])
    }).pipe(Effect.provide(machineLayer())), T)

  it.live.skipIf(skip)(`§11.17 fork raises PROTECTION_PAGE over the private VMA on the parent's notifiers; the parent's next write breaks the COW with CLEAR (IGT fork-read) (${NEEDS})`, () =>
    Effect.gen(function*() {
      const cpu = yield* Cpu
      const a = yield* buffer(cpu, 7)
      const rec = yield* recorder(a, 64 * KiB)
      const ctx = yield* cpu.fork
      assert.deepStrictEqual(rec.events, [{ event: "protection-page", start: a, end: a + 64 * KiB }])
      yield* cpu.write(a, fill(8, 4 * KiB))
      assert.strictEqual(rec.events[1]?.event, "clear")
      assert.deepStrictEqual(yield* Context.get(ctx, Cpu).read(a, 4 * KiB), fill(7, 4 * KiB))
      // the child's notifiers are its own: nothing of the parent's reaches them
      const nm = yield* NativeMachine
      const counts = yield* nm.uffd
      if (nm.hello.fork === 1) assert.isAtLeast(counts.confirmed, 1) // uffd's FORK event confirmed the Cpu's PROTECTION_PAGE
      assert.strictEqual(counts.unsolicited, 0)
    }).pipe(Effect.provide(machineLayer())), T)

  it.live.skipIf(skip)(`§11.17 fork of device-private pages (HMM hmm_cow_in_device): the child sees the device bytes; the parent's entries turn read-only and a write fault migrates them back (${NEEDS})`, () =>
    Effect.gen(function*() {
      const cpu = yield* Cpu
      const pm = yield* DevicePagemap
      const hmm = yield* Hmm
      const mmu = yield* MmuNotifier
      const a = yield* buffer(cpu, 7, pm)
      const rec = yield* recorder(a, 64 * KiB)
      const ctx = yield* cpu.fork
      assert.deepStrictEqual(rec.events.map((e) => e.event), ["protection-page"])
      // the child's copy: the device bytes, in the child's own system memory
      const child = Context.get(ctx, Cpu)
      assert.deepStrictEqual(yield* child.read(a, 64 * KiB), fill(7, 64 * KiB))
      assert.strictEqual((yield* pm.usage).allocations, 1)
      // the parent's device-private entries are read-only now
      const ro = yield* hmm.rangeFault({ notifier: rec.h, notifierSeq: yield* mmu.readBegin(rec.h), start: a, end: a + 64 * KiB, fault: true, write: false, devicePrivateOwner: pm.owner })
      assert.isTrue(ro.every((p) => p.valid && p.page?._tag === "Device" && !p.write))
      // a write fault goes through migrate_to_ram (MIGRATE moves the sequence: EBUSY, then the retry is in RAM, writable)
      const first = yield* Effect.exit(hmm.rangeFault({ notifier: rec.h, notifierSeq: yield* mmu.readBegin(rec.h), start: a, end: a + 64 * KiB, fault: true, write: true, devicePrivateOwner: pm.owner }))
      assert.isTrue(Exit.isFailure(first))
      assert.strictEqual((yield* pm.usage).allocations, 0)
      const rw = yield* hmm.rangeFault({ notifier: rec.h, notifierSeq: yield* mmu.readBegin(rec.h), start: a, end: a + 64 * KiB, fault: true, write: true, devicePrivateOwner: pm.owner })
      assert.isTrue(rw.every((p) => p.valid && p.page?._tag === "System" && p.write))
      yield* cpu.write(a, fill(8, 4 * KiB))
      assert.deepStrictEqual(yield* child.read(a, 4 * KiB), fill(7, 4 * KiB))
      assert.deepStrictEqual(yield* cpu.read(a, 8 * KiB), new Uint8Array([...fill(8, 4 * KiB), ...fill(7, 4 * KiB)]))
      assert.deepStrictEqual(yield* (yield* Machine).violations, [])
    }).pipe(Effect.provide(machineLayer())), T)

  it.live.skipIf(skip)(`§11.17 a fork child can migrate its own pages to the device (HMM anon_write_child, migrate variant) (${NEEDS})`, () =>
    Effect.gen(function*() {
      const cpu = yield* Cpu
      const a = yield* buffer(cpu, 7)
      const ctx = yield* cpu.fork
      const child = Context.get(ctx, Cpu)
      const cpm = Context.get(ctx, DevicePagemap)
      yield* cpm.populateMm(a, a + 64 * KiB)
      assert.strictEqual((yield* cpm.usage).allocations, 1)
      yield* cpm.writeDevice(0, fill(10, 4 * KiB))
      assert.deepStrictEqual(yield* child.read(a, 8 * KiB), new Uint8Array([...fill(10, 4 * KiB), ...fill(7, 4 * KiB)]))
      assert.deepStrictEqual(yield* cpu.read(a, 4 * KiB), fill(7, 4 * KiB))
    }).pipe(Effect.provide(machineLayer())), T)
})

describe("§11.17 native machine: no process outlives the machine", () => {
  it.live.skipIf(skip)(`§11.17 spawned helpers, fork children and a child's own fork child are killed and reaped when the layer's scope closes (${NEEDS})`, () =>
    Effect.gen(function*() {
      const scope = yield* Scope.make()
      const ctx = yield* Layer.buildWithScope(machineLayer(), scope)
      const pids = yield* Effect.gen(function*() {
        const first = Context.get(ctx, NativeMachine).pid
        const cpu = Context.get(ctx, Cpu)
        yield* cpu.mmap({ length: 64 * KiB })
        const spawned = yield* Context.get(ctx, Machine).spawn
        const forked = yield* cpu.fork
        const grandchild = yield* Context.get(forked, Cpu).fork
        const forkedOfSpawned = yield* Context.get(spawned, Cpu).fork
        return [first, pidOf(spawned), pidOf(forked), pidOf(grandchild), pidOf(forkedOfSpawned)]
      })
      assert.strictEqual(new Set(pids).size, 5)
      for (const p of pids) assert.isFalse(isGone(p), `pid ${p} runs`)
      yield* Scope.close(scope, Exit.void)
      // reaped, not zombies: the pid is gone altogether
      for (const p of pids) assert.isTrue(isGone(p), `pid ${p} is gone`)
    }), T)
})

describe("§11.17 fork and processes scenarios run natively", () => {
  it("§11.17 nativeSkipReason no longer skips fork or several processes", () =>
    Effect.gen(function*() {
      for (const name of ["once-malloc-fork-read", "processes-evict-malloc"]) {
        const b = (yield* builtins()).find((x) => x.name === name)!
        assert.isUndefined(nativeSkipReason((yield* loadFile(b.file)).scenario, () => 0))
      }
    }).pipe(Effect.runPromise))

  it.live.skipIf(skip)(`§11.17 IGT once-malloc-fork-read, once-malloc-fork-read-after, processes-evict-malloc and HMM anon_write_child(_shared) pass end to end on the native machine (${NEEDS})`, () =>
    Effect.map(failedNatively(["once-malloc-fork-read", "once-malloc-fork-read-after", "processes-evict-malloc", "hmm-anon-write-child", "hmm-anon-write-child-shared"]), (failed) => assert.deepStrictEqual(failed, [])), 60_000)
})
