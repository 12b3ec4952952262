/**
 * Observability (design.md §7): the driver's counters are `effect/Metric`
 * series in one registry per driver instance, and the cold boundaries (GPU
 * fault, GC pass, invalidation callback, migration) are trace spans.
 */
import { assert, describe, it } from "@effect/vitest"
import { Effect, Metric, Tracer } from "effect"
import { Driver } from "../../src/programs/Driver.ts"
import * as Metrics from "../../src/programs/Metrics.ts"
import { Cpu } from "../../src/services/Cpu.ts"
import { Gpu } from "../../src/services/Gpu.ts"
import { GpuSvmTest } from "../../src/testing/index.ts"

const KiB = 1024
const MiB = 1024 * KiB
const pattern = (p: number, n: number) => Uint8Array.from({ length: n }, (_, i) => (p + i) % 256)

/** GPU reads of `n` separate 64 KiB buffers: `n` faults. */
const faults = (n: number) =>
  Effect.gen(function*() {
    const cpu = yield* Cpu
    const gpu = yield* Gpu
    for (let i = 0; i < n; i++) {
      const buf = yield* cpu.mmap({ length: 64 * KiB, align: 64 * KiB })
      yield* gpu.access(buf, 4096, "read")
    }
    return yield* (yield* Driver).counters
  })

/**
 * A workload through migration, injected failures, partial and full munmaps
 * and the collector. Its counters were recorded from the hand-kept counters
 * of main (667e3b5) before they moved into the registry.
 */
const workload = Effect.gen(function*() {
  const cpu = yield* Cpu
  const gpu = yield* Gpu
  const driver = yield* Driver
  const buf = yield* cpu.mmap({ length: 2 * MiB, align: 2 * MiB })
  yield* cpu.write(buf, pattern(1, 2 * MiB))
  yield* gpu.access(buf, 2 * MiB, "read")
  yield* cpu.munmap(buf + MiB, MiB)
  yield* driver.idle
  yield* gpu.access(buf, 64 * KiB, "write", pattern(2, 64 * KiB))
  const small = yield* cpu.mmap({ length: 256 * KiB })
  yield* gpu.access(small, 256 * KiB, "read")
  yield* cpu.read(small, 4096)
  yield* cpu.munmap(small, 256 * KiB)
  yield* cpu.munmap(buf + 8 * KiB, 4 * KiB)
  yield* driver.idle
  yield* driver.collectGarbage
  return yield* driver.counters
})

const workloadLayer = (metricRegistry?: Metric.MetricRegistry) =>
  GpuSvmTest.layer({
    policy: "always",
    machine: { vramBytes: 64 * MiB, devicePrivateOwner: "test-gpu", inject: { vramAllocFail: 2, hmmBusy: 1, dmaMapFail: 1 } },
    ...(metricRegistry === undefined ? {} : { driver: { metricRegistry } })
  })

describe("§7 driver metrics: one effect Metric registry per driver", () => {
  it.effect("§7 metrics per run: two drivers in one process see only their own faults", () =>
    Effect.gen(function*() {
      const a = yield* faults(3).pipe(Effect.provide(GpuSvmTest.layer()))
      const b = yield* faults(1).pipe(Effect.provide(GpuSvmTest.layer()))
      // both at once, interleaved
      const [c, d] = yield* Effect.all([faults(2).pipe(Effect.provide(GpuSvmTest.layer())), faults(5).pipe(Effect.provide(GpuSvmTest.layer()))], {
        concurrency: 2
      })
      assert.deepStrictEqual([a.faults, b.faults, c.faults, d.faults], [3, 1, 2, 5])
      assert.deepStrictEqual([a.rangesCreated, b.rangesCreated, c.rangesCreated, d.rangesCreated], [3, 1, 2, 5])
      // nothing leaked into effect's process-wide default registry
      const global = yield* Metric.snapshot
      assert.isFalse(global.some((s) => s.id.startsWith("gpusvm_")), "a gpusvm series in the default MetricRegistry")
    }))

  it.effect("§7 DriverCounters read from the registry equal the old hand-kept counters on a known workload", () =>
    Effect.gen(function*() {
      const c = yield* workload.pipe(Effect.provide(workloadLayer()))
      // recorded from main's hand-kept counters (bytes were never counted there: 0, 0)
      assert.deepStrictEqual({ ...c, bytesToVram: 0, bytesToRam: 0 }, {
        faults: 66,
        faultRetries: { EAGAIN: 0, EBUSY: 0, EOPNOTSUPP: 0, EFAULT: 3, EPERM: 0 },
        rangesCreated: 66,
        rangesRemoved: 66,
        // clear: 1 since kernel-semantics §11.17 — the partial munmap of the workload's THP splits it first (CLEAR over 2 MiB)
        invalidations: { unmap: 3, clear: 1, migrate: 65 },
        bytesToVram: 0,
        bytesToRam: 0,
        evictions: 0,
        gcRuns: 3,
        migrations: 64,
        migrationFailures: 2,
        madviseInvalidations: 0
      })
      // bytes to VRAM: the windows of the 64 successful driver migrations
      assert.strictEqual(c.bytesToVram, 64 * 4 * KiB)
    }))

  it.effect("§7 DriverOptions.metricRegistry: the driver counts into the registry given, every series of §7 listed", () =>
    Effect.gen(function*() {
      const registry: Metric.MetricRegistry = new Map()
      const c = yield* workload.pipe(Effect.provide(workloadLayer(registry)))
      const snap = Metric.snapshotUnsafe(Metrics.make(registry).context)
      const value = (id: string, attrs: Record<string, string> = {}) => {
        const s = snap.find((x) => x.id === id && Object.entries(attrs).every(([k, v]) => x.attributes?.[k] === v))
        assert.isDefined(s, id)
        return (s!.state as Metric.CounterState<number>).count
      }
      assert.strictEqual(value("gpusvm_faults_total"), c.faults)
      assert.strictEqual(value("gpusvm_fault_retries_total", { reason: "EFAULT" }), 3)
      assert.strictEqual(value("gpusvm_invalidations_total", { event: "migrate" }), 65)
      assert.strictEqual(value("gpusvm_bytes_migrated_total", { direction: "to_vram" }), c.bytesToVram)
      assert.strictEqual(value("gpusvm_gc_runs_total"), 3)
      assert.strictEqual(value("gpusvm_migration_failures_total"), 2)
      assert.isAbove(value("gpusvm_tlb_flushes_total"), 0)
      for (const id of ["gpusvm_ranges_created_total", "gpusvm_ranges_removed_total", "gpusvm_evictions_total", "gpusvm_migrations_total"]) value(id)
    }))
})

/** A tracer that records every span it is asked for. */
const recording = () => {
  const spans: Array<Tracer.Span> = []
  const tracer = Tracer.make({
    span: (options) => {
      const s = new Tracer.NativeSpan(options)
      spans.push(s)
      return s
    }
  })
  return { spans, tracer }
}

describe("§7 driver spans at cold boundaries", () => {
  it.effect("§7 spans: a GPU fault, its migration, a munmap's invalidation and the GC pass each open a named span", () => {
    const { spans, tracer } = recording()
    return Effect.gen(function*() {
      const cpu = yield* Cpu
      const gpu = yield* Gpu
      const driver = yield* Driver
      const buf = yield* cpu.mmap({ length: 64 * KiB, align: 64 * KiB })
      yield* gpu.access(buf, 4096, "write", pattern(3, 4096))
      yield* cpu.munmap(buf, 64 * KiB)
      yield* driver.idle
      yield* driver.collectGarbage
      const names = new Set(spans.map((s) => s.name))
      for (const n of ["gpusvm.fault", "gpusvm.migrate", "gpusvm.invalidate", "gpusvm.gc"]) assert.isTrue(names.has(n), `no ${n} span in ${[...names].join(", ")}`)
      const fault = spans.find((s) => s.name === "gpusvm.fault")!
      assert.strictEqual(fault.attributes.get("gpusvm.addr"), `0x${buf.toString(16)}`)
      assert.strictEqual(fault.attributes.get("gpusvm.write"), true)
      assert.strictEqual(fault.attributes.get("gpusvm.atomic"), false)
      assert.strictEqual(fault.attributes.get("gpusvm.retries"), 0)
      assert.strictEqual(fault.status._tag, "Ended")
      const unmap = spans.find((s) => s.name === "gpusvm.invalidate" && s.attributes.get("gpusvm.event") === "unmap")
      assert.isDefined(unmap)
      assert.strictEqual(spans.find((s) => s.name === "gpusvm.migrate")!.attributes.get("gpusvm.direction"), "to_vram")
    }).pipe(
      Effect.provide(GpuSvmTest.layer({ policy: "always", machine: { vramBytes: 16 * MiB, devicePrivateOwner: "test-gpu" } })),
      Effect.withTracer(tracer)
    )
  })

  it.effect("§7 spans: a fault retried after an injected DMA failure carries gpusvm.retries = 1", () => {
    const { spans, tracer } = recording()
    return Effect.gen(function*() {
      const cpu = yield* Cpu
      const gpu = yield* Gpu
      const buf = yield* cpu.mmap({ length: 64 * KiB, align: 64 * KiB })
      yield* gpu.access(buf, 4096, "read")
      const fault = spans.find((s) => s.name === "gpusvm.fault")
      assert.isDefined(fault)
      assert.strictEqual(fault!.attributes.get("gpusvm.retries"), 1)
    }).pipe(Effect.provide(GpuSvmTest.layer({ machine: { inject: { dmaMapFail: 1 } } })), Effect.withTracer(tracer))
  })
})
