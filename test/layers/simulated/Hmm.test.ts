import { assert, describe, it } from "@effect/vitest"
import { Arbitrary, Effect, Schema } from "effect"
import type { HmmPfn } from "../../../src/domain/HmmPfn.ts"
import { PROT_NONE, PROT_READ } from "../../../src/domain/Prot.ts"
import type { MachineState } from "../../../src/layers/simulated/MachineState.ts"
import { fileByte } from "../../../src/layers/simulated/Frames.ts"
import { MiB, onMachine, services } from "./support.ts"

const P = 4096
const pfnOf = (e: HmmPfn | undefined) => (e?.page?._tag === "System" ? e.page.pfn : -1)

/** A notifier that publishes curSeq, plus a fresh sequence for it. */
const watch = (start: number, end: number) =>
  Effect.gen(function*() {
    const { mn } = yield* services
    const box: { h?: import("../../../src/domain/NotifierHandle.ts").NotifierHandle } = {}
    const h = yield* mn.insert(start, end - start, (_r, cur) => Effect.as(mn.setSeq(box.h!, cur), true))
    box.h = h
    return h
  })

describe("simulated hmm_range_fault (kernel-semantics §8)", () => {
  it.effect("§8 fault-in: anonymous read gives zero-page entries, valid, not writable, order 0", () =>
    onMachine(Effect.gen(function*() {
      const { cpu, mn, hmm } = yield* services
      const a = yield* cpu.mmap({ length: 4 * P })
      const h = yield* watch(a, a + 4 * P)
      const seq = yield* mn.readBegin(h)
      const out = yield* hmm.rangeFault({ notifier: h, notifierSeq: seq, start: a, end: a + 4 * P, fault: true, write: false })
      assert.strictEqual(out.length, 4)
      for (const e of out) assert.deepInclude(e, { valid: true, write: false, error: false, order: 0 })
      assert.deepStrictEqual(out.map(pfnOf), [0, 0, 0, 0])
    }), { thp: false }))

  it.effect("§8 write on a present read-only page breaks COW: EBUSY once (own notifier moved), then new writable frames", () =>
    onMachine(Effect.gen(function*() {
      const { cpu, mn, hmm, machine } = yield* services
      const a = yield* cpu.mmap({ length: 2 * P })
      yield* cpu.read(a, 2 * P) // zero pages
      const h = yield* watch(a, a + 2 * P)
      const r = { notifier: h, start: a, end: a + 2 * P, fault: true, write: true }
      const first = yield* Effect.flip(hmm.rangeFault({ ...r, notifierSeq: yield* mn.readBegin(h) }))
      assert.strictEqual(first._tag, "Busy")
      assert.strictEqual((yield* machine.stats).invalidations["clear"], 1)
      const out = yield* hmm.rangeFault({ ...r, notifierSeq: yield* mn.readBegin(h) })
      assert.isTrue(out.every((e) => e.valid && e.write))
      assert.isTrue(out.every((e) => pfnOf(e) > 0))
      assert.notStrictEqual(pfnOf(out[0]), pfnOf(out[1]))
    }), { thp: false }))

  it.effect("§8 EFAULT outside VMAs, in PROT_NONE and special VMAs; EPERM for write on a read-only VMA", () =>
    onMachine(Effect.gen(function*() {
      const { cpu, mn, hmm, machine } = yield* services
      const a = yield* cpu.mmap({ length: 2 * P })
      const ro = yield* cpu.mmap({ length: 2 * P, prot: PROT_READ })
      const none = yield* cpu.mmap({ length: 2 * P, prot: PROT_NONE })
      const sp = yield* cpu.mmap({ length: 2 * P, kind: "special" })
      const h = yield* watch(a, sp + 2 * P)
      const seq = yield* mn.readBegin(h)
      const f = (start: number, end: number, write: boolean) =>
        Effect.flip(hmm.rangeFault({ notifier: h, notifierSeq: seq, start, end, fault: true, write }))
      assert.strictEqual((yield* f(sp + 2 * P, sp + 3 * P, false))._tag, "BadAddress")
      assert.strictEqual((yield* f(none, none + P, false))._tag, "BadAddress")
      assert.strictEqual((yield* f(sp, sp + P, false))._tag, "BadAddress")
      const eperm = yield* f(a, ro + 2 * P, true)
      assert.strictEqual(eperm._tag, "PermissionDenied")
      assert.strictEqual(eperm.addr, ro)
      // §11.5: the walk goes in address order, so the two pages of `a` below the read-only VMA were faulted in
      // (for writing) before the EPERM; the read of the read-only VMA is fine
      assert.strictEqual((yield* machine.stats).framesLive, 2)
      const ok = yield* hmm.rangeFault({ notifier: h, notifierSeq: seq, start: ro, end: ro + 2 * P, fault: true, write: false })
      assert.isTrue(ok.every((e) => e.valid))
      // bad window arguments are BadAddress naming the argument
      const bad = yield* Effect.flip(hmm.rangeFault({ notifier: h, notifierSeq: seq, start: a + 1, end: a + P, fault: true, write: false }))
      assert.include(bad.reason, "start")
    })))

  it.effect("§8 without FAULT: missing pages not valid, holes and PROT_NONE are error entries, nothing changes", () =>
    onMachine(Effect.gen(function*() {
      const { cpu, mn, hmm, machine } = yield* services
      const a = yield* cpu.mmap({ length: 2 * P })
      yield* cpu.write(a, new Uint8Array([1]))
      const n = yield* cpu.mmap({ addr: a + 3 * P, length: P, fixed: true, prot: PROT_NONE })
      const h = yield* watch(a, a + 4 * P)
      const before = yield* machine.stats
      const out = yield* hmm.rangeFault({ notifier: h, notifierSeq: yield* mn.readBegin(h), start: a, end: n + P, fault: false, write: true })
      assert.deepStrictEqual(out.map((e) => [e.valid, e.error]), [[true, false], [false, false], [false, true], [false, true]])
      assert.isTrue(out[0]!.write)
      assert.deepStrictEqual(yield* machine.stats, before)
    }), { thp: false }))

  it.effect("§8 EBUSY when the sequence moved, and for injected Busy (N times)", () =>
    onMachine(Effect.gen(function*() {
      const { cpu, mn, hmm, machine } = yield* services
      const a = yield* cpu.mmap({ length: 2 * P })
      const h = yield* watch(a, a + 2 * P)
      const stale = yield* mn.readBegin(h)
      yield* cpu.madviseDontNeed(a, P)
      const r = { notifier: h, start: a, end: a + 2 * P, fault: true, write: false }
      assert.strictEqual((yield* Effect.flip(hmm.rangeFault({ ...r, notifierSeq: stale })))._tag, "Busy")
      yield* machine.inject({ hmmBusy: 2 })
      const seq = yield* mn.readBegin(h)
      assert.strictEqual((yield* Effect.flip(hmm.rangeFault({ ...r, notifierSeq: seq })))._tag, "Busy")
      assert.strictEqual((yield* Effect.flip(hmm.rangeFault({ ...r, notifierSeq: seq })))._tag, "Busy")
      assert.strictEqual((yield* hmm.rangeFault({ ...r, notifierSeq: seq })).length, 2)
    })))

  it.effect("§8 SimulatedOptions.inject: hmmBusy from the layer options", () =>
    onMachine(Effect.gen(function*() {
      const { cpu, mn, hmm } = yield* services
      const a = yield* cpu.mmap({ length: P })
      const h = yield* watch(a, a + P)
      const r = { notifier: h, notifierSeq: yield* mn.readBegin(h), start: a, end: a + P, fault: true, write: false }
      assert.strictEqual((yield* Effect.flip(hmm.rangeFault(r)))._tag, "Busy")
      assert.strictEqual((yield* hmm.rangeFault(r)).length, 1)
    }), { inject: { hmmBusy: 1 } }))

  it.effect("§8 a THP reports order 9 for each of its 512 pages, hugetlb too", () =>
    onMachine(Effect.gen(function*() {
      const { cpu, mn, hmm } = yield* services
      const a = yield* cpu.mmap({ length: 2 * MiB, align: 2 * MiB })
      const hg = yield* cpu.mmap({ length: 2 * MiB, kind: "hugetlb" })
      for (const base of [a, hg]) {
        const h = yield* watch(base, base + 2 * MiB)
        const out = yield* hmm.rangeFault({ notifier: h, notifierSeq: yield* mn.readBegin(h), start: base, end: base + 2 * MiB, fault: true, write: true })
        assert.strictEqual(out.length, 512)
        assert.isTrue(out.every((e, i) => e.valid && e.write && e.order === 9 && pfnOf(e) === pfnOf(out[0]) + i))
        assert.strictEqual(pfnOf(out[0]) % 512, 0)
      }
    })))

  it.effect("§8 exited address space: BadAddress", () =>
    onMachine(Effect.gen(function*() {
      const { cpu, mn, hmm } = yield* services
      const a = yield* cpu.mmap({ length: P })
      const h = yield* watch(a, a + P)
      const seq = yield* mn.readBegin(h)
      yield* cpu.exit
      const e = yield* Effect.flip(hmm.rangeFault({ notifier: h, notifierSeq: seq, start: a, end: a + P, fault: true, write: false }))
      assert.notStrictEqual(e._tag, "PermissionDenied")
    })))

  // ---- model-based property: random page-table states vs a plain model of §8 ----

  /** Layout of 6 VMAs and a hole, 4 pages each. */
  const LAYOUT = [
    { name: "anon", o: {} },
    { name: "ro", o: { prot: PROT_READ } },
    { name: "file", o: { kind: "file" as const, fileSeed: 5 } },
    { name: "shared", o: { shared: true } },
    { name: "hole", o: undefined },
    { name: "none", o: { prot: PROT_NONE } },
    { name: "special", o: { kind: "special" as const } }
  ]
  const PAGES = LAYOUT.length * 4

  /** The plain model: what hmm_range_fault must answer for this (snapshot of the) page table. */
  const model = (st: MachineState, base: number, from: number, to: number, fault: boolean, write: boolean) => {
    type Ans = { err: "BadAddress" | "PermissionDenied" } | { entries: Array<{ valid: boolean; error: boolean; pfn?: number; write?: boolean }> }
    const entries: Array<{ valid: boolean; error: boolean; pfn?: number; write?: boolean }> = []
    for (let p = from; p < to; p++) {
      const addr = base + p * P
      const v = st.vmas.find(addr)
      const inaccessible = v === undefined || !v.prot.read || v.kind === "special"
      if (fault) {
        if (inaccessible) return { err: "BadAddress" } as Ans
        if (write && !v.prot.write) return { err: "PermissionDenied" } as Ans
      }
      const pte = st.pt.get(addr / P)
      if (inaccessible) entries.push({ valid: false, error: true })
      else if (pte === undefined || pte.kind !== "system") {
        entries.push(fault ? { valid: true, error: false, ...(write ? { write: true } : {}) } : { valid: false, error: false })
      } else {
        const copies = write && fault && !pte.writable && !v.shared &&
          (pte.pfn === 0 || st.frames.frameOf(pte.pfn)?.cacheRef === true)
        entries.push({
          valid: true,
          error: false,
          ...(copies ? {} : { pfn: pte.pfn }),
          ...(write && fault ? { write: true } : { write: pte.writable })
        })
      }
    }
    return { entries } as Ans
  }

  /** The byte at `addr` without faulting anything in. */
  const peek = (st: MachineState, addr: number): number => {
    const pte = st.pt.get(addr / P)
    if (pte?.kind === "system") return st.readFrame(pte.pfn, addr % P, 1)![0]!
    const v = st.vmas.find(addr)!
    if (v.kind === "file") return fileByte(v.fileSeed!, v.pgoff + (addr - v.start))
    // a shared anonymous page zapped by DONTNEED still lives in its shmem object
    const page = v.shared ? st.cache.objects.get(v.object)?.pages.get(Math.floor((v.pgoff + (addr - v.start)) / P)) : undefined
    return page === undefined ? 0 : st.readFrame(page.head, addr % P, 1)![0]!
  }

  const Op = Schema.Int.check(Schema.isBetween({ minimum: 0, maximum: 10_000 }))

  it.effect.prop(
    "§8 rangeFault matches a plain model on random page-table states",
    { ops: Arbitrary.array(Arbitrary.schema(Op), { maxLength: 30 }), q: Arbitrary.array(Arbitrary.schema(Op), { minLength: 4, maxLength: 4 }) },
    ({ ops, q }) =>
      onMachine(Effect.gen(function*() {
        const { cpu, mn, hmm, st } = yield* services
        const base = 0x2_0000_0000
        for (let i = 0; i < LAYOUT.length; i++) {
          const o = LAYOUT[i]!.o
          if (o !== undefined) yield* cpu.mmap({ ...o, length: 4 * P, addr: base + i * 16384, fixed: true })
        }
        // random CPU activity
        for (const x of ops) {
          const page = x % PAGES
          const addr = base + page * P
          const kind = Math.floor(x / PAGES) % 3
          if (kind === 0) yield* Effect.ignore(cpu.read(addr, 1))
          else if (kind === 1) yield* Effect.ignore(cpu.write(addr, new Uint8Array([x % 256])))
          else yield* Effect.ignore(cpu.madviseDontNeed(addr, P))
        }
        const [q0, q1, q2, q3] = q as [number, number, number, number]
        const from = q0 % PAGES
        const to = from + 1 + (q1 % (PAGES - from))
        const fault = q2 % 2 === 0
        const write = q3 % 2 === 0
        const h = yield* mn.insert(base, PAGES * P, () => Effect.succeed(true))
        const expected = model(st, base, from, to, fault, write)
        const snapshot = [] as Array<number>
        for (let p = from; p < to; p++) {
          const v = st.vmas.find(base + p * P)
          if (v !== undefined && v.prot.read) snapshot.push(peek(st, base + p * P))
        }
        const call = (seq: number) => hmm.rangeFault({ notifier: h, notifierSeq: seq, start: base + from * P, end: base + to * P, fault, write })
        let got = yield* Effect.result(call(yield* mn.readBegin(h)))
        if (got._tag === "Failure" && got.failure._tag === "Busy") got = yield* Effect.result(call(yield* mn.readBegin(h)))
        if ("err" in expected) {
          assert.strictEqual(got._tag, "Failure")
          if (got._tag === "Failure") assert.strictEqual(got.failure._tag, expected.err)
          return
        }
        assert.strictEqual(got._tag, "Success")
        if (got._tag !== "Success") return
        const out = got.success
        assert.strictEqual(out.length, expected.entries.length)
        expected.entries.forEach((m, i) => {
          const e = out[i]!
          assert.strictEqual(e.valid, m.valid, `page ${from + i} valid`)
          assert.strictEqual(e.error, m.error, `page ${from + i} error`)
          if (m.pfn !== undefined) assert.strictEqual(pfnOf(e), m.pfn, `page ${from + i} pfn`)
          if (m.write !== undefined) assert.strictEqual(e.write, m.write, `page ${from + i} write`)
        })
        // contents are preserved by fault-in and COW
        const after = [] as Array<number>
        for (let p = from; p < to; p++) {
          const v = st.vmas.find(base + p * P)
          if (v !== undefined && v.prot.read) after.push(...(yield* cpu.read(base + p * P, 1)))
        }
        assert.deepStrictEqual(after, snapshot)
      }), { thp: false }),
    { arbitrary: { runs: 150 } }
  )
})
