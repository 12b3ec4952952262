/**
 * Differential test of `rangeFindOrInsert` (kernel-semantics §3) against a plain
 * model: random VMA layouts, touched pages, GPU VA windows, thresholds and
 * fault sequences; every result must equal `ChunkSize.select` plus the §3 rules
 * computed from the model. Page presence is read from the machine with a
 * non-faulting HMM walk (the machine's own behaviour is tested elsewhere).
 */
import { assert, describe, it } from "@effect/vitest"
import { Effect, Exit } from "effect"
import { alignDown, alignUp } from "../../src/domain/Address.ts"
import * as ChunkSize from "../../src/domain/ChunkSize.ts"
import { PROT_READ, PROT_RW } from "../../src/domain/Prot.ts"
import { Cpu } from "../../src/services/Cpu.ts"
import { GpuSvm } from "../../src/services/GpuSvm.ts"
import { Hmm } from "../../src/services/Hmm.ts"
import { MmuNotifier } from "../../src/services/MmuNotifier.ts"
import { mulberry32 } from "../../src/domain/Prng.ts"
import { KiB, makeDriver, MiB, svmLayer } from "../support/harness.ts"

/** mulberry32 (32-bit state; never used on addresses). */
const prng = mulberry32

interface ModelVma {
  readonly start: number
  readonly end: number
  readonly writable: boolean
}
interface ModelRange {
  readonly start: number
  readonly end: number
}

const NOTIFIER = 4 * MiB
const CHUNKS = [2 * MiB, 64 * KiB, 4096]
const BASE = 0x1_0000_0000
const LAYOUTS = 40
const FAULTS_PER_LAYOUT = 60

const runLayout = (seed: number) =>
  Effect.gen(function*() {
    const rand = prng(seed)
    const int = (n: number) => Math.floor(rand() * n)
    const cpu = yield* Cpu
    const svm = yield* GpuSvm
    const hmm = yield* Hmm
    const mmu = yield* MmuNotifier
    // Layout: mappings separated by gaps (so none merge), page-granular sizes.
    const vmas: Array<ModelVma> = []
    let cursor = BASE + int(64) * 64 * KiB
    const count = 3 + int(5)
    for (let i = 0; i < count; i++) {
      const pages = [1, 3, 16, 17, 100, 512, 700, 1024, 1500][int(9)]!
      const start = cursor + (rand() < 0.5 ? 0 : int(600) * 4096)
      const writable = rand() < 0.8
      const kind = rand() < 0.85 ? "anonymous" as const : "file" as const
      yield* cpu.mmap({ length: pages * 4096, addr: start, fixed: true, prot: writable ? PROT_RW : PROT_READ, kind, fileSeed: i })
      vmas.push({ start, end: start + pages * 4096, writable })
      cursor = start + pages * 4096 + 4096 * (1 + int(300))
    }
    const span = { start: BASE, end: cursor + 64 * KiB }
    // Touch some pages (writes on writable mappings).
    for (const v of vmas) {
      if (!v.writable) continue
      const touches = int(6)
      for (let t = 0; t < touches; t++) {
        const at = v.start + int((v.end - v.start) / 4096) * 4096
        yield* cpu.write(at, new Uint8Array(4096 * (1 + int(4))).subarray(0, Math.min(4096 * (1 + int(4)), v.end - at)))
      }
    }
    // Presence oracle: a notifier of our own over the whole span, non-faulting walks.
    const handle = yield* mmu.insert(alignDown(span.start, 4096), alignUp(span.end, 4096) - alignDown(span.start, 4096), () => Effect.succeed(true))
    const present = (start: number, end: number) =>
      Effect.flatMap(mmu.readBegin(handle), (seq) =>
        hmm.rangeFault({ notifier: handle, notifierSeq: seq, start, end, fault: false, write: false }).pipe(
          Effect.map((pfns) => pfns.every((p) => p.valid)),
          Effect.orElseSucceed(() => false)
        ))

    const ranges: Array<ModelRange> = []
    let checked = 0
    for (let f = 0; f < FAULTS_PER_LAYOUT; f++) {
      const addr = span.start + int(span.end - span.start)
      const write = rand() < 0.7
      const threshold = [0, 0, 64 * KiB, 2 * MiB][int(4)]!
      let gpuvaStart = 0
      let gpuvaEnd = 2 ** 47
      if (rand() < 0.3) {
        gpuvaStart = alignDown(addr, 4096) - int(64) * 4096
        gpuvaEnd = alignDown(addr, 4096) + 4096 * (1 + int(600))
        if (rand() < 0.1) gpuvaStart = alignDown(addr, 4096) + 4096 // window excludes the page: nothing fits
      }
      // --- model ---
      const vma = vmas.find((v) => v.start <= addr && addr < v.end)
      let expected: { tag: string } | ModelRange
      if (vma === undefined) expected = { tag: "VmaNotFound" }
      else if (write && !vma.writable) expected = { tag: "PermissionDenied" }
      else {
        const hit = ranges.find((r) => r.start <= addr && addr < r.end)
        if (hit !== undefined) expected = hit
        else {
          const nStart = alignDown(addr, NOTIFIER)
          const inputs = {
            faultAddr: addr,
            vmaStart: vma.start,
            vmaEnd: vma.end,
            notifierStart: nStart,
            notifierEnd: nStart + NOTIFIER,
            gpuvaStart,
            gpuvaEnd,
            chunkSizes: CHUNKS,
            checkPagesThreshold: threshold,
            overlapsRange: (s: number, e: number) => ranges.some((r) => r.start < e && s < r.end)
          }
          // precompute presence for the candidate windows the decision may ask about
          const presence = new Map<string, boolean>()
          for (const size of CHUNKS) {
            const w = ChunkSize.candidate(inputs, size)
            if (w !== undefined) presence.set(`${w.start}-${w.end}`, yield* present(w.start, w.end))
          }
          const w = ChunkSize.select({ ...inputs, allPagesPresent: (s, e) => presence.get(`${s}-${e}`) ?? false })
          expected = w === undefined ? { tag: "InvalidArgument" } : w
        }
      }
      // --- system under test ---
      const exit = yield* Effect.exit(svm.rangeFindOrInsert(addr, gpuvaStart, gpuvaEnd, { readOnly: !write, checkPagesThreshold: threshold }))
      const where = `seed ${seed} fault ${f} at 0x${addr.toString(16)} (write=${write}, threshold=${threshold}, gpuva=[0x${gpuvaStart.toString(16)}, 0x${gpuvaEnd.toString(16)}))`
      if ("tag" in expected) {
        assert.isTrue(Exit.isFailure(exit), `${where}: expected ${expected.tag}, got a range`)
        if (Exit.isFailure(exit)) {
          const err = yield* Effect.flip(Effect.suspend(() => exit))
          assert.strictEqual(err._tag, expected.tag, where)
        }
      } else {
        assert.isTrue(Exit.isSuccess(exit), `${where}: expected [0x${expected.start.toString(16)}, 0x${expected.end.toString(16)}), got ${Exit.isFailure(exit) ? String(exit.cause) : ""}`)
        if (Exit.isSuccess(exit)) {
          assert.deepStrictEqual([exit.value.start, exit.value.end], [expected.start, expected.end], where)
          if (!ranges.some((r) => r.start === expected.start)) ranges.push(expected)
        }
      }
      checked++
    }
    // the live ranges are exactly the model's, and never overlap
    const live = (yield* svm.ranges()).map((r) => [r.start, r.end])
    assert.deepStrictEqual(live, [...ranges].sort((a, b) => a.start - b.start).map((r) => [r.start, r.end]))
    yield* mmu.remove(handle)
    return checked
  }).pipe(Effect.provide(svmLayer(makeDriver(), { config: { notifierSize: NOTIFIER, chunkSizes: CHUNKS } })))

describe("GpuSvm §3 differential against ChunkSize.select and a plain model", () => {
  it.effect(`§3 ${LAYOUTS * FAULTS_PER_LAYOUT} random faults agree with the model`, () =>
    Effect.gen(function*() {
      let total = 0
      for (let seed = 1; seed <= LAYOUTS; seed++) total += yield* runLayout(seed)
      assert.isAtLeast(total, 2000)
    }), 120_000)
})
