/**
 * The driver programs against kernel-semantics §11 (second pass against Xe):
 * the collector worker (§11.2), the mirror's read-only flag (§11.3), a VMA
 * split under a range (§11.4), the migration budget (§11.6), the check-pages
 * threshold (§11.8), EACCES for devmem-only without migrate_devmem (§11.10)
 * and the invalidation callback's early return / flush only where PTEs exist
 * (§11.12). Each test fails on the first-wave driver.
 */
import { assert, describe, it } from "@effect/vitest"
import { Effect, Exit, Fiber, Layer } from "effect"
import { BadAddress } from "../../src/domain/Errors.ts"
import { PROT_READ } from "../../src/domain/Prot.ts"
import { Driver } from "../../src/programs/Driver.ts"
import { GC_ACTOR } from "../../src/programs/DriverState.ts"
import { SPLIT_VMA_LIVELOCK } from "../../src/programs/FaultHandler.ts"
import { Cpu } from "../../src/services/Cpu.ts"
import { DevicePagemaps } from "../../src/services/DevicePagemap.ts"
import { Gpu } from "../../src/services/Gpu.ts"
import { GpuSvm } from "../../src/services/GpuSvm.ts"
import { Machine } from "../../src/services/Machine.ts"
import type { DeviceMapper } from "../../src/services/Pagemaps.ts"
import { GpuSvmTest } from "../../src/testing/index.ts"

const KiB = 1024
const MiB = 1024 * KiB
const pattern = (p: number, n: number) => Uint8Array.from({ length: n }, (_, i) => (p + i) % 256)
const vram = { vramBytes: 64 * MiB, devicePrivateOwner: "test-gpu" }

const noViolations = Effect.gen(function*() {
  assert.deepStrictEqual(yield* (yield* Machine).violations, [])
})

/** A GPU whose `invalidate` calls (zap + TLB flush) are counted. */
const countingGpu = () => {
  const calls: Array<readonly [number, number]> = []
  const wrap = (g: Gpu["Service"]): Gpu["Service"] => ({
    ...g,
    invalidate: (start, end) => Effect.andThen(Effect.sync(() => calls.push([start, end])), g.invalidate(start, end))
  })
  return { calls, wrap }
}

describe("§11.2 garbage-collector worker", () => {
  it.effect("§11.2 a munmapped bound range goes away without a later GPU fault (the worker collects it)", () =>
    Effect.gen(function*() {
      const cpu = yield* Cpu
      const gpu = yield* Gpu
      const svm = yield* GpuSvm
      const driver = yield* Driver
      const buf = yield* cpu.mmap({ length: 64 * KiB, align: 64 * KiB })
      yield* cpu.write(buf, pattern(1, 64 * KiB))
      assert.deepStrictEqual(yield* gpu.access(buf, 64 * KiB, "read"), pattern(1, 64 * KiB))
      assert.strictEqual((yield* svm.ranges()).length, 1)
      const faults = (yield* gpu.stats).faults
      yield* cpu.munmap(buf, 64 * KiB)
      // Give the worker its turn; nothing here collects or faults.
      for (let i = 0; i < 20; i++) yield* Effect.yieldNow
      assert.deepStrictEqual(yield* svm.ranges(), [])
      assert.deepStrictEqual(yield* svm.notifiers, [])
      assert.strictEqual((yield* gpu.stats).faults, faults, "no GPU fault ran the collector")
      const c = yield* driver.counters
      assert.strictEqual(c.gcRuns, 1)
      assert.strictEqual(c.rangesRemoved, 1)
      assert.strictEqual((yield* (yield* Machine).stats).dmaMappingsLive, 0)
      yield* noViolations
    }).pipe(Effect.provide(GpuSvmTest.layer())))

  it.effect("§11.2 Driver.idle waits for the worker: a partially munmapped VRAM range is evicted and removed without a GPU fault", () =>
    Effect.gen(function*() {
      const cpu = yield* Cpu
      const gpu = yield* Gpu
      const svm = yield* GpuSvm
      const driver = yield* Driver
      const buf = yield* cpu.mmap({ length: 2 * MiB, align: 2 * MiB })
      yield* gpu.access(buf, 2 * MiB, "write", pattern(2, 2 * MiB))
      assert.isTrue((yield* svm.ranges())[0]!.flags.hasDevmemPages)
      yield* cpu.munmap(buf + MiB, MiB)
      yield* driver.idle
      assert.deepStrictEqual(yield* svm.ranges(), [])
      const c = yield* driver.counters
      assert.strictEqual(c.gcRuns, 1)
      assert.strictEqual(c.rangesRemoved, 1)
      assert.strictEqual(c.faults, 1)
      // the head keeps its bytes
      assert.deepStrictEqual(yield* cpu.read(buf, MiB), pattern(2, MiB))
      yield* noViolations
    }).pipe(Effect.provide(GpuSvmTest.layer({ policy: "xe", machine: vram }))))

  it.effect("§11.1 after exit and one collector pass: no range, no notifier, no DMA mapping, no device bytes (no fini)", () =>
    Effect.gen(function*() {
      const cpu = yield* Cpu
      const gpu = yield* Gpu
      const svm = yield* GpuSvm
      const driver = yield* Driver
      const machine = yield* Machine
      const a = yield* cpu.mmap({ length: 2 * MiB, align: 2 * MiB })
      const b = yield* cpu.mmap({ length: 64 * 1024 })
      yield* gpu.access(a, 2 * MiB, "write", pattern(3, 2 * MiB)) // migrates to VRAM (xe policy)
      yield* gpu.access(b, 4096, "read")
      assert.isAbove((yield* svm.ranges()).length, 1)
      yield* cpu.exit
      yield* driver.idle
      yield* driver.collectGarbage
      assert.deepStrictEqual(yield* svm.ranges(), [])
      assert.deepStrictEqual(yield* svm.notifiers, [])
      const stats = yield* machine.stats
      assert.strictEqual(stats.dmaMappingsLive, 0)
      assert.strictEqual(stats.notifiersLive, 0)
      assert.isAbove(stats.invalidations.release ?? 0, 0)
      assert.isAbove(stats.invalidations.unmap ?? 0, 0)
      let used = 0
      for (const p of (yield* DevicePagemaps).all) used += (yield* p.usage).usedBytes
      assert.strictEqual(used, 0)
      assert.isAbove((yield* driver.counters).gcRuns, 0)
      yield* noViolations
    }).pipe(Effect.provide(GpuSvmTest.layer({ policy: "xe", machine: vram }))))

  it.effect("§11.2 the worker takes the driver SVM lock: it waits for a fault in progress, then collects", () => {
    // One-shot hook in gpu.isBound, which the fault handler calls (holding the
    // driver SVM lock) when it unbinds a range before migrating it.
    const hook: { fire: Effect.Effect<void> | undefined } = { fire: undefined }
    const wrap = (g: Gpu["Service"]): Gpu["Service"] => ({
      ...g,
      isBound: (start, end) =>
        Effect.suspend(() => {
          const f = hook.fire
          hook.fire = undefined
          return Effect.andThen(f ?? Effect.void, g.isBound(start, end))
        })
    })
    return Effect.gen(function*() {
      const cpu = yield* Cpu
      const gpu = yield* Gpu
      const svm = yield* GpuSvm
      const a = yield* cpu.mmap({ length: 2 * MiB, align: 2 * MiB })
      const b = yield* cpu.mmap({ length: 64 * KiB, align: 64 * KiB })
      yield* gpu.access(b, 16, "read")
      assert.strictEqual((yield* svm.ranges(b, b + 64 * KiB)).length, 1)
      let duringFault = -1
      hook.fire = Effect.gen(function*() {
        const unmapper = yield* Effect.forkDetach(cpu.munmap(b, 64 * KiB))
        yield* Fiber.join(unmapper)
        for (let i = 0; i < 20; i++) yield* Effect.yieldNow
        duringFault = (yield* svm.ranges(b, b + 64 * KiB)).length
      }).pipe(Effect.orDie)
      yield* gpu.access(a, 16, "write", pattern(1, 16))
      assert.strictEqual(duringFault, 1, "the worker must not collect while the fault handler holds the lock")
      for (let i = 0; i < 20; i++) yield* Effect.yieldNow
      assert.deepStrictEqual(yield* svm.ranges(b, b + 64 * KiB), [], "collected once the lock is free, without another fault")
      yield* noViolations
    }).pipe(Effect.provide(GpuSvmTest.layer({ policy: "xe", machine: vram, wrap: { gpu: wrap } })))
  })

  it.effect("§11.2 the worker is the GC actor, an ordinary fiber interrupted when the driver's scope closes", () =>
    Effect.gen(function*() {
      assert.strictEqual(GC_ACTOR, "gc-worker")
      const worker = yield* Effect.scoped(Effect.gen(function*() {
        const driver = yield* Driver
        const cpu = yield* Cpu
        const gpu = yield* Gpu
        const buf = yield* cpu.mmap({ length: 64 * KiB })
        yield* gpu.access(buf, 16, "read")
        yield* cpu.munmap(buf, 64 * KiB)
        yield* driver.idle
        assert.isUndefined(driver.gcWorker.pollUnsafe(), "the worker runs while the driver lives")
        return driver.gcWorker
      }).pipe(Effect.provide(Layer.fresh(GpuSvmTest.layer()))))
      const exit = yield* Fiber.await(worker)
      assert.isTrue(Exit.isFailure(exit) && Exit.hasInterrupts(exit), `worker exit: ${String(exit)}`)
    }))
})

describe("§11.3 read-only: the GPU mirror decides, not the CPU VMA", () => {
  const readOnlyBuffer = Effect.gen(function*() {
    const cpu = yield* Cpu
    const gpu = yield* Gpu
    const buf = yield* cpu.mmap({ length: 64 * KiB, align: 64 * KiB })
    yield* gpu.access(buf, 64 * KiB, "write", pattern(5, 64 * KiB))
    yield* cpu.mprotect(buf, 64 * KiB, PROT_READ)
    return buf
  })

  it.effect("§11.3 a writable mirror (default) refuses even a GPU read of a PROT_READ buffer (EPERM); a read-only mirror reads it to-device and refuses writes", () =>
    Effect.gen(function*() {
      const xe = yield* Effect.gen(function*() {
        const gpu = yield* Gpu
        const buf = yield* readOnlyBuffer
        const err = yield* Effect.flip(gpu.access(buf, 16, "read"))
        const mmapped = yield* (yield* Cpu).mmap({ length: 64 * KiB, prot: PROT_READ })
        const fresh = yield* Effect.flip(gpu.access(mmapped, 16, "read"))
        yield* noViolations
        return { err, fresh }
      }).pipe(Effect.provide(GpuSvmTest.layer()))
      assert.strictEqual(xe.err._tag, "GpuFaultError")
      assert.strictEqual(xe.err.causeTag, "PermissionDenied")
      assert.strictEqual(xe.err.retries, 0)
      assert.strictEqual(xe.fresh.causeTag, "PermissionDenied")

      yield* Effect.gen(function*() {
        const gpu = yield* Gpu
        const svm = yield* GpuSvm
        const buf = yield* readOnlyBuffer
        assert.deepStrictEqual(yield* gpu.access(buf, 64 * KiB, "read"), pattern(5, 64 * KiB))
        const r = (yield* svm.ranges())[0]!
        assert.isTrue((r.dmaAddr ?? []).length > 0 && (r.dmaAddr ?? []).every((a) => a.dir === "to-device"), "read-only ranges map to-device")
        const w = yield* Effect.flip(gpu.access(buf, 16, "write", pattern(6, 16)))
        assert.strictEqual(w.causeTag, "PermissionDenied")
        const a = yield* Effect.flip(gpu.access(buf, 4, "atomic"))
        assert.strictEqual(a.causeTag, "PermissionDenied")
        yield* noViolations
      }).pipe(Effect.provide(GpuSvmTest.layer({ driver: { readOnlyMirror: true } })))
    }))
})

describe("§11.4 a VMA split by mprotect under a range", () => {
  const splitThenWrite = Effect.gen(function*() {
    const cpu = yield* Cpu
    const gpu = yield* Gpu
    const buf = yield* cpu.mmap({ length: 2 * MiB, align: 2 * MiB })
    yield* gpu.access(buf, 2 * MiB, "write", pattern(1, 2 * MiB))
    yield* cpu.mprotect(buf + MiB, MiB, PROT_READ)
    const res = yield* Effect.result(gpu.access(buf, 64 * KiB, "write", pattern(2, 64 * KiB)))
    return { buf, res }
  })

  it.effect("§11.4 default: the fault keeps retrying the range (EPERM), bounded by maxRetries, then fails naming the livelock; recreate drops and re-creates it; a munmap split is collected", () =>
    Effect.gen(function*() {
      // Xe: find_or_insert keeps returning the 2 MiB range, get_pages keeps failing EPERM.
      yield* Effect.gen(function*() {
        const svm = yield* GpuSvm
        const driver = yield* Driver
        const { buf, res } = yield* splitThenWrite
        assert.isTrue(res._tag === "Failure")
        if (res._tag !== "Failure") return
        assert.strictEqual(res.failure.reason, SPLIT_VMA_LIVELOCK)
        assert.strictEqual(res.failure.reason, "livelock: range spans a VMA split by mprotect")
        assert.strictEqual(res.failure.causeTag, "PermissionDenied")
        assert.strictEqual(res.failure.retries, 5)
        assert.strictEqual((yield* driver.counters).faultRetries.EPERM, 6)
        // the range is still there, spanning both VMAs
        assert.deepStrictEqual((yield* svm.ranges()).map((r) => [r.start, r.end]), [[buf, buf + 2 * MiB]])
        yield* noViolations
      }).pipe(Effect.provide(GpuSvmTest.layer({ driver: { maxRetries: 5 } })))

      // option: drop the stale range; the next round creates one inside the VMA.
      yield* Effect.gen(function*() {
        const svm = yield* GpuSvm
        const cpu = yield* Cpu
        const { buf, res } = yield* splitThenWrite
        assert.strictEqual(res._tag, "Success")
        assert.isTrue((yield* svm.ranges()).every((r) => r.end <= buf + MiB))
        assert.deepStrictEqual(yield* cpu.read(buf, 64 * KiB), pattern(2, 64 * KiB))
        yield* noViolations
      }).pipe(Effect.provide(GpuSvmTest.layer({ driver: { onSplitVma: "recreate", maxRetries: 5 } })))

      // munmap splits raise UNMAP: the range is collected, no livelock by default.
      yield* Effect.gen(function*() {
        const cpu = yield* Cpu
        const gpu = yield* Gpu
        const buf = yield* cpu.mmap({ length: 2 * MiB, align: 2 * MiB })
        yield* gpu.access(buf, 2 * MiB, "write", pattern(3, 2 * MiB))
        yield* cpu.munmap(buf + MiB, MiB)
        yield* gpu.access(buf, 64 * KiB, "write", pattern(4, 64 * KiB))
        assert.deepStrictEqual(yield* cpu.read(buf, 64 * KiB), pattern(4, 64 * KiB))
        yield* noViolations
      }).pipe(Effect.provide(GpuSvmTest.layer({ driver: { maxRetries: 5 } })))
    }))
})

describe("§11.6 migration budget", () => {
  it.effect("§11.6 a retry after EAGAIN does not migrate again: exactly one migration for a normal fault", () => {
    // A one-shot hook in device_map (inside get_pages, under the notifier read
    // lock): a CPU thread touches the buffer, which migrates it back to RAM. Its
    // invalidation waits for the lock (writer preference), so the driver's bind
    // finds the pages invalid: EAGAIN.
    const hook: { fire: Effect.Effect<void> | undefined } = { fire: undefined }
    const pagemaps = (m: ReadonlyMap<string, DeviceMapper>) =>
      new Map([...m].map(([id, pm]) => [id, {
        ...pm,
        deviceMap: (page, order, dir) =>
          Effect.suspend(() => {
            const f = hook.fire
            hook.fire = undefined
            return Effect.andThen(f ?? Effect.void, pm.deviceMap(page, order, dir))
          })
      } satisfies DeviceMapper]))
    return Effect.gen(function*() {
      const cpu = yield* Cpu
      const gpu = yield* Gpu
      const driver = yield* Driver
      const buf = yield* cpu.mmap({ length: 2 * MiB, align: 2 * MiB })
      yield* cpu.write(buf, pattern(7, 2 * MiB))
      let toucher: Fiber.Fiber<Uint8Array, unknown> | undefined
      hook.fire = Effect.andThen(
        Effect.map(Effect.forkDetach(cpu.read(buf, 4096)), (f) => {
          toucher = f
        }),
        Effect.yieldNow
      )
      assert.deepStrictEqual(yield* gpu.access(buf, 2 * MiB, "read"), pattern(7, 2 * MiB))
      assert.isDefined(toucher)
      assert.deepStrictEqual(yield* Fiber.join(toucher!), pattern(7, 4096))
      const c = yield* driver.counters
      assert.isAtLeast(c.faultRetries.EAGAIN, 1, "the first bind must have met EAGAIN")
      assert.strictEqual(c.migrations, 1)
      assert.strictEqual(c.faults, 1)
      yield* noViolations
    }).pipe(Effect.provide(GpuSvmTest.layer({ policy: "xe", machine: vram, wrap: { pagemaps } })))
  })

  it.effect("§11.6 a devmem-only (atomic) fault has 3 tries, spent by every round even when nothing migrates: it gives up after the third", () => {
    // device_map always fails (EFAULT from get_pages) once the range is in VRAM.
    const pagemaps = (m: ReadonlyMap<string, DeviceMapper>) =>
      new Map([...m].map(([id, pm]) => [id, {
        ...pm,
        deviceMap: (_page, _order, _dir) => Effect.fail(new BadAddress({ reason: "injected device_map failure" }))
      } satisfies DeviceMapper]))
    return Effect.gen(function*() {
      const cpu = yield* Cpu
      const gpu = yield* Gpu
      const driver = yield* Driver
      const buf = yield* cpu.mmap({ length: 2 * MiB, align: 2 * MiB })
      const err = yield* Effect.flip(gpu.access(buf, 4, "atomic"))
      assert.strictEqual(err.reason, "get_pages failed and no migration try is left for an atomic access")
      assert.strictEqual(err.causeTag, "BadAddress")
      assert.strictEqual(err.retries, 2, "rounds 0, 1, 2: one try each")
      const c = yield* driver.counters
      assert.strictEqual(c.migrations, 1, "later rounds find the range in VRAM already")
      assert.strictEqual(c.faultRetries.EFAULT, 2)
      yield* noViolations
    }).pipe(Effect.provide(GpuSvmTest.layer({ policy: "xe", machine: vram, wrap: { pagemaps } })))
  })
})

describe("§11.8 check_pages_threshold", () => {
  const rangeOfFirstTouch = Effect.gen(function*() {
    const cpu = yield* Cpu
    const gpu = yield* Gpu
    const svm = yield* GpuSvm
    const buf = yield* cpu.mmap({ length: 64 * KiB, align: 64 * KiB })
    yield* gpu.access(buf + 8 * KiB, 1, "read")
    const r = (yield* svm.ranges())[0]!
    return r.end - r.start
  })

  it.effect("§11.8 it is 0 without device memory (an untouched 64 KiB chunk is chosen), 64 KiB with it, and an explicit value overrides", () =>
    Effect.gen(function*() {
      assert.strictEqual(yield* rangeOfFirstTouch.pipe(Effect.provide(GpuSvmTest.layer({ policy: "never" }))), 64 * KiB)
      assert.strictEqual(yield* rangeOfFirstTouch.pipe(Effect.provide(GpuSvmTest.layer({ policy: "xe", machine: vram }))), 4 * KiB)
      assert.strictEqual(
        yield* rangeOfFirstTouch.pipe(Effect.provide(GpuSvmTest.layer({ policy: "never", driver: { checkPagesThreshold: 64 * KiB } }))),
        4 * KiB
      )
      assert.strictEqual(
        yield* rangeOfFirstTouch.pipe(Effect.provide(GpuSvmTest.layer({ policy: "xe", machine: vram, driver: { checkPagesThreshold: 0 } }))),
        64 * KiB
      )
    }))
})

describe("§11.10 devmem_only without migrate_devmem", () => {
  it.effect("§11.10 a GPU atomic on memory that can never migrate (file, hugetlb) fails AccessDenied (EACCES) at once, without trying", () =>
    Effect.gen(function*() {
      const cpu = yield* Cpu
      const gpu = yield* Gpu
      const driver = yield* Driver
      const file = yield* cpu.mmap({ length: 64 * KiB, kind: "file", fileSeed: 3 })
      const huge = yield* cpu.mmap({ length: 2 * MiB, kind: "hugetlb", align: 2 * MiB })
      for (const addr of [file, huge]) {
        const err = yield* Effect.flip(gpu.access(addr, 4, "atomic"))
        assert.strictEqual(err._tag, "GpuFaultError")
        assert.strictEqual(err.causeTag, "AccessDenied")
        assert.strictEqual(err.cause?.errno, "EACCES")
        assert.strictEqual(err.retries, 0)
      }
      const c = yield* driver.counters
      assert.strictEqual(c.migrations + c.migrationFailures, 0, "no migration was tried")
      assert.deepStrictEqual(c.faultRetries, { EAGAIN: 0, EBUSY: 0, EOPNOTSUPP: 0, EFAULT: 0, EPERM: 0 })
      // plain reads and writes there are fine (no device memory needed)
      yield* gpu.access(file, 16, "write", pattern(9, 16))
      assert.deepStrictEqual(yield* cpu.read(file, 16), pattern(9, 16))
      yield* noViolations
    }).pipe(Effect.provide(GpuSvmTest.layer({ policy: "xe", machine: vram }))))
})

describe("§11.12 invalidation callback: early return, flush only where PTEs exist", () => {
  it.effect("§11.12 an event overlapping no range of the notifier makes no gpu.invalidate call; a range without PTEs is not flushed again", () => {
    const counting = countingGpu()
    return Effect.gen(function*() {
      const cpu = yield* Cpu
      const gpu = yield* Gpu
      const svm = yield* GpuSvm
      const a = yield* cpu.mmap({ length: 64 * KiB, align: 64 * KiB })
      const b = yield* cpu.mmap({ length: 64 * KiB, align: 64 * KiB })
      yield* gpu.access(a, 64 * KiB, "read")
      const notifiers = yield* svm.notifiers
      assert.strictEqual(notifiers.length, 1)
      assert.isTrue(notifiers[0]!.start <= b && b + 64 * KiB <= notifiers[0]!.end, "b lies in the same notifier")
      counting.calls.length = 0
      // events in the notifier, outside every range
      yield* cpu.madviseDontNeed(b, 64 * KiB)
      yield* cpu.mprotect(b, 64 * KiB, PROT_READ)
      yield* cpu.munmap(b, 64 * KiB)
      assert.deepStrictEqual(counting.calls, [])
      // an event on the bound range: one zap over the range
      yield* cpu.madviseDontNeed(a, 4096)
      assert.deepStrictEqual(counting.calls, [[a, a + 64 * KiB]])
      // the range is still there but has no PTEs left: no flush
      assert.strictEqual((yield* svm.ranges()).length, 1)
      yield* cpu.madviseDontNeed(a, 64 * KiB)
      assert.deepStrictEqual(counting.calls, [[a, a + 64 * KiB]])
      // nor when the collector removes it after munmap: it has nothing to unbind
      yield* cpu.munmap(a, 64 * KiB)
      yield* (yield* Driver).idle
      assert.deepStrictEqual(yield* svm.ranges(), [])
      assert.deepStrictEqual(counting.calls, [[a, a + 64 * KiB]])
      yield* noViolations
    }).pipe(Effect.provide(GpuSvmTest.layer({ wrap: { gpu: counting.wrap } })))
  })
})
