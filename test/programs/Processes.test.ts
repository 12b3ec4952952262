/**
 * Several processes, fork and several GPU VMs per process in scenario runs
 * (kernel-semantics §11.17, issue #14 parts 1–3; IGT xe_exec_system_allocator
 * `fork-read`, `processes-evict-*`, `threads-many-*` (one VM per thread); HMM
 * selftests `anon_write_child`, `anon_write_child_shared`, `hmm_cow_in_device`).
 */
import { assert, describe, it } from "@effect/vitest"
import { Effect, Exit } from "effect"
import { simulated } from "../../src/cli/machines.ts"
import { decodeScenario, type Scenario, stepPath } from "../../src/domain/Scenario.ts"
import * as ScenarioRunner from "../../src/programs/ScenarioRunner.ts"

const scenario = (json: unknown): Scenario => {
  const exit = decodeScenario(json)
  if (Exit.isFailure(exit)) throw new Error(String(exit.cause))
  return exit.value
}

const rejects = (json: unknown, path: string, fragment: string) => {
  const exit = decodeScenario(json)
  assert.isTrue(Exit.isFailure(exit), "expected the file to be rejected")
  if (Exit.isSuccess(exit)) return
  const e = exit.cause.reasons.find((r) => r._tag === "Fail")
  assert.isDefined(e)
  const err = (e as unknown as { error: { path: string; reason: string; issues: ReadonlyArray<{ path: string; reason: string }> } }).error
  const hit = err.issues.find((i) => i.path === path)
  assert.isDefined(hit, `no issue at ${path}: ${JSON.stringify(err.issues)}`)
  assert.include(hit!.reason, fragment)
}

/** A parent writing with the GPU while its fork child writes with the CPU (each must keep its own copy). */
const forkVsGpuWrite = scenario({
  name: "fork-vs-gpu-write",
  policy: { migrate: "never" },
  processes: [
    {
      name: "parent",
      steps: [
        { op: "mmap", as: "a", length: "64K" },
        { op: "cpu-write", buf: "a", pattern: 1 },
        { op: "gpu-read", buf: "a", expect: 1 },
        { op: "fork", as: "child" },
        { op: "gpu-write", buf: "a", length: "32K", pattern: 2 },
        { op: "cpu-read", buf: "a", length: "32K", expect: 2 },
        { op: "gpu-read", buf: "a", offset: "32K", expect: 1 },
        { op: "wait", process: "child" },
        { op: "gpu-read", buf: "a", length: "32K", expect: 2 },
        { op: "cpu-read", buf: "a", offset: "32K", expect: 1 }
      ]
    },
    {
      name: "child",
      steps: [
        { op: "cpu-write", buf: "a", offset: "16K", length: "32K", pattern: 3 },
        { op: "cpu-read", buf: "a", length: "16K", expect: 1 },
        { op: "cpu-read", buf: "a", offset: "16K", length: "32K", expect: 3 },
        { op: "gpu-read", buf: "a", offset: "48K", expect: 1 }
      ]
    }
  ]
})

describe("§11.17 the processes form of a scenario", () => {
  it("§11.17 decodes processes (steps or threads, vms) into normal-form threads that name their process", () => {
    const s = scenario({
      name: "p",
      processes: [
        { name: "a", vms: ["x", "y"], threads: [{ vm: "y", steps: [{ op: "fork", as: "c" }] }, { steps: [] }] },
        { name: "c", steps: [{ op: "mmap", as: "m", length: "4K" }] }
      ]
    })
    assert.deepStrictEqual(s.processes, [{ name: "a", vms: ["x", "y"] }, { name: "c" }])
    assert.deepStrictEqual(s.threads.map((t) => [t.process, t.vm]), [["a", "y"], ["a", undefined], ["c", undefined]])
    assert.strictEqual(stepPath(s, 1, 0), "processes[0].threads[1].steps[0]")
    assert.strictEqual(stepPath(s, 2, 0), "processes[1].steps[0]")
  })

  it("§11.17 rejects: two forms at once, unknown or self fork targets, a fork of the first process, a child forked twice, waits for itself or unknown processes, unknown VMs, duplicate VM names", () => {
    rejects({ name: "x", steps: [], processes: [{ name: "a", steps: [] }] }, "processes", "not \"steps\" and \"processes\"")
    rejects({ name: "x", processes: [{ name: "a", steps: [{ op: "fork", as: "b" }] }] }, "processes[0].steps[0].as", "unknown process \"b\"")
    rejects({ name: "x", processes: [{ name: "a", steps: [{ op: "fork", as: "a" }] }] }, "processes[0].steps[0].as", "cannot be the child")
    rejects(
      { name: "x", processes: [{ name: "a", steps: [] }, { name: "b", steps: [{ op: "fork", as: "a" }] }] },
      "processes[1].steps[0].as",
      "cannot be the child"
    )
    rejects(
      { name: "x", processes: [{ name: "a", steps: [{ op: "fork", as: "b" }, { op: "fork", as: "b" }] }, { name: "b", steps: [] }] },
      "processes[0].steps[1].as",
      "already the child"
    )
    rejects({ name: "x", steps: [{ op: "wait", process: "p0" }] }, "steps[0].process", "cannot wait for itself")
    rejects({ name: "x", steps: [{ op: "wait", process: "q" }] }, "steps[0].process", "unknown process \"q\"")
    rejects({ name: "x", steps: [{ op: "fork", as: "p0" }] }, "steps[0].as", "cannot be the child")
    rejects(
      { name: "x", vms: ["v0", "v1"], steps: [{ op: "mmap", as: "a", length: "4K" }, { op: "gpu-read", buf: "a", expect: 0, vm: "v2" }] },
      "steps[1].vm",
      "unknown VM \"v2\""
    )
    rejects({ name: "x", threads: [{ vm: "w", steps: [] }] }, "threads[0].vm", "unknown VM \"w\"")
    rejects({ name: "x", vms: ["v", "v"], steps: [] }, "vms", "listed twice")
    rejects({ name: "x", processes: [{ name: "a", steps: [] }, { name: "a", steps: [] }] }, "processes[1].name", "listed twice")
  })

  it("§11.17 a fork child sees its parent's buffer names; two processes may each create the same name", () => {
    scenario({
      name: "ok",
      processes: [
        { name: "a", steps: [{ op: "mmap", as: "m", length: "4K" }, { op: "fork", as: "c" }] },
        { name: "b", steps: [{ op: "mmap", as: "m", length: "8K" }, { op: "cpu-read", buf: "m", offset: "4K", expect: "zero" }] },
        { name: "c", steps: [{ op: "cpu-read", buf: "m", expect: "zero" }] }
      ]
    })
    rejects(
      { name: "x", processes: [{ name: "a", steps: [{ op: "mmap", as: "m", length: "4K" }] }, { name: "b", steps: [{ op: "cpu-read", buf: "m", expect: 0 }] }] },
      "processes[1].steps[0].buf",
      "unknown buffer"
    )
  })
})

describe("§11.17 running several processes and VMs", () => {
  it.effect("§11.17 IGT fork-read: a fork child reads the GPU's store through COW; the parent's GPU store after fork re-faults and breaks the COW", () =>
    Effect.gen(function*() {
      const r = yield* ScenarioRunner.run(forkVsGpuWrite, simulated)
      assert.isTrue(r.ok, JSON.stringify({ f: r.failures, v: r.violations }))
      assert.isAtLeast(r.metrics.invalidations["protection-page"] ?? 0, 1)
      assert.isAtLeast(r.metrics.invalidations.clear ?? 0, 1, "a COW break raises CLEAR")
    }))

  it.effect("§11.17 fork vs GPU write: coherence, IOMMU and no-leak invariants hold over 500 seeded schedules", () =>
    Effect.gen(function*() {
      const bad: Array<string> = []
      for (let seed = 0; seed < 500; seed++) {
        const r = yield* ScenarioRunner.run(forkVsGpuWrite, simulated, { seed })
        if (!r.ok) bad.push(`seed ${seed}: ${JSON.stringify({ f: r.failures, v: r.violations })}`)
      }
      assert.deepStrictEqual(bad.slice(0, 3), [])
    }), 120_000)

  it.effect("§11.17 a process's exit tears down only its own ranges; VRAM eviction crosses processes (IGT processes-evict-malloc)", () =>
    Effect.gen(function*() {
      const s = scenario({
        name: "exit-own",
        machine: { vramBytes: "4M" },
        policy: { migrate: "always" },
        processes: [
          {
            name: "p0",
            steps: [
              { op: "mmap", as: "a", length: "2M", align: "2M" },
              { op: "cpu-write", buf: "a", pattern: 1 },
              { op: "gpu-write", buf: "a", pattern: 2 },
              { op: "barrier", name: "p0-in-vram" },
              { op: "wait", process: "p1" },
              { op: "expect-ranges", ranges: [["0x100000000", "0x100200000"]] },
              { op: "expect-metrics", evictions: { min: 1 } },
              { op: "gpu-read", buf: "a", expect: 2 },
              { op: "cpu-read", buf: "a", expect: 2 }
            ]
          },
          {
            name: "p1",
            steps: [
              { op: "barrier", name: "p0-in-vram" },
              { op: "mmap", as: "a", length: "4M", align: "2M" },
              { op: "cpu-write", buf: "a", pattern: 7 },
              { op: "gpu-read", buf: "a", expect: 7 }
            ]
          }
        ]
      })
      const r = yield* ScenarioRunner.run(s, simulated)
      assert.isTrue(r.ok, JSON.stringify({ f: r.failures, v: r.violations }))
      assert.strictEqual(r.metrics.rangesCreated, 3, "one 2 MiB range in p0, two in p1")
    }))

  it.effect("§11.17 several VMs on one mm: each VM faults and binds on its own; an invalidation reaches every VM's notifiers", () =>
    Effect.gen(function*() {
      const s = scenario({
        name: "two-vms",
        policy: { migrate: "never" },
        vms: ["v0", "v1"],
        steps: [
          { op: "mmap", as: "a", length: "64K" },
          { op: "cpu-write", buf: "a", pattern: 1 },
          { op: "gpu-read", buf: "a", expect: 1 },
          { op: "expect-metrics", faults: { eq: 1 } },
          { op: "expect-metrics", vm: "v1", faults: { eq: 0 }, notifiersCreated: { eq: 0 } },
          { op: "gpu-read", buf: "a", expect: 1, vm: "v1" },
          { op: "expect-metrics", vm: "v1", faults: { eq: 1 } },
          { op: "expect-ranges", vm: "v1", ranges: [["0x100000000", "0x100010000"]] },
          // a CLEAR (madvise DONTNEED) reaches both VMs' notifiers: both re-fault
          { op: "madvise-dontneed", buf: "a" },
          { op: "expect-metrics", invalidations: { clear: { eq: 1 } } },
          { op: "gpu-read", buf: "a", expect: "zero", vm: "v1" },
          { op: "gpu-read", buf: "a", expect: "zero" },
          { op: "expect-metrics", faults: { eq: 2 } },
          { op: "expect-metrics", vm: "v1", faults: { eq: 2 } }
        ]
      })
      const r = yield* ScenarioRunner.run(s, simulated)
      assert.isTrue(r.ok, JSON.stringify({ f: r.failures, v: r.violations }))
      assert.strictEqual(r.metrics.faults, 4, "the result sums every VM's faults")
    }))

  it.effect("§11.17 a wait that can never end (a cycle of waits) is a deadlock, found at once", () =>
    Effect.gen(function*() {
      const s = scenario({
        name: "wait-cycle",
        processes: [
          { name: "a", steps: [{ op: "wait", process: "b" }] },
          { name: "b", steps: [{ op: "wait", process: "a" }] }
        ]
      })
      const r = yield* ScenarioRunner.run(s, simulated, { timeoutMs: 20_000 })
      assert.isFalse(r.ok)
      assert.isDefined(r.violations.find((v) => v.invariant === "deadlock"), JSON.stringify(r.violations))
    }))

  it.effect("§11.17 a fork child that waits for its parent, which waits for it, deadlocks; a child with no threads just exits", () =>
    Effect.gen(function*() {
      const lone = scenario({ name: "lone", steps: [{ op: "mmap", as: "a", length: "4K" }, { op: "fork", as: "c" }, { op: "wait", process: "c" }] })
      const ok = yield* ScenarioRunner.run(lone, simulated)
      assert.isTrue(ok.ok, JSON.stringify({ f: ok.failures, v: ok.violations }))
      const cyc = scenario({
        name: "cyc",
        processes: [
          { name: "p", steps: [{ op: "fork", as: "c" }, { op: "wait", process: "c" }] },
          { name: "c", steps: [{ op: "wait", process: "p" }] }
        ]
      })
      const r = yield* ScenarioRunner.run(cyc, simulated, { timeoutMs: 20_000 })
      assert.isDefined(r.violations.find((v) => v.invariant === "deadlock"), JSON.stringify(r.violations))
    }))
})
