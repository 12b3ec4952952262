/**
 * The shared GPU engine (src/layers/common/GpuEngine.ts) against a tiny fake
 * memory port: system pages are a map of 4 KiB buffers reachable only while
 * "live" (a stand-in for a DMA mapping); device pages are another map whose
 * "poisoned" pages refuse and record the violation themselves (as the
 * simulated VRAM's access check does).
 */
import { assert, describe, it } from "@effect/vitest"
import { Effect } from "effect"
import { make as devAddr, SYSTEM_PROTO } from "../../../src/domain/DeviceAddress.ts"
import { GpuFaultError } from "../../../src/domain/Errors.ts"
import type { GpuPageFault } from "../../../src/services/Gpu.ts"
import type { Violation } from "../../../src/services/Machine.ts"
import { alreadyRecorded, type GpuMemoryPort, makeGpuEngine, MAX_FAULTS_PER_PAGE, refused } from "../../../src/layers/common/GpuEngine.ts"

const P = 4096

/** A fake machine: system and device pages keyed by device address, and the violations recorded. */
const fakeMachine = () => {
  const system = new Map<number, Uint8Array>()
  const live = new Set<number>()
  const device = new Map<number, Uint8Array>()
  const poisoned = new Set<number>()
  const violations: Array<Violation> = []
  const pageOf = (m: Map<number, Uint8Array>, a: number) => {
    let p = m.get(a)
    if (p === undefined) m.set(a, p = new Uint8Array(P))
    return p
  }
  const port: GpuMemoryPort = {
    touchSystem: (pte, _va, off, len, write, buf, bufOff) => {
      if (!live.has(pte.devAddr)) return refused(`no live mapping of ${pte.devAddr}`)
      const page = pageOf(system, pte.devAddr)
      if (write) page.set(buf.subarray(bufOff, bufOff + len), off)
      else buf.set(page.subarray(off, off + len), bufOff)
      return undefined
    },
    touchDevice: (pte, _va, off, len, write, buf, bufOff) => {
      if (poisoned.has(pte.devAddr)) {
        violations.push({ invariant: "device-use-after-free", detail: `device page ${pte.devAddr}` })
        return alreadyRecorded(`device page ${pte.devAddr} is freed`)
      }
      const page = pageOf(device, pte.devAddr)
      if (write) page.set(buf.subarray(bufOff, bufOff + len), off)
      else buf.set(page.subarray(off, off + len), bufOff)
      return undefined
    },
    recordViolation: (v) => void violations.push(v)
  }
  return { system, live, device, poisoned, violations, port }
}

const sys = (a: number) => devAddr(a, SYSTEM_PROTO, 0, "bidirectional")
const vram = (a: number) => devAddr(a, "xe-link", 0, "bidirectional")

describe("GPU engine over a fake memory port (design §8.2, §8.5; kernel-semantics §10.1)", () => {
  it.effect("§10.1 a missing PTE is a GPU page fault handed to the handler; the access retries once it is bound", () =>
    Effect.gen(function*() {
      const m = fakeMachine()
      m.live.add(0x10000)
      m.system.set(0x10000, new Uint8Array(P).fill(7))
      const gpu = makeGpuEngine(m.port)
      const seen: Array<GpuPageFault> = []
      yield* gpu.setFaultHandler((f) => Effect.andThen(Effect.sync(() => seen.push(f)), gpu.bind(0x40000, 0x41000, [sys(0x10000)])))
      const got = yield* gpu.access(0x40010, 8, "read")
      assert.deepStrictEqual([...(got as Uint8Array)], [7, 7, 7, 7, 7, 7, 7, 7])
      assert.deepStrictEqual(seen, [{ addr: 0x40010, write: false, atomic: false }])
      const s = yield* gpu.stats
      assert.deepStrictEqual(s, { faults: 1, tlbFlushes: 0, accesses: 1, ptesLive: 1 })
      // bound now: no second fault
      yield* gpu.access(0x40000, 4, "read")
      assert.strictEqual((yield* gpu.stats).faults, 1)
    }))

  it.effect("design §8.5 bounded work: a handler that never maps the page ends in GpuFaultError after MAX_FAULTS_PER_PAGE faults", () =>
    Effect.gen(function*() {
      const m = fakeMachine()
      const gpu = makeGpuEngine(m.port)
      let calls = 0
      yield* gpu.setFaultHandler(() => Effect.sync(() => void calls++))
      const e = yield* Effect.flip(gpu.access(0x40000, 4, "write", new Uint8Array(4)))
      assert.instanceOf(e, GpuFaultError)
      assert.strictEqual(e.reason, `page still not mapped after ${MAX_FAULTS_PER_PAGE} faults`)
      assert.strictEqual(e.addr, 0x40000)
      assert.strictEqual(calls, MAX_FAULTS_PER_PAGE)
      assert.strictEqual((yield* gpu.stats).faults, MAX_FAULTS_PER_PAGE)
      assert.deepStrictEqual(m.violations, [])
    }))

  it.effect("design §8.5 a fault with no handler registered is a GpuFaultError, and the handler's own give-up passes through", () =>
    Effect.gen(function*() {
      const m = fakeMachine()
      const gpu = makeGpuEngine(m.port)
      const none = yield* Effect.flip(gpu.access(0x40000, 4, "read"))
      assert.strictEqual(none.reason, "GPU page fault with no fault handler registered")
      assert.strictEqual((yield* gpu.stats).faults, 0)
      const mine = GpuFaultError.of(0x40000, "driver gave up", undefined, 3)
      yield* gpu.setFaultHandler(() => Effect.fail(mine))
      assert.strictEqual(yield* Effect.flip(gpu.access(0x40000, 4, "read")), mine)
    }))

  it.effect("§10.1 a write through a read-only PTE faults with write; an atomic faults with atomic and increments the u32 in place", () =>
    Effect.gen(function*() {
      const m = fakeMachine()
      m.live.add(0x10000)
      const gpu = makeGpuEngine(m.port)
      yield* gpu.bind(0x40000, 0x41000, [sys(0x10000)], { readOnly: true })
      const seen: Array<GpuPageFault> = []
      yield* gpu.setFaultHandler((f) => Effect.andThen(Effect.sync(() => seen.push(f)), gpu.bind(0x40000, 0x41000, [sys(0x10000)])))
      yield* gpu.access(0x40100, 4, "write", new Uint8Array([0xff, 0xff, 0xff, 0xff]))
      yield* gpu.bind(0x40000, 0x41000, [sys(0x10000)], { readOnly: true })
      const old = yield* gpu.access(0x40100, 4, "atomic")
      assert.deepStrictEqual([...(old as Uint8Array)], [0xff, 0xff, 0xff, 0xff])
      assert.deepStrictEqual([...m.system.get(0x10000)!.subarray(0x100, 0x104)], [0, 0, 0, 0]) // wrapped at 2^32
      assert.deepStrictEqual(seen, [{ addr: 0x40100, write: true, atomic: false }, { addr: 0x40100, write: true, atomic: true }])
      // a read through a read-only PTE does not fault
      yield* gpu.bind(0x40000, 0x41000, [sys(0x10000)], { readOnly: true })
      yield* gpu.access(0x40100, 4, "read")
      assert.strictEqual(seen.length, 2)
    }))

  it.effect("design §8.2 no stale device access: a touch memory refuses is a stale-device-access violation and a GpuFaultError, not a fault", () =>
    Effect.gen(function*() {
      const m = fakeMachine()
      const gpu = makeGpuEngine(m.port)
      yield* gpu.bind(0x40000, 0x41000, [sys(0x10000)]) // 0x10000 never mapped live: a stale IOVA
      yield* gpu.setFaultHandler(() => Effect.void) // counted in stats.faults if ever called
      const e = yield* Effect.flip(gpu.access(0x40008, 4, "read"))
      assert.strictEqual(e.reason, "no live mapping of 65536")
      assert.strictEqual(e.addr, 0x40008)
      assert.deepStrictEqual(m.violations, [{ invariant: "stale-device-access", detail: "GPU access at 0x40008: no live mapping of 65536" }])
      assert.strictEqual((yield* gpu.stats).faults, 0)
    }))

  it.effect("design §8.2 a refusal memory already recorded is not recorded again; device PTEs go to touchDevice", () =>
    Effect.gen(function*() {
      const m = fakeMachine()
      const gpu = makeGpuEngine(m.port)
      yield* gpu.bind(0x40000, 0x42000, [vram(0x800000), vram(0x801000)])
      yield* gpu.access(0x40ffe, 4, "write", new Uint8Array([1, 2, 3, 4])) // straddles two device pages
      assert.deepStrictEqual([...m.device.get(0x800000)!.subarray(P - 2)], [1, 2])
      assert.deepStrictEqual([...m.device.get(0x801000)!.subarray(0, 2)], [3, 4])
      assert.strictEqual(m.system.size, 0)
      m.poisoned.add(0x801000)
      const e = yield* Effect.flip(gpu.access(0x40ffe, 4, "read"))
      assert.strictEqual(e.addr, 0x41000) // the page that refused
      assert.deepStrictEqual(m.violations.map((v) => v.invariant), ["device-use-after-free"])
    }))

  it.effect("design §8.2 invalidate zaps the PTEs and counts one TLB flush; the next access faults again", () =>
    Effect.gen(function*() {
      const m = fakeMachine()
      m.live.add(0x10000).add(0x11000)
      const gpu = makeGpuEngine(m.port)
      let faults = 0
      yield* gpu.setFaultHandler(() => Effect.andThen(Effect.sync(() => void faults++), gpu.bind(0x40000, 0x42000, [sys(0x10000), sys(0x11000)])))
      yield* gpu.access(0x40000, 2 * P, "read") // first page faults, binding both
      assert.strictEqual(faults, 1)
      assert.isTrue(yield* gpu.isBound(0x41000, 0x42000))
      yield* gpu.invalidate(0x41000, 0x42000)
      assert.isFalse(yield* gpu.isBound(0x41000, 0x42000))
      yield* gpu.access(0x40000, 2 * P, "read") // second page faults
      assert.strictEqual(faults, 2)
      assert.deepStrictEqual(yield* gpu.stats, { faults: 2, tlbFlushes: 1, accesses: 2, ptesLive: 2 })
    }))

  it.effect("design §8.5 malformed accesses are GpuFaultError before anything is touched; the yield points run once per call", () =>
    Effect.gen(function*() {
      const m = fakeMachine()
      let points = 0
      let binds = 0
      const gpu = makeGpuEngine(m.port, { accessPoint: Effect.sync(() => void points++), bindPoint: Effect.sync(() => void binds++) })
      assert.strictEqual((yield* Effect.flip(gpu.access(0x40002, 4, "atomic"))).reason, "atomic access must be 4 bytes, 4-byte aligned")
      assert.strictEqual((yield* Effect.flip(gpu.access(0x40000, 0, "read"))).reason, "bad GPU access [262144, +0)")
      assert.strictEqual((yield* Effect.flip(gpu.access(0x40000, 8, "write", new Uint8Array(4)))).reason, "write of 8 bytes needs that many bytes")
      yield* gpu.bind(0x40000, 0x41000, [])
      assert.strictEqual(points, 3)
      assert.strictEqual(binds, 1)
      assert.deepStrictEqual(yield* gpu.stats, { faults: 0, tlbFlushes: 0, accesses: 2, ptesLive: 0 })
    }))
})
