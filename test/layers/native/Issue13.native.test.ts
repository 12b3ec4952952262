/**
 * Issue #13 (kernel-semantics §11) on the native machine: exit's RELEASE then
 * UNMAP (§11.1, on `Cpu.exit` and when the helper dies on its own), the
 * notifier sequence being the callback's job (issue item 8), and mmap hints /
 * MREMAP_DONTUNMAP on a shared mapping (§11.15). Skips (naming the
 * capability) on a host without the native machine.
 */
import { assert, describe, it } from "@effect/vitest"
import { Effect } from "effect"
import { ADDRESS_LIMIT } from "../../../src/domain/Address.ts"
import { PROT_READ, PROT_RW } from "../../../src/domain/Prot.ts"
import type { MmuRange } from "../../../src/domain/MmuRange.ts"
import { NativeMachine } from "../../../src/layers/native/Native.ts"
import { Cpu } from "../../../src/services/Cpu.ts"
import { Machine } from "../../../src/services/Machine.ts"
import { MmuNotifier, type NotifierHandle } from "../../../src/services/MmuNotifier.ts"
import { lacks, machineLayer, needs } from "./support.ts"

const KiB = 1024
const MiB = 1024 * KiB
const T = 30_000
const BASE = ["linux", "helperBuilt", "userfaultfd", "pfnVisible"] as const
const skip = lacks(...BASE)
const NEEDS = needs(...BASE)

/** Two notifiers over two mappings, logging `name:event` and the ranges; both publish `curSeq`. */
const setup = Effect.gen(function*() {
  const cpu = yield* Cpu
  const mmu = yield* MmuNotifier
  const a = yield* cpu.mmap({ length: 1 * MiB })
  const b = yield* cpu.mmap({ length: 256 * KiB })
  yield* cpu.write(a, Uint8Array.of(1, 2, 3))
  yield* cpu.write(b + 4096, Uint8Array.of(4, 5, 6))
  const names: Array<string> = []
  const ranges: Array<MmuRange> = []
  for (const [name, start, len] of [["A", a, 1 * MiB], ["B", b, 256 * KiB]] as const) {
    const cell: { h?: NotifierHandle } = {}
    cell.h = yield* mmu.insert(start, len, (r, cur) =>
      Effect.andThen(mmu.setSeq(cell.h!, cur), Effect.sync(() => {
        names.push(`${name}:${r.event}`)
        ranges.push(r)
        return true
      })))
  }
  return { names, ranges }
})

const checkExitEvents = (names: ReadonlyArray<string>, ranges: ReadonlyArray<MmuRange>) => {
  assert.deepStrictEqual(names, ["A:release", "B:release", "A:unmap", "B:unmap"])
  for (const r of ranges) {
    assert.strictEqual(r.start, 0)
    assert.strictEqual(r.end, ADDRESS_LIMIT)
  }
}

describe("native machine: issue #13", () => {
  it.live.skipIf(skip)(`§11.1 native Cpu.exit raises RELEASE over the whole space, then UNMAP over the whole space (${NEEDS})`, () =>
    Effect.gen(function*() {
      const { names, ranges } = yield* setup
      const nm = yield* NativeMachine
      yield* (yield* Cpu).exit
      checkExitEvents(names, ranges)
      assert.isFalse(yield* nm.helperAlive)
      assert.deepStrictEqual(yield* (yield* Machine).violations, [])
    }).pipe(Effect.provide(machineLayer())), T)

  it.live.skipIf(skip)(`§11.1 native: a helper that dies on its own delivers RELEASE then UNMAP to the notifiers, once (${NEEDS})`, () =>
    Effect.gen(function*() {
      const { names, ranges } = yield* setup
      const nm = yield* NativeMachine
      yield* nm.kill()
      for (let i = 0; i < 200 && names.length < 4; i++) yield* Effect.sleep("10 millis")
      checkExitEvents(names, ranges)
      yield* (yield* Cpu).exit // already gone: no second pair of events
      yield* Effect.sleep("20 millis")
      assert.strictEqual(names.length, 4)
    }).pipe(Effect.provide(machineLayer())), T)

  it.live.skipIf(skip)(`issue13.8 native notifier-seq-not-set: the sequence moves only when the callback calls setSeq (${NEEDS})`, () =>
    Effect.gen(function*() {
      const cpu = yield* Cpu
      const mmu = yield* MmuNotifier
      const buf = yield* cpu.mmap({ length: 256 * KiB })
      yield* cpu.write(buf, Uint8Array.of(9))
      const lazy = yield* mmu.insert(buf, 128 * KiB, () => Effect.succeed(true))
      const cell: { h?: NotifierHandle } = {}
      cell.h = yield* mmu.insert(buf + 128 * KiB, 128 * KiB, (_r, cur) => Effect.as(mmu.setSeq(cell.h!, cur), true))
      const s0 = yield* mmu.readBegin(lazy)
      const t0 = yield* mmu.readBegin(cell.h)
      yield* cpu.munmap(buf, 256 * KiB)
      assert.isFalse(yield* mmu.readRetry(lazy, s0))
      assert.isTrue(yield* mmu.readRetry(cell.h, t0))
      const v = yield* (yield* Machine).violations
      assert.deepStrictEqual(v.map((x) => x.invariant), ["notifier-seq-not-set"])
    }).pipe(Effect.provide(machineLayer())), T)

  it.live.skipIf(skip)(`§11.15 native: a hint is rounded down to a page, an unfit hint is ignored; MREMAP_DONTUNMAP works on a shared mapping (${NEEDS})`, () =>
    Effect.gen(function*() {
      const cpu = yield* Cpu
      const hint = 0x3_0000_0000
      assert.strictEqual(yield* cpu.mmap({ length: 64 * KiB, addr: hint + 77 }), hint)
      const b = yield* cpu.mmap({ length: 64 * KiB, addr: hint + 4096 + 1 })
      assert.notStrictEqual(b, hint + 4096)
      const s = yield* cpu.mmap({ length: 64 * KiB, shared: true })
      const bytes = Uint8Array.from({ length: 64 * KiB }, (_, i) => (i * 13 + 5) % 251)
      yield* cpu.write(s, bytes)
      const to = yield* cpu.mremap(s, 64 * KiB, 64 * KiB, { dontUnmap: true })
      assert.notStrictEqual(to, s)
      assert.deepStrictEqual(yield* cpu.read(to, 64 * KiB), bytes)
      assert.deepStrictEqual(yield* cpu.read(s, 64 * KiB), bytes, "shared: the old range still maps the same object")
    }).pipe(Effect.provide(machineLayer())), T)

  it.live.skipIf(skip)(`§11.11 native mprotect: unchanged flags raise nothing; a change raises PROTECTION_VMA per changed VMA over its populated part (${NEEDS})`, () =>
    Effect.gen(function*() {
      const cpu = yield* Cpu
      const mmu = yield* MmuNotifier
      const a = yield* cpu.mmap({ length: 4 * MiB, align: 4 * MiB })
      yield* cpu.write(a + MiB + 4096, Uint8Array.of(1))
      const log: Array<string> = []
      const cell: { h?: NotifierHandle } = {}
      cell.h = yield* mmu.insert(a, 4 * MiB, (r, cur) =>
        Effect.andThen(mmu.setSeq(cell.h!, cur), Effect.sync(() => (log.push(`${r.event} ${(r.start - a) / MiB} ${(r.end - a) / MiB}`), true))))
      yield* cpu.mprotect(a, 4 * MiB, PROT_RW) // unchanged
      assert.deepStrictEqual(log, [])
      yield* cpu.mprotect(a + 2 * MiB, 2 * MiB, PROT_READ) // changed, nothing populated there
      assert.deepStrictEqual(log, [])
      yield* cpu.mprotect(a, 4 * MiB, PROT_READ) // only [0, 2) changes
      assert.deepStrictEqual(log, ["protection-vma 0 2"])
      assert.deepStrictEqual(yield* (yield* Machine).violations, [])
    }).pipe(Effect.provide(machineLayer())), T)
})
