/**
 * Device-exclusive access (issue #14 part 5, kernel-semantics §11.17): the HMM
 * selftests `exclusive` and `exclusive_mprotect` as built-in scenarios, and the
 * driver's `systemAtomics: "exclusive"` path, run on the simulated machine
 * through the runner as the CLI does.
 */
import { assert, describe, it } from "@effect/vitest"
import { Effect } from "effect"
import { readFileSync } from "node:fs"
import { join } from "node:path"
import { simulated } from "../../src/cli/machines.ts"
import { decodeScenarioEffect } from "../../src/domain/Scenario.ts"
import type { ScenarioResult } from "../../src/domain/ScenarioResult.ts"
import * as ScenarioRunner from "../../src/programs/ScenarioRunner.ts"
import { SCENARIOS } from "../cli/support.ts"
import type { MachineState } from "../../src/layers/simulated/MachineState.ts"
import { vpnOf } from "../../src/layers/simulated/PageTable.ts"
import { SimState } from "../../src/layers/simulated/Simulated.ts"
import { Driver } from "../../src/programs/Driver.ts"
import { Cpu } from "../../src/services/Cpu.ts"
import { Gpu } from "../../src/services/Gpu.ts"
import { Machine } from "../../src/services/Machine.ts"
import { GpuSvmTest } from "../../src/testing/index.ts"
import { Explore } from "../../src/explore/Explore.ts"
import { asActor } from "../../src/services/Interleaving.ts"
import { GpuSvm } from "../../src/services/GpuSvm.ts"

const show = (r: ScenarioResult) =>
  [...r.failures.map((f) => `failure ${f.step}: ${f.detail}`), ...r.violations.map((v) => `violation ${v.invariant}: ${v.detail}`)].join("\n")

const builtin = (name: string, seed = 1) =>
  Effect.gen(function*() {
    const scenario = yield* decodeScenarioEffect(JSON.parse(readFileSync(join(SCENARIOS, `${name}.json`), "utf8")))
    return yield* ScenarioRunner.run(scenario, simulated, { seed })
  })

describe("§11.17 device-exclusive access: HMM selftests as built-in scenarios", () => {
  it.effect("§11.17 hmm-exclusive (selftest exclusive): EXCLUSIVE owned by the device per page, CPU read/write revoke (EXCLUSIVE, no owner) and keep the bytes, the GPU atomic re-faults", () =>
    Effect.gen(function*() {
      const r = yield* builtin("hmm-exclusive")
      assert.isTrue(r.ok, show(r))
      assert.isUndefined(r.skipped)
    }))

  it.effect("§11.17 hmm-exclusive-mprotect (selftest exclusive_mprotect): mprotect keeps the entries, a device write is PermissionDenied, the CPU read revokes", () =>
    Effect.gen(function*() {
      const r = yield* builtin("hmm-exclusive-mprotect")
      assert.isTrue(r.ok, show(r))
    }))
})

const KiB = 1024
const P = 4096
const u32 = (b: Uint8Array) => new DataView(b.buffer, b.byteOffset, 4).getUint32(0, true)

const kindAt = (st: MachineState, addr: number) => st.pt.get(vpnOf(addr))?.kind

const stack = (systemAtomics?: "native" | "exclusive") =>
  GpuSvmTest.layerWithState({ policy: "never", ...(systemAtomics === undefined ? {} : { driver: { systemAtomics } }) })

describe("§11.17 driver: GPU atomics on system memory through device-exclusive access (systemAtomics)", () => {
  it.effect("§11.17 systemAtomics exclusive: an atomic through a read-bound PTE (no atomic bit) faults and takes just that page (EXCLUSIVE owned by the driver, skipped by its callback); a CPU read revokes it, zaps the GPU PTEs, and the next atomic re-faults", () =>
    Effect.gen(function*() {
      const cpu = yield* Cpu
      const gpu = yield* Gpu
      const st = yield* SimState
      const driver = yield* Driver
      const a = yield* cpu.mmap({ length: 64 * KiB })
      yield* cpu.write(a, new Uint8Array(64 * KiB).fill(1))
      yield* gpu.access(a, 16, "read")
      const f0 = (yield* gpu.stats).faults
      assert.strictEqual(u32(yield* gpu.access(a + P, 4, "atomic")), 0x01010101)
      assert.strictEqual((yield* gpu.stats).faults, f0 + 1) // no atomic bit on the read-bound PTE
      assert.strictEqual(kindAt(st, a + P), "exclusive")
      assert.strictEqual(kindAt(st, a), "system")
      assert.strictEqual(st.exclusivePtes, 1)
      // the driver's own EXCLUSIVE event did not unbind: the atomic again, and a read elsewhere, do not fault
      assert.strictEqual(u32(yield* gpu.access(a + P, 4, "atomic")), 0x01010102)
      yield* gpu.access(a, 16, "read")
      assert.strictEqual((yield* gpu.stats).faults, f0 + 1)
      const counters0 = yield* driver.counters
      // CPU read of the page: revoked (EXCLUSIVE, no owner), the bytes include both increments
      const got = yield* cpu.read(a + P, 4)
      assert.strictEqual(u32(got), 0x01010103)
      assert.strictEqual(kindAt(st, a + P), "system")
      assert.isFalse(yield* gpu.isBound(a, a + 64 * KiB))
      assert.isAbove((yield* driver.counters).invalidations.exclusive ?? 0, counters0.invalidations.exclusive ?? 0)
      // the device lost its atomic access: the next atomic faults and takes the page again
      assert.strictEqual(u32(yield* gpu.access(a + P, 4, "atomic")), 0x01010103)
      assert.strictEqual((yield* gpu.stats).faults, f0 + 2)
      assert.strictEqual(kindAt(st, a + P), "exclusive")
      // a CPU write revokes too and the GPU sees it
      yield* cpu.write(a + P, new Uint8Array([7, 0, 0, 0]))
      assert.strictEqual(u32(yield* gpu.access(a + P, 4, "atomic")), 7)
      assert.strictEqual(u32(yield* cpu.read(a + P, 4)), 8)
      assert.deepStrictEqual(yield* (yield* Machine).violations, [])
    }).pipe(Effect.provide(stack("exclusive"))))

  it.effect("§11.17 default systemAtomics native (Xe): an atomic through a read-bound system PTE does not fault and takes nothing exclusively", () =>
    Effect.gen(function*() {
      const cpu = yield* Cpu
      const gpu = yield* Gpu
      const st = yield* SimState
      const a = yield* cpu.mmap({ length: 64 * KiB })
      yield* gpu.access(a, 16, "read")
      const f0 = (yield* gpu.stats).faults
      yield* gpu.access(a + P, 4, "atomic")
      assert.strictEqual((yield* gpu.stats).faults, f0)
      assert.strictEqual(st.exclusivePtes, 0)
    }).pipe(Effect.provide(stack())))

  it.effect("§11.17 the explicit request (Driver.makeExclusive, HMM_DMIRROR_EXCLUSIVE) takes every page of a window across ranges, without counting GPU faults", () =>
    Effect.gen(function*() {
      const cpu = yield* Cpu
      const gpu = yield* Gpu
      const st = yield* SimState
      const driver = yield* Driver
      const a = yield* cpu.mmap({ length: 256 * KiB })
      yield* driver.makeExclusive(a + 32 * KiB, a + 160 * KiB)
      assert.strictEqual(st.exclusivePtes, 32)
      assert.strictEqual(kindAt(st, a + 32 * KiB - P), "system") // faulted in by get_pages, not taken
      assert.strictEqual(kindAt(st, a + 160 * KiB - P), "exclusive")
      assert.strictEqual((yield* gpu.stats).faults, 0)
      for (let off = 32 * KiB; off < 160 * KiB; off += 16 * KiB) yield* gpu.access(a + off, 4, "atomic")
      assert.strictEqual((yield* gpu.stats).faults, 0)
    }).pipe(Effect.provide(stack())))
})

/** EXCLUSIVE events the driver saw over all runs (the runs must really take and revoke pages). */
let exclusiveEvents = 0
const WORKLOADS = 4
const SCHEDULES = 50

/** One run: a GPU actor increments a counter per page with atomics while a CPU actor reads and writes other bytes of the same pages. */
const race = (seed: number) => {
  const problems: Array<string> = []
  return Effect.gen(function*() {
    const cpu = yield* Cpu
    const gpu = yield* Gpu
    const svm = yield* GpuSvm
    const machine = yield* Machine
    const pages = 4
    const a = yield* cpu.mmap({ length: pages * P })
    const model = new Uint8Array(pages * P).fill(3)
    for (let p = 0; p < pages; p++) model.fill(0, p * P, p * P + 4) // the counters start at 0
    yield* cpu.write(a, model)
    const counts = new Array<number>(pages).fill(0)
    let r = seed >>> 0
    const rand = (n: number) => {
      r = (Math.imul(r, 1664525) + 1013904223) >>> 0
      return r % n
    }
    const gpuActor = Effect.gen(function*() {
      for (let i = 0; i < 6; i++) {
        const p = rand(pages)
        const got = yield* Effect.result(gpu.access(a + p * P, 4, "atomic"))
        if (got._tag === "Failure") problems.push(`seed ${seed} atomic on page ${p} failed: ${got.failure.message}`)
        else if (u32(got.success) !== counts[p]) problems.push(`seed ${seed} atomic on page ${p} saw ${u32(got.success)}, expected ${counts[p]}`)
        else counts[p]!++
      }
    })
    const cpuActor = Effect.gen(function*() {
      for (let i = 0; i < 6; i++) {
        const p = rand(pages)
        const off = p * P + 64 + rand(64) * 8
        if (rand(2) === 0) {
          const v = 10 + rand(200)
          model.fill(v, off, off + 8)
          yield* cpu.write(a + off, new Uint8Array(8).fill(v))
        } else {
          const got = yield* cpu.read(a + off, 8)
          if (!got.every((b, k) => b === model[off + k])) problems.push(`seed ${seed} cpu read at ${off} saw ${[...got]}`)
        }
      }
    })
    yield* Effect.all([asActor(gpuActor, "gpu"), asActor(cpuActor, "cpu")], { concurrency: "unbounded", discard: true })
    exclusiveEvents += (yield* (yield* Driver).counters).invalidations.exclusive ?? 0
    const all = yield* cpu.read(a, pages * P)
    for (let p = 0; p < pages; p++) {
      if (u32(all.subarray(p * P)) !== counts[p]) problems.push(`seed ${seed} counter ${p} is ${u32(all.subarray(p * P))}, expected ${counts[p]}`)
      if (!all.subarray(p * P + 4, (p + 1) * P).every((b, k) => b === model[p * P + 4 + k])) problems.push(`seed ${seed} page ${p} bytes differ`)
    }
    for (const v of yield* machine.violations) problems.push(`seed ${seed} violation ${v.invariant}: ${v.detail}`)
    yield* cpu.exit
    yield* svm.fini
    const stats = yield* machine.stats
    if (stats.dmaMappingsLive !== 0 || stats.notifiersLive !== 0) problems.push(`seed ${seed}: leak after exit: ${JSON.stringify(stats)}`)
    return problems
  }).pipe(Effect.provide(stack("exclusive")))
}

describe("§11.17 device-exclusive access under explored interleavings", () => {
  it.live(`§11.17 CPU touches vs GPU atomics (systemAtomics exclusive, selftest exclusive under concurrency): coherent counters and bytes, no violation, no leak over ${WORKLOADS} × ${SCHEDULES} PCT schedules`, () =>
    Effect.gen(function*() {
      let schedules = 0
      for (let w = 1; w <= WORKLOADS; w++) {
        const program = Effect.flatMap(Effect.suspend(() => race(w)), (p) => (p.length === 0 ? Effect.void : Effect.fail(p.slice(0, 4).join("; "))))
        const res = yield* Explore.check(program, { strategy: "pct", depth: 3, budget: SCHEDULES, seed: w, shrink: false })
        assert.isUndefined(res.violation, `workload ${w}: ${res.violation?.kind}: ${res.violation?.detail} (schedule ${res.violation?.schedule})`)
        schedules += res.schedules
      }
      assert.isAtLeast(schedules, 200)
      assert.isAbove(exclusiveEvents, 400)
    }), 60_000)
})
