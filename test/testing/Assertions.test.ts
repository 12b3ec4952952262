/**
 * `gpusvm/testing` assertions, used as a user would (from the testing entry):
 * each holds on a correct stack and fails, with its typed error naming what
 * broke, on a broken input (design.md §8 invariants 1–3; kernel-semantics §6
 * coherence, §11.1 teardown, §11.16 mm references).
 */
import { assert, describe, it } from "@effect/vitest"
import { Effect } from "effect"
import { make as deviceAddress } from "../../src/domain/DeviceAddress.ts"
import { Cpu } from "../../src/services/Cpu.ts"
import { Dma } from "../../src/services/Dma.ts"
import { Gpu, gpuAccess } from "../../src/services/Gpu.ts"
import { Hmm } from "../../src/services/Hmm.ts"
import { MmuNotifier } from "../../src/services/MmuNotifier.ts"
import { assertCoherent, assertNoLeaks, assertNoViolations, GpuSvmTest } from "../../src/testing/index.ts"

const KiB = 1024
const MiB = 1024 * KiB
const pattern = (seed: number, n: number) => Uint8Array.from({ length: n }, (_, i) => (seed + i) % 251)

/** A GPU whose reads return one wrong byte at `offset` of each read. */
const corruptingGpu = (offset: number) => (g: Gpu["Service"]): Gpu["Service"] => ({
  ...g,
  access: gpuAccess((addr, length, mode, bytes) =>
    mode !== "read" ? g.access(addr, length, mode, bytes) : Effect.map(g.access(addr, length, mode), (b) => {
      if (!(b instanceof Uint8Array)) return b
      const out = Uint8Array.from(b)
      out[offset] = (out[offset]! + 1) & 0xff
      return out
    }))
})

describe("gpusvm/testing assertCoherent", () => {
  it.effect("§6 holds after CPU and GPU writes, with pages in device memory (policy always)", () =>
    Effect.gen(function*() {
      const cpu = yield* Cpu
      const gpu = yield* Gpu
      const buf = yield* cpu.mmap({ length: 2 * MiB, align: 2 * MiB })
      yield* cpu.write(buf, pattern(1, 64 * KiB))
      yield* gpu.access(buf + 128 * KiB, 8 * KiB, "write", pattern(2, 8 * KiB))
      yield* assertCoherent([{ addr: buf, length: 2 * MiB }])
      yield* assertNoViolations
    }).pipe(Effect.provide(GpuSvmTest.layer({ policy: "always", machine: { vramBytes: 8 * MiB } }))))

  it.effect("§6 fails with IncoherentView naming the address and both bytes when the GPU sees other bytes", () =>
    Effect.gen(function*() {
      const cpu = yield* Cpu
      const buf = yield* cpu.mmap({ length: 64 * KiB })
      yield* cpu.write(buf, pattern(3, 64 * KiB))
      const err = yield* Effect.flip(assertCoherent([{ addr: buf, length: 64 * KiB }]))
      assert.strictEqual(err._tag, "IncoherentView")
      assert.strictEqual(err.addr, buf + 100)
      assert.strictEqual(err.cpu, pattern(3, 101)[100])
      assert.strictEqual(err.gpu, (pattern(3, 101)[100]! + 1) & 0xff)
      assert.include(err.message, "incoherent view at 0x")
    }).pipe(Effect.provide(GpuSvmTest.layer({ wrap: { gpu: corruptingGpu(100) } }))))

  it.effect("§6 fails with IncoherentView when a span cannot be read (unmapped)", () =>
    Effect.gen(function*() {
      const cpu = yield* Cpu
      const buf = yield* cpu.mmap({ length: 64 * KiB })
      yield* cpu.munmap(buf, 64 * KiB)
      const err = yield* Effect.flip(assertCoherent([{ addr: buf, length: 4 * KiB }]))
      assert.strictEqual(err._tag, "IncoherentView")
      assert.include(err.detail, "GPU read of 4096 bytes failed")
    }).pipe(Effect.provide(GpuSvmTest.layer())))
})

describe("gpusvm/testing assertNoLeaks", () => {
  it.effect("§11.1 holds after GPU use with device memory: exit + fini leave no notifier, range, DMA mapping, VRAM or mm reference", () =>
    Effect.gen(function*() {
      const cpu = yield* Cpu
      const gpu = yield* Gpu
      const buf = yield* cpu.mmap({ length: 2 * MiB, align: 2 * MiB })
      yield* gpu.access(buf, 2 * MiB, "write", pattern(4, 2 * MiB))
      yield* gpu.access(buf, 4, "atomic")
      yield* assertNoLeaks
    }).pipe(Effect.provide(GpuSvmTest.layer({ policy: "xe", machine: { vramBytes: 8 * MiB } }))))

  it.effect("§11.1 fails with LeakDetected naming the notifier a broken driver never removed", () =>
    Effect.gen(function*() {
      const cpu = yield* Cpu
      const buf = yield* cpu.mmap({ length: 64 * KiB })
      yield* (yield* MmuNotifier).insert(buf, 64 * KiB, () => Effect.succeed(true))
      const err = yield* Effect.flip(assertNoLeaks)
      assert.strictEqual(err._tag, "LeakDetected")
      assert.deepStrictEqual(err.leaks.map((l) => l.invariant), ["no-leaks"])
      assert.include(err.message, "1 MMU notifiers left after exit")
    }).pipe(Effect.provide(GpuSvmTest.layer())))

  it.effect("§11.1 fails with LeakDetected naming a DMA mapping that was never unmapped", () =>
    Effect.gen(function*() {
      const cpu = yield* Cpu
      const buf = yield* cpu.mmap({ length: 64 * KiB })
      // a broken driver: walks a page with hmm_range_fault and DMA-maps it behind GPU SVM's back, never unmapping it
      const mn = yield* MmuNotifier
      const h = yield* mn.insert(buf, 64 * KiB, () => Effect.succeed(true))
      const pfns = yield* (yield* Hmm).rangeFault({ notifier: h, notifierSeq: yield* mn.readBegin(h), start: buf, end: buf + 4 * KiB, fault: true, write: false })
      yield* mn.remove(h)
      yield* (yield* Dma).mapPage(pfns[0]!.page!, 0, "bidirectional")
      const err = yield* Effect.flip(assertNoLeaks)
      assert.strictEqual(err._tag, "LeakDetected")
      assert.include(err.message, "1 DMA mappings left after exit")
    }).pipe(Effect.provide(GpuSvmTest.layer())))
})

describe("gpusvm/testing assertNoViolations", () => {
  it.effect("§8 holds on a correct run", () =>
    Effect.gen(function*() {
      const cpu = yield* Cpu
      const gpu = yield* Gpu
      const buf = yield* cpu.mmap({ length: 64 * KiB })
      yield* gpu.access(buf, 64 * KiB, "read")
      yield* cpu.munmap(buf, 64 * KiB)
      yield* assertNoViolations
    }).pipe(Effect.provide(GpuSvmTest.layer())))

  it.effect("§8 fails with MachineViolations naming dma-unmap-unknown after an unmap of an address never mapped", () =>
    Effect.gen(function*() {
      yield* (yield* Dma).unmapPage(deviceAddress(0xdead000, "system", 0, "bidirectional"))
      const err = yield* Effect.flip(assertNoViolations)
      assert.strictEqual(err._tag, "MachineViolations")
      assert.deepStrictEqual(err.violations.map((v) => v.invariant), ["dma-unmap-unknown"])
      assert.include(err.message, "dma-unmap-unknown")
    }).pipe(Effect.provide(GpuSvmTest.layer())))
})
