/**
 * The synchronous fast paths of issue #16 (`src/domain/Now.ts`): the common GPU fault resolved in one
 * step through the services' `…Now` twins must leave exactly what the Effect path leaves.
 *
 * Differential: the same workload runs twice on fresh machines — without a schedule (the fast paths
 * run), and with a seeded schedule whose yield probability is 0 (every point is a real effect that
 * never yields, so every `…Now` answers `NOT_NOW` and the Effect path runs, in the same order). Both
 * must give the same op outcomes, bytes, ranges (ids, windows, flags, sequences, DMA addresses), bound
 * GPU pages and fault counters; a counting scheduler shows the fast run took far fewer Effect steps.
 *
 * Unit: each twin answers `NOT_NOW` where the Effect version would wait, pass a point or fail, and
 * changes nothing then (an injection stays pending, no violation is recorded).
 */
import { assert, describe, it } from "@effect/vitest"
import { Arbitrary, Effect, Fiber, Latch, Layer, Scheduler } from "effect"
import { PAGE_SIZE } from "../../src/domain/Address.ts"
import { NOT_NOW } from "../../src/domain/Now.ts"
import { SimState } from "../../src/layers/simulated/Simulated.ts"
import { Cpu } from "../../src/services/Cpu.ts"
import { DevicePagemap } from "../../src/services/DevicePagemap.ts"
import { Dma } from "../../src/services/Dma.ts"
import { Gpu } from "../../src/services/Gpu.ts"
import { GpuSvm } from "../../src/services/GpuSvm.ts"
import { Hmm } from "../../src/services/Hmm.ts"
import { Machine } from "../../src/services/Machine.ts"
import { Mm } from "../../src/services/Mm.ts"
import { MmuNotifier, type NotifierHandle } from "../../src/services/MmuNotifier.ts"
import { Driver } from "../../src/stacks/Driver.ts"
import { GpuSvmTest } from "../../src/testing/GpuSvmTest.ts"
import { runSeed } from "../support/concurrencyWorkload.ts"
import { arbitrary, runWorkload, type Workload } from "../../src/testing/Workload.ts"

const KiB = 1024
const MiB = 1024 * KiB

type Policy = "never" | "always"

const stack = (policy: Policy, slow: boolean) =>
  Layer.fresh(GpuSvmTest.layerWithState({
    machine: { vramBytes: 4 * MiB, ...(slow ? { schedule: { seed: 1, yieldProbability: 0 } } : {}) },
    config: { chunkSizes: [64 * KiB, 4096] },
    policy,
    driver: { checkPagesThreshold: 0 }
  }))

/** Counts Effect steps (the run loop asks `shouldYield` once per step). */
const counting = () => {
  const base = new Scheduler.MixedScheduler()
  const s = Object.create(base) as Scheduler.Scheduler & { ops: number }
  s.ops = 0
  s.shouldYield = (f) => {
    s.ops++
    return base.shouldYield(f)
  }
  return s
}

/** Runs `w` and reads back everything the two paths must agree on. */
const observe = (w: Workload) =>
  Effect.gen(function*() {
    const run = yield* runWorkload(w)
    // the collector worker is another fiber: when it ran is scheduling, not semantics — compare once it is idle
    yield* (yield* Driver).idle
    const svm = yield* GpuSvm
    const gpu = yield* Gpu
    const ranges = yield* svm.ranges()
    const bound: Array<boolean> = []
    for (const b of run.buffers) {
      for (let a = b.addr; a < b.addr + b.length; a += PAGE_SIZE) bound.push(yield* gpu.isBound(a, a + PAGE_SIZE))
    }
    const c = yield* (yield* Driver).counters
    const violations = yield* (yield* Machine).violations
    return { outcomes: run.outcomes, ranges, bound, faults: c.faults, retries: c.faultRetries, violations }
  })

const runOn = (w: Workload, policy: Policy, slow: boolean) =>
  Effect.gen(function*() {
    const sched = counting()
    const seen = yield* observe(w).pipe(Effect.provide(stack(policy, slow)), Effect.provideService(Scheduler.Scheduler, sched))
    return { seen, ops: sched.ops }
  })

describe("issue #16 fast paths: the same result as the Effect path (kernel-semantics §3, §4, §10.1)", () => {
  for (const policy of ["never", "always"] as const) {
    it.effect(`§10.1 random workloads, policy ${policy}: same outcomes, ranges, GPU PTEs and counters with and without the fast path`, () =>
      Effect.gen(function*() {
        const sample = yield* Arbitrary.sampleEffect(arbitrary, { count: 40, seed: policy === "never" ? 16 : 61 })
        let fastOps = 0
        let slowOps = 0
        let faults = 0
        for (const w of sample) {
          const fast = yield* runOn(w, policy, false)
          const slow = yield* runOn(w, policy, true)
          assert.deepStrictEqual(fast.seen, slow.seen, JSON.stringify(w))
          assert.deepStrictEqual(fast.seen.violations, [])
          fastOps += fast.ops
          slowOps += slow.ops
          faults += fast.seen.faults
        }
        assert.isAbove(faults, 100, "the sample faults enough to compare")
        // the fast path really ran: far fewer Effect steps for the same work
        // (with `always` most first faults migrate, which has no fast path: a smaller saving)
        assert.isBelow(fastOps, slowOps * (policy === "never" ? 0.8 : 0.95), `fast ${fastOps} vs slow ${slowOps} steps`)
      }), 120_000)
  }

  it.effect("§10.1 a first-touch storm takes a handful of Effect steps per fault without a schedule, ~100 with one", () =>
    Effect.gen(function*() {
      const storm = (sched: { readonly ops: number }) =>
        Effect.gen(function*() {
          const cpu = yield* Cpu
          const gpu = yield* Gpu
          const a = yield* cpu.mmap({ length: 4 * MiB, align: 2 * MiB })
          yield* gpu.access(a, 4, "read") // the notifier's registration: the Effect path
          const ops0 = sched.ops
          for (let off = 64 * KiB; off < 4 * MiB; off += 64 * KiB) yield* gpu.access(a + off, 4, "read")
          const ops = sched.ops - ops0
          assert.strictEqual((yield* (yield* Driver).counters).faults, 64)
          return ops / 63
        })
      const perFault = (slow: boolean) =>
        Effect.gen(function*() {
          const sched = counting()
          return yield* storm(sched).pipe(Effect.provide(stack("never", slow)), Effect.provideService(Scheduler.Scheduler, sched))
        })
      const fast = yield* perFault(false)
      const slow = yield* perFault(true)
      assert.isBelow(fast, 20)
      assert.isAbove(slow, 5 * fast)
    }))
})

const white = Effect.gen(function*() {
  return {
    st: yield* SimState,
    cpu: yield* Cpu,
    gpu: yield* Gpu,
    mm: yield* Mm,
    hmm: yield* Hmm,
    mmu: yield* MmuNotifier,
    dma: yield* Dma,
    svm: yield* GpuSvm
  }
})

describe("issue #16 …Now twins answer NOT_NOW where the Effect version would wait, yield or fail, and change nothing", () => {
  it.effect("§3 Mm.readNow: runs f when the mmap lock is free; NOT_NOW while a writer holds it and after exit", () =>
    Effect.gen(function*() {
      const { st, mm, cpu } = yield* white
      const a = yield* cpu.mmap({ length: 64 * KiB })
      assert.strictEqual(mm.readNow!((lookup) => lookup(a)?.start), a)
      const latch = yield* Latch.make()
      const holder = yield* Effect.forkChild(st.lock.withWrite(latch.await))
      yield* Effect.yieldNow
      let ran = false
      assert.strictEqual(mm.readNow!(() => (ran = true)), NOT_NOW)
      assert.isFalse(ran)
      yield* latch.open
      yield* Fiber.join(holder)
      assert.strictEqual(mm.readNow!(() => 1), 1)
      yield* cpu.exit
      assert.strictEqual(mm.readNow!(() => 1), NOT_NOW)
    }).pipe(Effect.provide(stack("never", false))))

  it.effect("§4 MmuNotifier.readBeginNow: NOT_NOW while an invalidation of the notifier is in flight, the sequence otherwise", () =>
    Effect.gen(function*() {
      const { st, mmu, cpu } = yield* white
      const a = yield* cpu.mmap({ length: 64 * KiB })
      const latch = yield* Latch.make()
      let self: NotifierHandle | undefined
      const h = yield* mmu.insert(a, 64 * KiB, (_r, seq) => Effect.andThen(mmu.setSeq(self!, seq), Effect.as(latch.await, true)))
      self = h
      const seq0 = mmu.readBeginNow!(h)
      assert.strictEqual(seq0, yield* mmu.readBegin(h))
      const unmap = yield* Effect.forkChild(cpu.munmap(a, 64 * KiB))
      yield* Effect.yieldNow
      yield* Effect.yieldNow
      assert.isAbove(st.notifiers.active.size, 0, "the invalidation is in flight")
      assert.strictEqual(mmu.readBeginNow!(h), NOT_NOW)
      yield* latch.open
      yield* Fiber.join(unmap)
      const seq1 = mmu.readBeginNow!(h)
      assert.notStrictEqual(seq1, seq0)
      assert.isTrue(mmu.readRetryNow!(h, seq0 as number))
      assert.isFalse(mmu.readRetryNow!(h, seq1 as number))
    }).pipe(Effect.provide(stack("never", false))))

  it.effect("§4 Dma.mapPageNow: NOT_NOW with an injected failure pending (left pending) and for a freed frame (no violation); maps otherwise", () =>
    Effect.gen(function*() {
      const { st, dma, cpu } = yield* white
      const a = yield* cpu.mmap({ length: 64 * KiB })
      yield* cpu.write(a, new Uint8Array([7]))
      const pfn = st.pt.get(Math.floor(a / PAGE_SIZE))!
      assert.strictEqual(pfn.kind, "system")
      const page = { _tag: "System" as const, pfn: (pfn as { pfn: number }).pfn }
      st.inject.dmaMapFail = 1
      assert.strictEqual(dma.mapPageNow!(page, 0, "bidirectional"), NOT_NOW)
      assert.strictEqual(st.inject.dmaMapFail, 1, "the injection is still pending")
      const e = yield* Effect.flip(dma.mapPage(page, 0, "bidirectional"))
      assert.strictEqual(e._tag, "BadAddress")
      assert.strictEqual(st.inject.dmaMapFail, 0)
      const live = yield* dma.liveMappings
      const m = dma.mapPageNow!(page, 0, "bidirectional")
      assert.notStrictEqual(m, NOT_NOW)
      assert.strictEqual(yield* dma.liveMappings, live + 1)
      dma.unmapPageNow!(m as Exclude<typeof m, typeof NOT_NOW>)
      assert.strictEqual(yield* dma.liveMappings, live)
      assert.strictEqual(dma.mapPageNow!({ _tag: "System", pfn: 2 ** 40 }, 0, "bidirectional"), NOT_NOW)
      assert.strictEqual(st.violations.length, 0)
    }).pipe(Effect.provide(stack("never", false))))

  it.effect("§4 Hmm.rangeFaultNow: NOT_NOW (nothing faulted in) for a COW break, an injected EBUSY (left pending), a hole; the walk otherwise", () =>
    Effect.gen(function*() {
      const { st, hmm, mmu, cpu } = yield* white
      const a = yield* cpu.mmap({ length: 64 * KiB })
      const h = yield* mmu.insert(a, 64 * KiB, () => Effect.succeed(true))
      const r = (start: number, end: number, write: boolean) => ({
        notifier: h,
        notifierSeq: mmu.readBeginNow!(h) as number,
        start,
        end,
        fault: true,
        write,
        devicePrivateOwner: "test-gpu"
      })
      // a read of a never-touched page maps the zero page; a write there must break COW: the Effect path
      yield* cpu.read(a, 4)
      assert.strictEqual(hmm.rangeFaultNow!(r(a, a + PAGE_SIZE, true)), NOT_NOW)
      st.inject.hmmBusy = 1
      assert.strictEqual(hmm.rangeFaultNow!(r(a + PAGE_SIZE, a + 2 * PAGE_SIZE, false)), NOT_NOW)
      assert.strictEqual(st.inject.hmmBusy, 1)
      st.inject.hmmBusy = 0
      assert.strictEqual(hmm.rangeFaultNow!(r(a + 60 * KiB, a + 68 * KiB, false)), NOT_NOW, "the window runs past the VMA")
      assert.isUndefined(st.pt.get(Math.floor((a + 60 * KiB) / PAGE_SIZE)), "nothing was faulted in")
      const pfns = hmm.rangeFaultNow!(r(a + 4 * PAGE_SIZE, a + 8 * PAGE_SIZE, true))
      assert.notStrictEqual(pfns, NOT_NOW)
      assert.deepStrictEqual((pfns as ReadonlyArray<{ valid: boolean; write: boolean }>).map((p) => p.valid && p.write), [true, true, true, true])
    }).pipe(Effect.provide(stack("never", false))))

  it.effect("§3 §4 GpuSvm: find_or_insert NOT_NOW before the notifier exists (nothing created) and get_pages NOT_NOW while the notifier lock has a writer", () =>
    Effect.gen(function*() {
      const { svm, cpu } = yield* white
      const a = yield* cpu.mmap({ length: 128 * KiB, align: 64 * KiB })
      assert.strictEqual(svm.rangeFindOrInsertNow!(a, 0, 2 ** 47), NOT_NOW)
      assert.deepStrictEqual(yield* svm.ranges(), [])
      assert.deepStrictEqual(yield* svm.notifiers, [])
      const first = yield* svm.rangeFindOrInsert(a, 0, 2 ** 47)
      const second = svm.rangeFindOrInsertNow!(a + 64 * KiB, 0, 2 ** 47)
      assert.notStrictEqual(second, NOT_NOW)
      assert.strictEqual(svm.rangeFindOrInsertNow!(a + 4096, 0, 2 ** 47), first, "an existing range is returned as is")
      const latch = yield* Latch.make()
      const writer = yield* Effect.forkChild(svm.withNotifierWriteLock(latch.await))
      yield* Effect.yieldNow
      assert.strictEqual(svm.rangeGetPagesNow!(first), NOT_NOW)
      assert.strictEqual(svm.withNotifierLockNow!(() => 1), NOT_NOW)
      assert.isFalse(svm.rangeNow!(first)!.flags.hasDmaMapping)
      yield* latch.open
      yield* Fiber.join(writer)
      assert.isUndefined(svm.rangeGetPagesNow!(first))
      assert.isTrue(svm.rangeNow!(first)!.flags.hasDmaMapping)
    }).pipe(Effect.provide(stack("never", false))))

  it.effect("§11.9 a CPU read of device pages migrates them back in the read's own step; a pending copy failure sends it to the Effect path (SIGBUS, pages stay)", () =>
    Effect.gen(function*() {
      const { st, cpu } = yield* white
      const pm = yield* DevicePagemap
      const a = yield* cpu.mmap({ length: 128 * KiB, align: 64 * KiB })
      const bytes = new Uint8Array(128 * KiB).map((_, i) => i % 251)
      yield* cpu.write(a, bytes)
      // no GPU SVM notifier on the buffer (a bound range would need its GPU mapping zapped: the Effect path)
      yield* pm.populateMm(a, a + 64 * KiB)
      yield* pm.populateMm(a + 64 * KiB, a + 128 * KiB)
      assert.strictEqual(st.devicePtes, 32)
      st.inject.copyFail = 1
      const e = yield* Effect.flip(cpu.read(a, 4))
      assert.strictEqual(e._tag, "BadAddress")
      assert.strictEqual(st.devicePtes, 32, "a failed copy leaves the pages in device memory")
      const sched = counting()
      const got = yield* cpu.read(a, 128 * KiB).pipe(Effect.provideService(Scheduler.Scheduler, sched))
      assert.deepStrictEqual(got, bytes)
      assert.strictEqual(st.devicePtes, 0)
      assert.isBelow(sched.ops, 6, "the read and both migrations back in one step")
    }).pipe(Effect.provide(stack("always", false))))

  it.effect("§11.7 a service wrapped by spreading has no …Now twin, so its wrapper sees every call (GpuSvmTest wrap)", () =>
    Effect.gen(function*() {
      const { gpu, mm, dma, hmm, mmu, svm } = yield* white
      for (const [name, svc, twin] of [["gpu", gpu, "bindNow"], ["mm", mm, "readNow"], ["dma", dma, "mapPageNow"], ["hmm", hmm, "rangeFaultNow"], ["mmu", mmu, "readBeginNow"], ["svm", svm, "rangeGetPagesNow"]] as const) {
        assert.isFunction((svc as unknown as Record<string, unknown>)[twin], `${name}.${twin} on the machine's own service`)
        assert.isUndefined(({ ...svc } as unknown as Record<string, unknown>)[twin], `${name}.${twin} not copied by a spread`)
      }
    }).pipe(Effect.provide(stack("never", false))))

  it.effect("§3 §4 with a seeded schedule every twin answers NOT_NOW (the schedule's points are kept)", () =>
    Effect.gen(function*() {
      const { svm, cpu, mm, dma, st } = yield* white
      const a = yield* cpu.mmap({ length: 64 * KiB, align: 64 * KiB })
      const r = yield* svm.rangeFindOrInsert(a, 0, 2 ** 47)
      assert.strictEqual(svm.rangeFindOrInsertNow!(a, 0, 2 ** 47), NOT_NOW)
      assert.strictEqual(svm.rangeGetPagesNow!(r), NOT_NOW)
      assert.strictEqual(mm.readNow!(() => 1), NOT_NOW)
      yield* cpu.write(a, new Uint8Array([1]))
      const pte = st.pt.get(Math.floor(a / PAGE_SIZE)) as { pfn: number }
      assert.strictEqual(dma.mapPageNow!({ _tag: "System", pfn: pte.pfn }, 0, "bidirectional"), NOT_NOW)
    }).pipe(Effect.provide(stack("never", true))))
})

/**
 * A scheduler that preempts the running fiber after a seeded random share of its Effect steps: without
 * a schedule or explorer (so every fast path is on), fibers interleave at arbitrary step boundaries, in
 * the middle of each other's Effect paths — while a fast path, one step, stays whole.
 */
const preempting = (seed: number, p: number) => {
  const base = new Scheduler.MixedScheduler()
  const s = Object.create(base) as Scheduler.Scheduler & { preemptions: number }
  let x = seed >>> 0
  s.preemptions = 0
  s.shouldYield = (f) => {
    x = (Math.imul(x, 1664525) + 1013904223) >>> 0
    if (x / 4294967296 < p) {
      s.preemptions++
      return true
    }
    return base.shouldYield(f)
  }
  return s
}

describe("issue #16 fast paths beside Effect paths of other fibers (kernel-semantics §6, design.md §8)", () => {
  it.live("§6 §8 the concurrency workloads stay coherent, safe and leak-free with every fast path on and fibers preempted at random steps", () =>
    Effect.gen(function*() {
      let preemptions = 0
      for (let seed = 1; seed <= 40; seed++) {
        // (above ~0.5 the preempted fibers starve the timer queue, with or without the fast paths: a
        // property of the preempting scheduler, seen on the code before them too)
        for (const p of [0.05, 0.3]) {
          const sched = preempting(seed * 7919, p)
          const problems = yield* runSeed(seed).pipe(Effect.provideService(Scheduler.Scheduler, sched))
          assert.deepStrictEqual(problems, [], `seed ${seed}, preemption probability ${p}`)
          preemptions += sched.preemptions
        }
      }
      assert.isAbove(preemptions, 1000, "the fibers really were preempted")
    }), 120_000)
})
