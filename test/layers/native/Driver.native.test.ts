/**
 * The driver programs' IGT-style flows (kernel-semantics §10), one body per
 * flow, run on the simulated machine and on the native one: the point of the
 * design is that the same programs run unchanged against either. Then the
 * built-in scenarios the native machine can express (anonymous and shared
 * memory; no simulated files, no hugetlb without reserved huge pages) through
 * the scenario runner with the `native` factory.
 */
import { assert, describe, it } from "@effect/vitest"
import { Effect, type Layer } from "effect"
import { PROT_READ } from "../../../src/domain/Prot.ts"
import type { Scenario } from "../../../src/domain/Scenario.ts"
import { builtins, loadFile, nativeSkipReason } from "../../../src/cli/load.ts"
import { native } from "../../../src/cli/machines.ts"
import { Driver } from "../../../src/programs/Driver.ts"
import * as Runner from "../../../src/programs/ScenarioRunner.ts"
import { Cpu } from "../../../src/services/Cpu.ts"
import { DevicePagemap } from "../../../src/services/DevicePagemap.ts"
import { Gpu } from "../../../src/services/Gpu.ts"
import { GpuSvm } from "../../../src/services/GpuSvm.ts"
import { Machine } from "../../../src/services/Machine.ts"
import { GpuSvmTest } from "../../../src/testing/index.ts"
import { driverLayer as nativeDriver, lacks, needs } from "./support.ts"

const KiB = 1024
const MiB = 1024 * KiB
const T = 30_000
const BASE = ["linux", "helperBuilt", "userfaultfd", "pfnVisible"] as const
const skipNative = lacks(...BASE)
const NEEDS = needs(...BASE)
const pattern = (p: number, n: number) => Uint8Array.from({ length: n }, (_, i) => (p + i) % 256)

type Stack = Cpu | Gpu | GpuSvm | Driver | Machine

const noViolations = Effect.gen(function*() {
  assert.deepStrictEqual(yield* (yield* Machine).violations, [])
})

/** The flow bodies, written once against the services. */
const flows: ReadonlyArray<readonly [string, Effect.Effect<void, unknown, Stack>]> = [
  ["§10.1 first touch by the GPU faults the range in and reads zeros", Effect.gen(function*() {
    const cpu = yield* Cpu
    const gpu = yield* Gpu
    const buf = yield* cpu.mmap({ length: 2 * MiB, align: 2 * MiB })
    assert.deepStrictEqual(yield* gpu.access(buf + 100, 5000, "read"), new Uint8Array(5000))
    assert.isAtLeast((yield* gpu.stats).faults, 1)
    assert.isAtLeast((yield* (yield* Driver).counters).faults, 1)
    yield* noViolations
  })],
  ["§10.1 CPU write then GPU read sees the bytes; GPU write then CPU read sees them", Effect.gen(function*() {
    const cpu = yield* Cpu
    const gpu = yield* Gpu
    const buf = yield* cpu.mmap({ length: 256 * KiB })
    yield* cpu.write(buf, pattern(7, 256 * KiB))
    assert.deepStrictEqual(yield* gpu.access(buf, 256 * KiB, "read"), pattern(7, 256 * KiB))
    yield* gpu.access(buf + 4000, 10_000, "write", pattern(99, 10_000))
    assert.deepStrictEqual(yield* cpu.read(buf + 4000, 10_000), pattern(99, 10_000))
    yield* noViolations
  })],
  ["§10.2 free and reuse of the same address: the GC removes the old range, the GPU sees the new bytes", Effect.gen(function*() {
    const cpu = yield* Cpu
    const gpu = yield* Gpu
    const svm = yield* GpuSvm
    const buf = yield* cpu.mmap({ length: 64 * KiB, align: 64 * KiB })
    yield* cpu.write(buf, pattern(1, 64 * KiB))
    assert.deepStrictEqual(yield* gpu.access(buf, 64 * KiB, "read"), pattern(1, 64 * KiB))
    yield* cpu.munmap(buf, 64 * KiB)
    assert.strictEqual(yield* cpu.mmap({ length: 64 * KiB, addr: buf, fixed: true }), buf)
    yield* cpu.write(buf, pattern(2, 64 * KiB))
    assert.deepStrictEqual(yield* gpu.access(buf, 64 * KiB, "read"), pattern(2, 64 * KiB))
    const c = yield* (yield* Driver).counters
    assert.isAtLeast(c.gcRuns, 1)
    assert.isAtLeast(c.rangesRemoved, 1)
    assert.isTrue((yield* svm.ranges()).every((r) => !r.flags.unmapped))
    yield* noViolations
  })],
  ["§10.2–10.3 partial munmap of a bound 2 MiB range, then GPU and CPU access of the rest", Effect.gen(function*() {
    const cpu = yield* Cpu
    const gpu = yield* Gpu
    const svm = yield* GpuSvm
    const buf = yield* cpu.mmap({ length: 2 * MiB, align: 2 * MiB })
    yield* cpu.write(buf, pattern(3, 2 * MiB))
    assert.deepStrictEqual(yield* gpu.access(buf, 2 * MiB, "read"), pattern(3, 2 * MiB))
    const ranges = yield* svm.ranges()
    assert.strictEqual(ranges.length, 1)
    assert.strictEqual(ranges[0]!.end - ranges[0]!.start, 2 * MiB)
    yield* cpu.munmap(buf + 512 * KiB, 512 * KiB)
    assert.isTrue((yield* svm.ranges())[0]!.flags.partialUnmap)
    assert.deepStrictEqual(yield* gpu.access(buf + MiB, 4096, "read"), pattern(3, 2 * MiB).subarray(MiB, MiB + 4096))
    assert.deepStrictEqual(yield* cpu.read(buf, 4096), pattern(3, 4096))
    assert.isTrue((yield* svm.ranges()).every((r) => r.end <= buf + 512 * KiB || r.start >= buf + MiB))
    assert.strictEqual((yield* Effect.flip(gpu.access(buf + 600 * KiB, 16, "read")))._tag, "GpuFaultError")
    yield* noViolations
  })],
  ["§10 mremap of a GPU-bound buffer: the GPU follows the bytes to the new address", Effect.gen(function*() {
    const cpu = yield* Cpu
    const gpu = yield* Gpu
    const buf = yield* cpu.mmap({ length: 128 * KiB })
    yield* cpu.write(buf, pattern(11, 128 * KiB))
    assert.deepStrictEqual(yield* gpu.access(buf, 128 * KiB, "read"), pattern(11, 128 * KiB))
    const moved = yield* cpu.mremap(buf, 128 * KiB, 256 * KiB)
    assert.deepStrictEqual(yield* gpu.access(moved, 128 * KiB, "read"), pattern(11, 128 * KiB))
    if (moved !== buf) assert.strictEqual((yield* Effect.flip(gpu.access(buf, 4, "read")))._tag, "GpuFaultError")
    yield* noViolations
  })],
  ["§10.1 GPU atomics on system memory; §11.3 after mprotect read-only a GPU read or write is a typed fault (writable mirror)", Effect.gen(function*() {
    const cpu = yield* Cpu
    const gpu = yield* Gpu
    const buf = yield* cpu.mmap({ length: 64 * KiB })
    for (let i = 0; i < 5; i++) yield* gpu.access(buf + 8, 4, "atomic")
    const bytes = yield* cpu.read(buf + 8, 4)
    assert.strictEqual(new DataView(bytes.buffer, bytes.byteOffset).getUint32(0, true), 5)
    yield* gpu.access(buf, 16, "write", pattern(5, 16))
    yield* cpu.mprotect(buf, 64 * KiB, PROT_READ)
    // the default writable mirror refuses even a read in a read-only VMA (EPERM from find_or_insert)
    assert.strictEqual((yield* Effect.flip(gpu.access(buf, 16, "read"))).causeTag, "PermissionDenied")
    assert.strictEqual((yield* Effect.flip(gpu.access(buf, 16, "write", pattern(6, 16)))).causeTag, "PermissionDenied")
    assert.deepStrictEqual(yield* cpu.read(buf, 16), pattern(5, 16))
    yield* noViolations
  })],
  ["§10.3 madvise(DONTNEED) invalidates: the GPU then reads zeros", Effect.gen(function*() {
    const cpu = yield* Cpu
    const gpu = yield* Gpu
    const buf = yield* cpu.mmap({ length: 64 * KiB, align: 64 * KiB })
    yield* cpu.write(buf, pattern(9, 64 * KiB))
    assert.deepStrictEqual(yield* gpu.access(buf, 64 * KiB, "read"), pattern(9, 64 * KiB))
    yield* cpu.madviseDontNeed(buf, 64 * KiB)
    assert.deepStrictEqual(yield* gpu.access(buf, 64 * KiB, "read"), new Uint8Array(64 * KiB))
    yield* noViolations
  })]
]

const machines: ReadonlyArray<readonly [string, boolean, () => Layer.Layer<Stack, unknown>]> = [
  ["simulated", false, () => GpuSvmTest.layer()],
  ["native", skipNative, () => nativeDriver()],
  // invalidations of munmap / madvise / mremap raised by the userfaultfd events alone (§7: before the call returns)
  ["native (notifier: uffd)", skipNative, () => nativeDriver({ machine: { notifier: "uffd" } })]
]

for (const [machine, skip, layer] of machines) {
  describe(`driver flows on the ${machine} machine`, () => {
    for (const [name, body] of flows) {
      it.live.skipIf(skip)(`${name}${machine.startsWith("native") ? ` (${NEEDS})` : ""}`, () => body.pipe(Effect.provide(layer())), T)
    }
  })
}

describe("driver flows with device memory on the native machine", () => {
  it.live.skipIf(skipNative)(`§9–10 policy always: the GPU migrates to device memory, the CPU reads the bytes back exactly (${NEEDS})`, () =>
    Effect.gen(function*() {
      const cpu = yield* Cpu
      const gpu = yield* Gpu
      const pm = yield* DevicePagemap
      const buf = yield* cpu.mmap({ length: 2 * MiB, align: 2 * MiB })
      yield* cpu.write(buf, pattern(21, 2 * MiB))
      assert.deepStrictEqual(yield* gpu.access(buf, 2 * MiB, "read"), pattern(21, 2 * MiB))
      assert.strictEqual((yield* pm.usage).allocations, 1)
      yield* gpu.access(buf + 100, 1000, "write", pattern(77, 1000))
      const want = pattern(21, 2 * MiB)
      want.set(pattern(77, 1000), 100)
      assert.deepStrictEqual(yield* cpu.read(buf, 2 * MiB), want)
      assert.strictEqual((yield* pm.usage).allocations, 0)
      assert.deepStrictEqual(yield* gpu.access(buf, 2 * MiB, "read"), want)
      yield* noViolations
    }).pipe(Effect.provide(nativeDriver({ policy: "always" }))), T)
})

/**
 * Does the scenario need something the native machine cannot express? What the CLI skips
 * (`nativeSkipReason`: files, BOs, device-exclusive, kernel moves,
 * hugetlb beyond the host's free huge pages), plus the simulated-only injections.
 */
const inexpressible = (s: Scenario): string | undefined => {
  const inject = s.machine?.inject
  if (inject?.seqRace !== undefined || inject?.evictPfnAllocFail !== undefined) {
    return "simulated-machine injections (seqRace, evictPfnAllocFail: kernel-semantics §11.16)"
  }
  return nativeSkipReason(s)
}

describe("built-in scenarios on the native machine", () => {
  it.live.skipIf(skipNative)(`every built-in scenario the native machine can express passes (${NEEDS})`, () =>
    Effect.gen(function*() {
      const list = yield* builtins()
      const failed: Array<string> = []
      let ran = 0
      for (const b of list) {
        const { scenario } = yield* loadFile(b.file)
        if (inexpressible(scenario) !== undefined) continue
        const r = yield* Runner.run(scenario, native, { timeoutMs: 20_000 })
        ran++
        if (!r.ok) failed.push(`${b.name}: ${JSON.stringify([...r.violations, ...r.failures]).slice(0, 400)}`)
      }
      assert.isAtLeast(ran, 1)
      assert.deepStrictEqual(failed, [])
    }), 60_000)
})
