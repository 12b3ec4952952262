/**
 * The HMM and Cpu prologues both machines share (src/layers/common/HmmPrologue.ts,
 * CpuArgs.ts), checked directly on plain values: the order of the checks, and
 * that a refused call changes nothing but the injection counter it consumes.
 */
import { assert, describe, it } from "@effect/vitest"
import { Effect } from "effect"
import { BadAddress, Busy, InvalidArgument, PermissionDenied } from "../../../src/domain/Errors.ts"
import type { NotifierHandle } from "../../../src/domain/NotifierHandle.ts"
import { PROT_NONE, PROT_READ, PROT_RW } from "../../../src/domain/Prot.ts"
import type { Vma } from "../../../src/domain/Vma.ts"
import type { HmmRange } from "../../../src/services/Hmm.ts"
import { checkCpuAccess, checkedAccess, checkMmap, checkWriteArgs, ifAlive } from "../../../src/layers/common/CpuArgs.ts"
import { checkHmmFault, hmmPrologue, movedDuringWalk } from "../../../src/layers/common/HmmPrologue.ts"

const P = 4096
const notifier: NotifierHandle = { id: 1, start: 0, end: 1 << 30 }
const range = (o: Partial<HmmRange> = {}): HmmRange => ({ notifier, notifierSeq: 5, start: 0x10000, end: 0x20000, fault: true, write: false, ...o })
const machine = (o: { hmmBusy?: number; alive?: boolean; seq?: number } = {}) => {
  let seq = o.seq ?? 5
  return {
    inject: { hmmBusy: o.hmmBusy ?? 0 },
    alive: o.alive ?? true,
    notifiers: { moved: (_h: NotifierHandle, s: number) => s !== seq },
    bump: () => void seq++
  }
}
const vma = (start: number, end: number, prot = PROT_RW, kind: Vma["kind"] = "anonymous"): Vma => ({ start, end, prot, kind, shared: false })

describe("hmm_range_fault prologue shared by both machines (kernel-semantics §8, §11.5)", () => {
  it("§8 in order: an injected EBUSY first (consumed), then the window, then liveness, then a sequence already moved", () => {
    const m = machine({ hmmBusy: 1, alive: false, seq: 6 })
    const bad = range({ start: 0x10001 })
    const first = hmmPrologue(m, bad)
    assert.instanceOf(first, Busy)
    assert.strictEqual(first.reason, "hmm_range_fault: injected EBUSY")
    assert.strictEqual(m.inject.hmmBusy, 0)
    assert.strictEqual(hmmPrologue(m, bad)?.reason, "hmm_range_fault: start is not a page-aligned address")
    assert.strictEqual(hmmPrologue(m, range())?.reason, "hmm_range_fault: the address space has exited")
    const live = { ...m, alive: true }
    const moved = hmmPrologue(live, range())
    assert.instanceOf(moved, Busy)
    assert.strictEqual(moved.reason, "hmm_range_fault: notifier sequence moved before the walk")
    assert.isUndefined(hmmPrologue(live, range({ notifierSeq: 6 })))
  })

  it("§8 the window must be page aligned, above start, below 2^53, with a notifier handle", () => {
    const m = machine()
    assert.include(hmmPrologue(m, range({ end: 0x10000 }))?.reason, "end must be a page-aligned address above start")
    assert.include(hmmPrologue(m, range({ end: 2 ** 53 + P }))?.reason, "end must be a page-aligned address above start")
    assert.include(hmmPrologue(m, range({ notifier: null as unknown as NotifierHandle }))?.reason, "notifier is not a handle")
    assert.include(hmmPrologue(m, null as unknown as HmmRange)?.reason, "range must be an object")
  })

  it("§8 a sequence that moves during the walk is Busy after it", () => {
    const m = machine()
    assert.isUndefined(movedDuringWalk(m, range()))
    m.bump()
    assert.strictEqual(movedDuringWalk(m, range())?.reason, "hmm_range_fault: notifier sequence moved during the walk")
  })

  it("§11.5 with FAULT the first refused address ends the walk: hole, PROT_NONE, special → BadAddress; write to read-only → PermissionDenied", () => {
    const all = [vma(0x10000, 0x12000), vma(0x12000, 0x13000, PROT_READ), vma(0x14000, 0x15000, PROT_NONE)]
    const check = (s: number, e: number, write: boolean) => checkHmmFault(all.filter((v) => v.start < e && s < v.end), s, e, write)
    assert.isUndefined(check(0x10000, 0x13000, false))
    const ro = check(0x10000, 0x13000, true)
    assert.instanceOf(ro, PermissionDenied)
    assert.strictEqual(ro.addr, 0x12000)
    const hole = check(0x11000, 0x15000, false)
    assert.instanceOf(hole, BadAddress)
    assert.deepStrictEqual([hole.reason, hole.addr], ["hmm_range_fault: no VMA", 0x13000])
    assert.deepStrictEqual(checkHmmFault([vma(0x14000, 0x15000, PROT_NONE)], 0x14000, 0x15000, false)?.addr, 0x14000)
    assert.include(checkHmmFault([vma(0x10000, 0x11000, PROT_RW, "special")], 0x10000, 0x11000, false)?.reason, "VM_PFNMAP")
    assert.strictEqual(checkHmmFault([vma(0x10000, 0x11000)], 0x10000, 0x12000, false)?.addr, 0x11000) // trailing hole
  })
})

describe("Cpu prologues shared by both machines (design §3 Cpu contract, kernel-semantics §11.15)", () => {
  it("§11.15 mmap: one InvalidArgument per malformed option, the same on every machine; a machine may refuse a kind by name", () => {
    const reason = (o: unknown, kinds?: ReadonlyArray<Vma["kind"]>) => {
      const r = checkMmap(o as never, kinds, "the native machine")
      return r instanceof InvalidArgument ? r.reason : "ok"
    }
    assert.strictEqual(reason({ length: P }), "ok")
    assert.strictEqual(reason({ length: P, align: 1000 }), "mmap: align must be a power of two >= 4096")
    assert.strictEqual(reason({ length: P, align: 2048 }), "mmap: align must be a power of two >= 4096")
    assert.strictEqual(reason({ length: P, kind: "file" }, ["anonymous", "hugetlb"]), "mmap: kind \"file\" is not supported by the native machine (anonymous and hugetlb only)")
    assert.strictEqual(reason({ length: P, kind: "bogus" }, ["anonymous", "hugetlb"]), "mmap: kind must be anonymous, file, hugetlb or special")
    assert.strictEqual(reason({ length: P, kind: "hugetlb" }), "mmap: length of a hugetlb mapping must be a multiple of 2 MiB")
    assert.strictEqual(reason({ length: 2 ** 21, kind: "hugetlb", addr: P, fixed: true }), "mmap: addr of a hugetlb mapping must be 2 MiB aligned")
    assert.strictEqual(reason({ length: P, addr: P + 1 }), "ok") // a hint is rounded down, never refused
    assert.strictEqual(reason({ length: P, fixed: true }), "mmap: fixed needs addr")
    assert.strictEqual(reason({ length: P, name: 7 }), "mmap: name must be a string")
    const ok = checkMmap({ length: 2 ** 21, kind: "hugetlb" })
    assert.deepStrictEqual(ok, { kind: "hugetlb", prot: PROT_RW, length: 2 ** 21, minAlign: 2 ** 21, align: P })
  })

  it("design §3 loads and stores: bad arguments are BadAddress; after exit, and on a hole or read-only VMA, the body never runs", () =>
    Effect.gen(function*() {
      assert.strictEqual(checkWriteArgs(0x10000, "x" as unknown as Uint8Array)?.reason, "write: bytes must be a Uint8Array")
      assert.strictEqual(checkWriteArgs(2 ** 53, new Uint8Array(1))?.reason, "write: addr is not an address in [0, 2^53)")
      const vmas = [vma(0x10000, 0x12000), vma(0x12000, 0x13000, PROT_READ)]
      const port = { intersecting: (s: number, e: number) => vmas.filter((v) => v.start < e && s < v.end) }
      let ran = 0
      const body = (s: number, e: number) => Effect.sync(() => (ran++, [s, e]))
      assert.deepStrictEqual(yield* checkedAccess({ alive: true }, port, "read", 0x10ff0, 0x20, body), [0x10000, 0x12000])
      const ro = yield* Effect.flip(checkedAccess({ alive: true }, port, "write", 0x11ff0, 0x20, body))
      assert.instanceOf(ro, PermissionDenied)
      assert.strictEqual(ro.addr, 0x12000)
      const hole = yield* Effect.flip(checkedAccess({ alive: true }, port, "read", 0x12ff0, 0x20, body))
      assert.deepStrictEqual([hole.reason, hole.addr], ["read: no VMA maps the address", 0x13000])
      const gone = yield* Effect.flip(checkedAccess({ alive: false }, port, "read", 0x10000, 1, body))
      assert.strictEqual(gone.reason, "read: the address space has exited")
      assert.strictEqual(ran, 1)
      assert.strictEqual(checkCpuAccess([vma(0x10000, 0x11000, PROT_NONE)], 0x10000, 0x11000, false)?.reason, "VMA is PROT_NONE")
    }))

  it("design §3 a mapping call after exit is InvalidArgument naming the call, and changes nothing", () =>
    Effect.gen(function*() {
      let ran = false
      const e = yield* Effect.flip(ifAlive({ alive: false }, "munmap", Effect.sync(() => void (ran = true))))
      assert.strictEqual(e.reason, "munmap: the address space has exited")
      assert.isFalse(ran)
      yield* ifAlive({ alive: true }, "munmap", Effect.sync(() => void (ran = true)))
      assert.isTrue(ran)
    }))
})
