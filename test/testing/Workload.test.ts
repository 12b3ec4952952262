/**
 * `gpusvm/testing` workloads: random mmap/munmap/mprotect/madvise/access
 * programs (kernel-semantics §6–§7: the GPU mirrors the CPU's address space)
 * generated from their Schema, run by `runWorkload` against its memory model
 * on each migration policy; a broken GPU (a wrapper that drops writes) makes
 * the interpreter report the diverging op.
 */
import { assert, describe, it } from "@effect/vitest"
import { Arbitrary, Effect, Schema } from "effect"
import { DevicePagemap } from "../../src/services/DevicePagemap.ts"
import { Gpu, gpuAccess } from "../../src/services/Gpu.ts"
import {
  arbitrary,
  assertCoherent,
  assertNoLeaks,
  assertNoViolations,
  GpuSvmTest,
  runWorkload,
  Workload,
  type WorkloadOp
} from "../../src/testing/index.ts"

const KiB = 1024
const MiB = 1024 * KiB

describe("gpusvm/testing Workload", () => {
  it.effect("Workload is a Schema: generated workloads decode, and invalid ones are rejected", () =>
    Effect.gen(function*() {
      const sample = yield* Arbitrary.sampleEffect(arbitrary, { count: 50, seed: 1 })
      for (const w of sample) assert.isTrue(Schema.is(Workload)(w))
      assert.isTrue(sample.some((w) => w.ops.length > 5), "non-trivial programs are generated")
      const tags = new Set(sample.flatMap((w) => w.ops.map((o) => o._tag)))
      assert.deepStrictEqual([...tags].sort(), ["CpuRead", "CpuWrite", "GpuRead", "GpuWrite", "Madvise", "Mprotect", "Munmap", "Remap"])
      assert.isFalse(Schema.is(Workload)({ buffers: [], ops: [] }), "at least one buffer")
      assert.isFalse(Schema.is(Workload)({ buffers: [33], ops: [] }), "at most 32 pages a buffer")
    }))

  it.effect("§6/§11.3 a hand-written workload: GPU writes, CPU reads them; after mprotect read-only GPU accesses fault (writable mirror); madvise zeroes", () =>
    Effect.gen(function*() {
      const ops: ReadonlyArray<WorkloadOp> = [
        { _tag: "GpuWrite", buffer: 0, page: 0, pages: 4, value: 7 },
        { _tag: "CpuRead", buffer: 0, page: 0, pages: 4 },
        { _tag: "Mprotect", buffer: 0, page: 2, pages: 2, prot: "r" },
        { _tag: "GpuWrite", buffer: 0, page: 2, pages: 1, value: 9 },
        { _tag: "GpuRead", buffer: 0, page: 2, pages: 2 },
        { _tag: "CpuRead", buffer: 0, page: 2, pages: 2 },
        { _tag: "Madvise", buffer: 0, page: 0, pages: 1 },
        { _tag: "GpuRead", buffer: 0, page: 0, pages: 2 },
        { _tag: "Munmap", buffer: 0, page: 3, pages: 1 },
        { _tag: "GpuRead", buffer: 0, page: 3, pages: 1 },
        { _tag: "Mprotect", buffer: 0, page: 2, pages: 2, prot: "rw" },
        { _tag: "GpuRead", buffer: 0, page: 1, pages: 3 }
      ]
      const run = yield* runWorkload({ buffers: [4], ops })
      assert.deepStrictEqual(run.outcomes, ["ok", "ok", "ok", "failed", "failed", "ok", "ok", "ok", "ok", "failed", "skipped", "skipped"])
      // with the writable mirror the read-only page is not GPU-readable (§11.3)
      assert.deepStrictEqual(run.readable, [{ addr: run.buffers[0]!.addr, length: 2 * 4096 }])
      yield* assertCoherent(run.readable)
      yield* assertNoViolations
      yield* assertNoLeaks
    }).pipe(Effect.provide(GpuSvmTest.layer())))

  it.effect("§11.3 with readOnlyMirror the model lets GPU reads of read-only mappings succeed, and the driver agrees", () =>
    Effect.gen(function*() {
      const run = yield* runWorkload({
        buffers: [2],
        ops: [
          { _tag: "CpuWrite", buffer: 0, page: 0, pages: 2, value: 3 },
          { _tag: "Mprotect", buffer: 0, page: 0, pages: 2, prot: "r" },
          { _tag: "GpuRead", buffer: 0, page: 0, pages: 2 },
          { _tag: "GpuWrite", buffer: 0, page: 1, pages: 1, value: 4 }
        ]
      }, { readOnlyMirror: true })
      assert.deepStrictEqual(run.outcomes, ["ok", "ok", "ok", "failed"])
      assert.deepStrictEqual(run.readable, [run.buffers[0]!])
      yield* assertCoherent(run.readable)
      yield* assertNoViolations
    }).pipe(Effect.provide(GpuSvmTest.layer({ driver: { readOnlyMirror: true } }))))

  for (const policy of ["never", "xe", "always"] as const) {
    it.effect(`§6/§7/§11.3 random workloads agree with the memory model and stay coherent, leak-free (policy ${policy}, onSplitVma recreate)`, () =>
      Effect.gen(function*() {
        const tally = { ok: 0, failed: 0, skipped: 0, toVram: 0 }
        const result = yield* Arbitrary.checkEffect(
          arbitrary,
          (w) =>
            Effect.gen(function*() {
              const run = yield* runWorkload(w)
              for (const o of run.outcomes) tally[o]++
              tally.toVram += (yield* (yield* DevicePagemap).traffic).pagesToVram
              yield* assertCoherent(run.readable)
              yield* assertNoViolations
              yield* assertNoLeaks
              return true
            }).pipe(Effect.provide(GpuSvmTest.layer({ policy, machine: { vramBytes: 4 * MiB }, config: { chunkSizes: [64 * KiB, 16 * KiB, 4 * KiB] }, driver: { onSplitVma: "recreate" } }))),
          { runs: 100, size: 40, seed: 15 }
        )
        assert.strictEqual(result._tag, "Passed", Arbitrary.formatCheckFailure(result))
        // the workloads really exercise both outcomes, and device memory where the policy migrates
        assert.isAbove(tally.ok, 500)
        assert.isAbove(tally.failed, 50)
        if (policy === "never") assert.strictEqual(tally.toVram, 0)
        else assert.isAbove(tally.toVram, policy === "xe" ? 0 : 100, "xe migrates 64 KiB ranges only")
      }), 120_000)
  }

  it.effect("§11.3 item 4 the kernel default (onSplitVma retry) is caught: after an mprotect splits the VMA under a range, the GPU cannot read the page below it", () =>
    Effect.gen(function*() {
      // the shrunk counterexample the property found with the default driver options
      const run = yield* runWorkload({
        buffers: [4],
        ops: [
          { _tag: "GpuRead", buffer: 0, page: 0, pages: 1 },
          { _tag: "Mprotect", buffer: 0, page: 1, pages: 1, prot: "none" }
        ]
      })
      assert.deepStrictEqual(run.readable, [{ addr: run.buffers[0]!.addr, length: 4096 }, { addr: run.buffers[0]!.addr + 2 * 4096, length: 2 * 4096 }])
      const err = yield* Effect.flip(assertCoherent(run.readable))
      assert.strictEqual(err._tag, "IncoherentView")
      assert.strictEqual(err.addr, run.buffers[0]!.addr)
      assert.include(err.message, "range spans a VMA split by mprotect")
    }).pipe(Effect.provide(GpuSvmTest.layer({ config: { chunkSizes: [64 * KiB, 16 * KiB, 4 * KiB] } }))))

  it.effect("§6 runWorkload reports the diverging op when the GPU drops its writes (a broken GPU wrapper)", () =>
    Effect.gen(function*() {
      const err = yield* Effect.flip(runWorkload({
        buffers: [2],
        ops: [
          { _tag: "CpuWrite", buffer: 0, page: 0, pages: 2, value: 1 },
          { _tag: "GpuWrite", buffer: 0, page: 1, pages: 1, value: 50 },
          { _tag: "CpuRead", buffer: 0, page: 0, pages: 2 }
        ]
      }))
      assert.strictEqual(err._tag, "WorkloadDiverged")
      assert.strictEqual(err.step, 2)
      assert.include(err.message, "the model says 50")
    }).pipe(Effect.provide(GpuSvmTest.layer({
      wrap: {
        gpu: (g: Gpu["Service"]): Gpu["Service"] => ({ ...g, access: gpuAccess((addr, length, mode, bytes) => (mode === "write" ? Effect.void : g.access(addr, length, mode, bytes))) })
      }
    }))))
})
