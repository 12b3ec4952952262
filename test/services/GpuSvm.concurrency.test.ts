/**
 * The safety property of kernel-semantics §6 under explored interleavings: fibers
 * running the driver's commit protocol (find_or_insert → get_pages → under the
 * notifier lock, commit a GPU binding only if `rangePagesValid`) race CPU fibers
 * doing munmap / mprotect / madvise(DONTNEED) on the same memory.
 *
 * Checked in every schedule:
 * - a commit never happens from stale pages: every page a committed binding uses
 *   is, through the IOMMU, the frame the CPU page table maps at that address at
 *   the moment of the commit (read from the simulated machine's state);
 * - once an invalidation of `[a, b)` has returned, no binding overlapping
 *   `[a, b)` committed before its callback ran survives;
 * - the machine's IOMMU model saw no frame freed while DMA-mapped and no bad
 *   unmap; after `fini` no DMA mapping is left.
 *
 * The interleavings are the explorer's (issue #12): 10 seeded workloads × 20
 * PCT schedules (depth 3) each.
 */
import { assert, describe, it } from "@effect/vitest"
import { Effect, Fiber, Option, Semaphore } from "effect"
import { PROT_READ, PROT_RW } from "../../src/domain/Prot.ts"
import { Cpu } from "../../src/services/Cpu.ts"
import { GpuSvm } from "../../src/services/GpuSvm.ts"
import { Machine } from "../../src/services/Machine.ts"
import { SimState } from "../../src/layers/simulated/Simulated.ts"
import { Explore } from "../../src/explore/Explore.ts"
import { asActor } from "../../src/services/Interleaving.ts"
import { GPUVA_END, GPUVA_START, KiB, makeDriver, MiB, svmLayer } from "../support/harness.ts"

const WORKLOADS = 10
const SCHEDULES_PER_WORKLOAD = 20
const REGION = 4 * MiB

const runSchedule = (seed: number) => {
  const driver = makeDriver()
  const failures: Array<string> = []
  return Effect.gen(function*() {
    const svm = yield* GpuSvm
    const cpu = yield* Cpu
    const sim = yield* SimState
    const machine = yield* Machine
    const svmLock = yield* Semaphore.make(1)
    const base = yield* cpu.mmap({ length: REGION, align: 2 * MiB })
    yield* cpu.write(base, new Uint8Array(REGION).fill(seed & 0xff))
    let rng = seed
    const next = () => {
      rng = (Math.imul(rng, 1103515245) + 12345) >>> 0
      return rng / 4294967296
    }
    const gpu = (id: number) =>
      Effect.gen(function*() {
        for (let i = 0; i < 12; i++) {
          const addr = base + Math.floor(next() * (REGION / 4096)) * 4096
          const found = yield* Effect.result(svmLock.withPermits(1)(svm.rangeFindOrInsert(addr, GPUVA_START, GPUVA_END, { readOnly: id % 2 === 1 })))
          if (found._tag === "Failure") continue
          const r = found.success
          const got = yield* Effect.result(svm.rangeGetPages(r, { readOnly: id % 2 === 1 }))
          if (got._tag === "Failure") continue
          yield* svm.withNotifierLock(Effect.gen(function*() {
            if (!(yield* svm.rangePagesValid(r))) return
            const live = Option.getOrThrow(yield* svm.range(r))
            // Every page the binding would use must be the page the CPU maps now:
            // IOVA → frame through the IOMMU, VA → frame through the page table.
            let page = 0
            for (const a of live.dmaAddr ?? []) {
              for (let k = 0; k < 2 ** a.order; k++, page++) {
                const t = sim.translateIova(a.addr + k * 4096)
                const pte = sim.pt.get((live.start + page * 4096) / 4096)
                if (t === undefined || pte === undefined || pte.kind !== "system" || pte.pfn !== t.pfn) {
                  failures.push(`seed ${seed}: stale commit of range [${live.start}, ${live.end}) at page ${page}: IOVA frame ${t?.pfn} vs CPU frame ${pte?.kind === "system" ? pte.pfn : "none"}`)
                }
              }
            }
            driver.bindings.set(live.id, { range: live, tick: driver.tick++ })
          }))
        }
      })
    const cpuFiber = Effect.gen(function*() {
      for (let i = 0; i < 10; i++) {
        const off = Math.floor(next() * (REGION / (64 * KiB))) * 64 * KiB
        const len = 64 * KiB * (1 + Math.floor(next() * 4))
        const a = base + off
        const b = Math.min(a + len, base + REGION)
        const op = Math.floor(next() * 5)
        const before = driver.invalidations.length
        if (op === 0) yield* cpu.madviseDontNeed(a, b - a)
        else if (op === 1) yield* cpu.mprotect(a, b - a, next() < 0.5 ? PROT_READ : PROT_RW).pipe(Effect.ignore)
        else if (op === 2) yield* cpu.munmap(a, b - a)
        else if (op === 3) yield* cpu.write(a, new Uint8Array(Math.min(3 * 4096, b - a)).fill(i + 1)).pipe(Effect.ignore)
        else yield* cpu.read(a, Math.min(8 * 4096, b - a)).pipe(Effect.ignore)
        const mine = driver.invalidations.slice(before).filter((x) => x.range.start < b && a < x.range.end)
        const tick = mine.length === 0 ? -1 : Math.min(...mine.map((x) => x.tick))
        for (const bnd of driver.bindings.values()) {
          if (bnd.range.start < b && a < bnd.range.end && bnd.tick < tick) {
            failures.push(`seed ${seed}: binding of [${bnd.range.start}, ${bnd.range.end}) from tick ${bnd.tick} survived the invalidation at tick ${tick}`)
          }
          if (op === 2 && bnd.range.start < b && a < bnd.range.end) {
            failures.push(`seed ${seed}: binding of [${bnd.range.start}, ${bnd.range.end}) exists after munmap of [${a}, ${b})`)
          }
        }
      }
    })
    const fibers = yield* Effect.forEach([asActor(gpu(0), "gpu0"), asActor(gpu(1), "gpu1"), asActor(cpuFiber, "cpu")], (e) => Effect.forkChild(e))
    yield* Effect.forEach(fibers, Fiber.join, { discard: true })
    const violations = yield* machine.violations
    for (const v of violations) failures.push(`seed ${seed}: machine violation ${v.invariant}: ${v.detail}`)
    yield* svm.fini
    if ((yield* machine.stats).dmaMappingsLive !== 0) failures.push(`seed ${seed}: DMA mappings left after fini`)
    return { failures, commits: driver.tick }
  }).pipe(Effect.provide(svmLayer(driver, { machine: {} })))
}

describe("GpuSvm §6 safety under explored interleavings", () => {
  it.effect(`§6 no stale binding or DMA mapping survives an invalidation (${WORKLOADS} workloads × ${SCHEDULES_PER_WORKLOAD} PCT schedules)`, () =>
    Effect.gen(function*() {
      let commits = 0
      let schedules = 0
      for (let seed = 1; seed <= WORKLOADS; seed++) {
        // Effect.suspend: every schedule gets a fresh driver record (runSchedule builds it)
        const program = Effect.flatMap(Effect.suspend(() => runSchedule(seed)), ({ failures, commits: c }) => {
          commits += c
          return failures.length === 0 ? Effect.void : Effect.fail(failures.slice(0, 4).join("; "))
        })
        const r = yield* Explore.check(program, { strategy: "pct", depth: 3, budget: SCHEDULES_PER_WORKLOAD, seed, shrink: false })
        assert.isUndefined(r.violation, `workload ${seed}: ${r.violation?.kind}: ${r.violation?.detail} (schedule ${r.violation?.schedule})`)
        schedules += r.schedules
      }
      assert.strictEqual(schedules, WORKLOADS * SCHEDULES_PER_WORKLOAD)
      // the schedules really exercised the protocol
      assert.isAbove(commits, WORKLOADS * SCHEDULES_PER_WORKLOAD * 4)
    }), 120_000)
})