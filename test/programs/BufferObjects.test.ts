/**
 * Buffer objects and GPU VM binds beside the CPU-address mirror
 * (kernel-semantics §11.17, issue #17 part 2; IGT xe_exec_system_allocator
 * `bo-unmap`, `busy`, `evict-malloc-mix-bo`; Xe `xe_svm_unmap_address_range`,
 * `xe_svm_has_mapping`).
 */
import { assert, describe, it } from "@effect/vitest"
import { Effect, Exit } from "effect"
import { simulated } from "../../src/cli/machines.ts"
import { decodeScenario, type Scenario } from "../../src/domain/Scenario.ts"
import * as ScenarioRunner from "../../src/programs/ScenarioRunner.ts"

const scenario = (json: unknown): Scenario => {
  const exit = decodeScenario(json)
  if (Exit.isFailure(exit)) throw new Error(String(exit.cause))
  return exit.value
}

const runOk = (s: Scenario) =>
  Effect.gen(function*() {
    const r = yield* ScenarioRunner.run(s, simulated)
    assert.isTrue(r.ok, JSON.stringify({ f: r.failures, v: r.violations }))
    return r
  })

describe("§11.17 buffer objects and binds", () => {
  it.effect("§11.17 xe_svm_unmap_address_range: binding a BO over live SVM ranges evicts and removes them; GPU accesses then reach the BO, not the CPU's memory", () =>
    Effect.gen(function*() {
      const r = yield* runOk(scenario({
        name: "bo-over-svm",
        machine: { vramBytes: "8M" },
        policy: { migrate: "always" },
        steps: [
          { op: "mmap", as: "a", length: "2M", align: "2M" },
          { op: "cpu-write", buf: "a", pattern: 5 },
          { op: "gpu-read", buf: "a", expect: 5 },
          { op: "expect-metrics", deviceBytesLive: { eq: "2M" } },
          { op: "bo-create", as: "b", length: "2M" },
          { op: "bo-bind", bo: "b", buf: "a" },
          { op: "expect-ranges", ranges: [] },
          { op: "expect-metrics", bytesToRam: { eq: "2M" }, rangesRemoved: { eq: 1 } },
          { op: "gpu-read", buf: "a", expect: "zero" },
          { op: "gpu-write", buf: "a", pattern: 9 },
          { op: "gpu-read", buf: "a", expect: 9 },
          { op: "cpu-read", buf: "a", expect: 5 },
          { op: "expect-metrics", faults: { eq: 1 }, rangesCreated: { eq: 1 } }
        ]
      }))
      assert.strictEqual(r.metrics.deviceBytesLive, 2 * 1024 * 1024, "the BO is live at the end of the steps (freed at teardown: no leak)")
    }))

  it.effect("§11.17 IGT bo-unmap: the mirror bound over a BO-bound window replaces the BO mapping; SVM takes over again", () =>
    Effect.gen(function*() {
      yield* runOk(scenario({
        name: "mirror-over-bo",
        steps: [
          { op: "mmap", as: "a", length: "64K" },
          { op: "cpu-write", buf: "a", pattern: 5 },
          { op: "bo-create", as: "b", length: "64K" },
          { op: "bo-bind", bo: "b", buf: "a" },
          { op: "gpu-write", buf: "a", pattern: 6 },
          { op: "vm-bind", buf: "a" },
          { op: "gpu-read", buf: "a", expect: 5 },
          { op: "gpu-write", buf: "a", pattern: 7 },
          { op: "cpu-read", buf: "a", expect: 7 },
          { op: "expect-error", step: { op: "bo-unbind", bo: "b" }, tag: "InvalidArgument" },
          { op: "bo-bind", bo: "b", buf: "a" },
          { op: "gpu-read", buf: "a", expect: 6 },
          { op: "bo-unbind", bo: "b" },
          { op: "gpu-read", buf: "a", expect: 7 }
        ]
      }))
    }))

  it.effect("§11.17 IGT busy / xe_svm_has_mapping: unbinding the mirror is EBUSY while an SVM range is GPU-mapped; after it no GPU VMA is there", () =>
    Effect.gen(function*() {
      yield* runOk(scenario({
        name: "busy",
        policy: { migrate: "never" },
        steps: [
          { op: "mmap", as: "a", length: "64K" },
          { op: "gpu-write", buf: "a", pattern: 1 },
          { op: "expect-error", step: { op: "vm-unbind", buf: "a" }, tag: "Busy" },
          { op: "madvise-dontneed", buf: "a" },
          { op: "vm-unbind", buf: "a" },
          { op: "expect-ranges", ranges: [] },
          { op: "expect-error", step: { op: "gpu-read", buf: "a", expect: 0 }, tag: "GpuFaultError" },
          { op: "vm-bind", buf: "a" },
          { op: "gpu-read", buf: "a", expect: "zero" }
        ]
      }))
    }))

  it.effect("§11.17 IGT evict-malloc-mix-bo: BOs and SVM share VRAM; a BO evicts SVM device memory, never the other way round", () =>
    Effect.gen(function*() {
      yield* runOk(scenario({
        name: "mix",
        machine: { vramBytes: "4M" },
        policy: { migrate: "always" },
        steps: [
          { op: "mmap", as: "a", length: "4M", align: "2M" },
          { op: "cpu-write", buf: "a", pattern: 1 },
          { op: "gpu-read", buf: "a", expect: 1 },
          { op: "expect-metrics", deviceBytesLive: { eq: "4M" } },
          { op: "mmap", as: "h", length: "2M", align: "2M", prot: "none" },
          { op: "bo-create", as: "b", length: "2M" },
          { op: "expect-metrics", evictions: { eq: 1 }, deviceBytesLive: { eq: "4M" } },
          { op: "bo-bind", bo: "b", buf: "h" },
          { op: "gpu-write", buf: "h", pattern: 3 },
          { op: "expect-error", step: { op: "bo-create", as: "c", length: "4M" }, tag: "OutOfMemory" },
          { op: "gpu-read", buf: "a", expect: 1 },
          { op: "gpu-read", buf: "h", expect: 3 },
          { op: "bo-destroy", bo: "b" },
          { op: "expect-metrics", deviceBytesLive: { max: "4M" } }
        ]
      }))
    }))

  it.effect("§11.17 IGT new-bo-map / xe_bo_map_fixed: CPU stores through a BO mapping land in the BO's device memory, where the GPU's BO bind reads them, and back", () =>
    Effect.gen(function*() {
      yield* runOk(scenario({
        name: "bo-map",
        machine: { vramBytes: "4M" },
        steps: [
          { op: "mmap", as: "a", length: "64K", prot: "none" },
          { op: "bo-create", as: "b", length: "64K" },
          { op: "bo-mmap", bo: "b", buf: "a" },
          { op: "cpu-read", buf: "a", expect: "zero" },
          { op: "cpu-write", buf: "a", pattern: 5 },
          { op: "bo-bind", bo: "b", buf: "a" },
          { op: "gpu-read", buf: "a", expect: 5 },
          { op: "gpu-write", buf: "a", offset: "4K", length: "4K", pattern: 8 },
          { op: "cpu-read", buf: "a", offset: "4K", length: "4K", expect: 8 },
          { op: "cpu-read", buf: "a", offset: "8K", length: "8K", expect: 5 },
          { op: "expect-metrics", faults: { eq: 0 }, rangesCreated: { eq: 0 }, bytesToVram: { eq: 0 } }
        ]
      }))
    }))

  it.effect("§11.17 a BO mapping is VM_PFNMAP: the mirror does not mirror it (hmm_range_fault error → GPU fault error), MADV_DONTNEED is EINVAL, it cannot grow (EFAULT), mlock succeeds and changes nothing", () =>
    Effect.gen(function*() {
      yield* runOk(scenario({
        name: "bo-map-pfnmap",
        machine: { vramBytes: "4M" },
        steps: [
          { op: "mmap", as: "a", length: "64K", prot: "none" },
          { op: "bo-create", as: "b", length: "64K" },
          { op: "bo-mmap", bo: "b", buf: "a" },
          { op: "cpu-write", buf: "a", pattern: 3 },
          { op: "expect-error", step: { op: "gpu-read", buf: "a", length: "4K", expect: 3 }, tag: "GpuFaultError" },
          { op: "expect-error", step: { op: "madvise-dontneed", buf: "a" }, tag: "InvalidArgument" },
          { op: "expect-error", step: { op: "mremap", buf: "a", newLength: "128K" }, tag: "InvalidArgument" },
          { op: "mlock", buf: "a" },
          { op: "cpu-read", buf: "a", expect: 3 }
        ]
      }))
    }))

  it.effect("§11.17 the CPU mapping holds the BO: its device memory outlives gem_close (bo-destroy) until the munmap; then it is freed", () =>
    Effect.gen(function*() {
      const r = yield* runOk(scenario({
        name: "bo-map-ref",
        machine: { vramBytes: "4M" },
        steps: [
          { op: "mmap", as: "a", length: "2M", prot: "none" },
          { op: "bo-create", as: "b", length: "2M" },
          { op: "bo-mmap", bo: "b", buf: "a" },
          { op: "cpu-write", buf: "a", pattern: 4 },
          { op: "bo-destroy", bo: "b" },
          { op: "expect-metrics", deviceBytesLive: { eq: "2M" } },
          { op: "cpu-read", buf: "a", expect: 4 },
          { op: "munmap", buf: "a" },
          { op: "expect-metrics", deviceBytesLive: { eq: 0 } }
        ]
      }))
      assert.strictEqual(r.metrics.deviceBytesLive, 0)
    }))

  it.effect("§11.17 fork: the child inherits the shared BO mapping and reads the BO's memory; its exit leaves the parent's mapping", () =>
    Effect.gen(function*() {
      yield* runOk(scenario({
        name: "bo-map-fork",
        machine: { vramBytes: "4M" },
        processes: [
          {
            name: "p",
            steps: [
              { op: "mmap", as: "a", length: "64K", prot: "none" },
              { op: "bo-create", as: "b", length: "64K" },
              { op: "bo-mmap", bo: "b", buf: "a" },
              { op: "cpu-write", buf: "a", pattern: 6 },
              { op: "fork", as: "c" },
              { op: "wait", process: "c" },
              { op: "cpu-read", buf: "a", expect: 7 }
            ]
          },
          { name: "c", steps: [{ op: "cpu-read", buf: "a", expect: 6 }, { op: "cpu-write", buf: "a", pattern: 7 }] }
        ]
      }))
    }))

  it.effect("§11.17 bo-mmap of a BO larger than the buffer's window is InvalidArgument", () =>
    Effect.gen(function*() {
      yield* runOk(scenario({
        name: "bo-map-bad",
        machine: { vramBytes: "4M" },
        steps: [
          { op: "mmap", as: "a", length: "64K", prot: "none" },
          { op: "bo-create", as: "b", length: "128K" },
          { op: "expect-error", step: { op: "bo-mmap", bo: "b", buf: "a" }, tag: "InvalidArgument" },
          { op: "expect-error", step: { op: "bo-mmap", bo: "b", buf: "a", offset: "4K" }, tag: "InvalidArgument" }
        ]
      }))
    }))

  it("§11.17 a bo that no bo-create of its process names is rejected before the run", () => {
    const exit = decodeScenario({ name: "x", steps: [{ op: "mmap", as: "a", length: "4K" }, { op: "bo-bind", bo: "nope", buf: "a" }] })
    assert.isTrue(Exit.isFailure(exit))
    if (Exit.isFailure(exit)) assert.include(String(exit.cause), 'unknown buffer object "nope"')
  })
})
