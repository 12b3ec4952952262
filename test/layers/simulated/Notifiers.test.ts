import { assert, describe, it } from "@effect/vitest"
import { Arbitrary, Deferred, Effect, Fiber, Schema } from "effect"
import type { MmuRange } from "../../../src/domain/MmuRange.ts"
import type { NotifierHandle } from "../../../src/domain/NotifierHandle.ts"
import { PROT_READ, PROT_RW } from "../../../src/domain/Prot.ts"
import { MiB, onMachine, services } from "./support.ts"

const P = 4096

describe("simulated MMU interval notifiers (kernel-semantics §7)", () => {
  it.effect("§7 every CPU change raises its event on exactly the overlapping notifiers", () =>
    onMachine(Effect.gen(function*() {
      const { cpu, mn } = yield* services
      const a = yield* cpu.mmap({ length: 64 * P })
      yield* cpu.write(a + 40 * P, new Uint8Array([1])) // §11.11: mprotect raises its event only over populated parts
      const log: Array<[string, string, number, number]> = []
      const reg = (name: string, start: number, len: number) =>
        mn.insert(start, len, (r) => Effect.sync(() => (log.push([name, r.event, r.start - a, r.end - a]), true)))
      yield* reg("A", a, 8 * P)
      yield* reg("B", a + 8 * P, 8 * P)
      yield* reg("C", a + 32 * P, 32 * P)
      yield* cpu.munmap(a + 6 * P, 4 * P) // A and B
      yield* cpu.mprotect(a + 40 * P, P, PROT_READ) // C
      yield* cpu.madviseDontNeed(a + 12 * P, P) // B
      yield* cpu.mremap(a + 33 * P, P, P, { newAddr: a + 20 * P }) // old range: C (new range: nothing registered)
      yield* cpu.mmap({ addr: a, length: P, fixed: true }) // MAP_FIXED replacement: A
      assert.deepStrictEqual(log, [
        ["A", "unmap", 6 * P, 10 * P],
        ["B", "unmap", 6 * P, 10 * P],
        ["C", "protection-vma", 40 * P, 41 * P],
        ["B", "clear", 12 * P, 13 * P],
        ["C", "unmap", 33 * P, 34 * P],
        ["A", "unmap", 0, P]
      ])
    })))

  it.effect("§7 callbacks run before the pages change: they observe the old bytes", () =>
    onMachine(Effect.gen(function*() {
      const { cpu, mn, st } = yield* services
      const a = yield* cpu.mmap({ length: 4 * P })
      yield* cpu.write(a + P, new Uint8Array([11, 12]))
      const seen: Array<string> = []
      yield* mn.insert(a, 4 * P, (r) =>
        Effect.sync(() => {
          const pte = st.pt.get((a + P) / P)
          const bytes = pte?.kind === "system" ? [...st.readFrame(pte.pfn, 0, 2)!] : []
          seen.push(`${r.event}:${bytes.join(",")}`)
          return true
        }))
      yield* cpu.madviseDontNeed(a, 4 * P)
      yield* cpu.write(a + P, new Uint8Array([13, 14]))
      yield* cpu.munmap(a, 4 * P)
      assert.deepStrictEqual(seen, ["clear:11,12", "unmap:13,14"])
    }), { thp: false }))

  it.effect("§7 curSeq is fresh; readRetry turns true; setSeq publishes", () =>
    onMachine(Effect.gen(function*() {
      const { cpu, mn } = yield* services
      const a = yield* cpu.mmap({ length: 8 * P })
      const seqs: Array<number> = []
      const setCell: { h?: NotifierHandle } = {}
      const hSet = yield* mn.insert(a, 4 * P, (_r, cur) =>
        Effect.sync(() => (seqs.push(cur), true)).pipe(Effect.tap(() => mn.setSeq(setCell.h!, cur))))
      setCell.h = hSet
      const s0 = yield* mn.readBegin(hSet)
      assert.isFalse(yield* mn.readRetry(hSet, s0))
      yield* cpu.madviseDontNeed(a, P)
      assert.isTrue(yield* mn.readRetry(hSet, s0))
      const s1 = yield* mn.readBegin(hSet)
      assert.strictEqual(s1, seqs[0]) // the callback published curSeq
      yield* cpu.madviseDontNeed(a, P)
      assert.notStrictEqual(seqs[1], seqs[0])
      assert.notStrictEqual(seqs[1], s0)
      // a callback that publishes through setSeq
      let handle = hSet
      const hOwn = yield* mn.insert(a + 4 * P, 4 * P, (_r, cur) => Effect.as(mn.setSeq(handle, cur), true))
      handle = hOwn
      const t0 = yield* mn.readBegin(hOwn)
      yield* cpu.madviseDontNeed(a + 4 * P, P)
      const t1 = yield* mn.readBegin(hOwn)
      assert.notStrictEqual(t1, t0)
      assert.isFalse(yield* mn.readRetry(hOwn, t1))
      yield* mn.setSeq(hOwn, 12345)
      assert.isTrue(yield* mn.readRetry(hOwn, t1))
    })))

  it.live("§7 readBegin waits while an invalidation is in flight; remove waits for the callback", () =>
    onMachine(Effect.gen(function*() {
      const { cpu, mn } = yield* services
      const a = yield* cpu.mmap({ length: 4 * P })
      const entered = yield* Deferred.make<void>()
      const gate = yield* Deferred.make<void>()
      const order: Array<string> = []
      const h = yield* mn.insert(a, 4 * P, () =>
        Effect.gen(function*() {
          yield* Deferred.succeed(entered, undefined)
          yield* Deferred.await(gate)
          order.push("callback-done")
          return true
        }))
      const unmapper = yield* Effect.forkChild(cpu.munmap(a, P))
      yield* Deferred.await(entered)
      const reader = yield* Effect.forkChild(Effect.tap(mn.readBegin(h), () => Effect.sync(() => order.push("readBegin"))))
      const remover = yield* Effect.forkChild(Effect.tap(mn.remove(h), () => Effect.sync(() => order.push("removed"))))
      yield* Effect.sleep("20 millis")
      assert.deepStrictEqual(order, [])
      yield* Deferred.succeed(gate, undefined)
      yield* Fiber.join(unmapper)
      yield* Fiber.join(reader)
      yield* Fiber.join(remover)
      assert.strictEqual(order[0], "callback-done")
      assert.sameMembers(order.slice(1), ["readBegin", "removed"])
      // after remove: no more callbacks, readRetry always true
      yield* cpu.munmap(a + P, P)
      assert.strictEqual(order.filter((x) => x === "callback-done").length, 1)
      assert.isTrue(yield* mn.readRetry(h, 0))
    })))

  it.live("§7 a notifier inserted during an overlapping invalidation waits in readBegin until it ends", () =>
    onMachine(Effect.gen(function*() {
      const { cpu, mn } = yield* services
      const a = yield* cpu.mmap({ length: 4 * P })
      const entered = yield* Deferred.make<void>()
      const gate = yield* Deferred.make<void>()
      yield* mn.insert(a, P, () => Effect.as(Effect.andThen(Deferred.succeed(entered, undefined), Deferred.await(gate)), true))
      const unmapper = yield* Effect.forkChild(cpu.munmap(a, 4 * P))
      yield* Deferred.await(entered)
      const late = yield* mn.insert(a + 2 * P, P, () => Effect.succeed(true))
      let began = false
      const reader = yield* Effect.forkChild(Effect.tap(mn.readBegin(late), () => Effect.sync(() => (began = true))))
      yield* Effect.sleep("20 millis")
      assert.isFalse(began)
      yield* Deferred.succeed(gate, undefined)
      yield* Fiber.join(unmapper)
      yield* Fiber.join(reader)
      assert.isTrue(began)
    })))

  it.effect("§7 injected non-blockable events are offered blockable:false first; a refusal is retried blockably", () =>
    onMachine(Effect.gen(function*() {
      const { cpu, mn, machine } = yield* services
      const a = yield* cpu.mmap({ length: 4 * P })
      const offers: Array<MmuRange & { cur: number }> = []
      const cell: { h?: NotifierHandle } = {}
      cell.h = yield* mn.insert(a, 4 * P, (r, cur) =>
        Effect.sync(() => (offers.push({ ...r, cur }), r.blockable)).pipe(
          Effect.tap((ok) => (ok ? mn.setSeq(cell.h!, cur) : Effect.void))
        ))
      yield* machine.inject({ nonBlockable: 1 })
      yield* cpu.madviseDontNeed(a, P)
      yield* cpu.madviseDontNeed(a, P)
      assert.deepStrictEqual(offers.map((o) => o.blockable), [false, true, true])
      assert.notStrictEqual(offers[0]!.cur, offers[1]!.cur)
      assert.deepStrictEqual(yield* machine.violations, [])
    })))

  it.effect("§7 a callback refusing a blockable event is recorded as a violation", () =>
    onMachine(Effect.gen(function*() {
      const { cpu, mn, machine } = yield* services
      const a = yield* cpu.mmap({ length: P })
      yield* mn.insert(a, P, () => Effect.succeed(false))
      yield* cpu.munmap(a, P)
      const v = yield* machine.violations
      assert.strictEqual(v.length, 1)
      assert.strictEqual(v[0]!.invariant, "notifier-refused-blockable")
    })))

  it.effect("§7 stats count invalidations by event and live notifiers", () =>
    onMachine(Effect.gen(function*() {
      const { cpu, mn, machine } = yield* services
      const a = yield* cpu.mmap({ length: 4 * MiB })
      const h = yield* mn.insert(a, MiB, () => Effect.succeed(true))
      yield* cpu.write(a, new Uint8Array([1])) // §11.11: mprotect of an unpopulated VMA raises nothing
      yield* cpu.mprotect(a, P, PROT_READ)
      yield* cpu.munmap(a + 2 * MiB, P)
      const s = yield* machine.stats
      assert.strictEqual(s.invalidations["protection-vma"], 1)
      assert.strictEqual(s.invalidations["unmap"], 1)
      assert.strictEqual(s.notifiersLive, 1)
      yield* mn.remove(h)
      yield* mn.remove(h)
      assert.strictEqual((yield* machine.stats).notifiersLive, 0)
    })))

  const Int = Schema.Int.check(Schema.isBetween({ minimum: 0, maximum: 1_000_000 }))

  it.effect.prop(
    "§7 §11.11 random notifiers and changes: exactly the notifiers overlapping each event are called, while the old pages are still there",
    {
      wins: Arbitrary.array(Arbitrary.schema(Int), { minLength: 1, maxLength: 8 }),
      ops: Arbitrary.array(Arbitrary.schema(Int), { minLength: 1, maxLength: 12 })
    },
    ({ wins, ops }) =>
      onMachine(Effect.gen(function*() {
        const { cpu, mn, st } = yield* services
        const N = 128
        const a = yield* cpu.mmap({ length: N * P })
        for (let i = 0; i < N; i += 3) yield* cpu.write(a + i * P, new Uint8Array([i]))
        const present = (s: number, e: number) => {
          let c = 0
          st.pt.forEachIn(s / P, e / P, () => c++)
          return c
        }
        const called: Array<number> = []
        const wrong: Array<string> = []
        const windows = wins.map((w) => {
          const s = w % N
          const len = 1 + (Math.floor(w / N) % (N - s))
          return [a + s * P, a + (s + len) * P] as const
        })
        let expectPresent = -1
        let opRange: readonly [number, number] = [0, 0]
        // the event ranges the op raises: madvise → the op window; mprotect (§11.11) → per changed VMA with a
        // present page, the VMA's part of the window (the mapping lies in one 2 MiB PMD at 4 GiB, so the
        // part starts at its first populated PMD = the part's start)
        let events: Array<readonly [number, number]> = []
        assert.strictEqual(a % (2 * MiB), 0)
        const writable: Array<boolean> = new Array(N).fill(true) // per page: the VMA's write permission
        for (let i = 0; i < windows.length; i++) {
          const [s, e] = windows[i]!
          yield* mn.insert(s, e - s, (r) =>
            Effect.sync(() => {
              called.push(i)
              if (!events.some(([es, ee]) => r.start === es && r.end === ee)) wrong.push(`range ${i}`)
              if (present(opRange[0], opRange[1]) !== expectPresent) wrong.push(`pages changed before callback ${i}`)
              return true
            }))
        }
        for (const x of ops) {
          const s = x % N
          const len = 1 + (Math.floor(x / N) % (N - s))
          opRange = [a + s * P, a + (s + len) * P]
          expectPresent = present(opRange[0], opRange[1])
          called.length = 0
          if (Math.floor(x / (N * N)) % 2 === 0) {
            events = [opRange]
            yield* cpu.madviseDontNeed(opRange[0], opRange[1] - opRange[0])
          } else {
            const w = x % 3 !== 0
            events = []
            // maximal runs of equal permission inside the window = the VMA parts; changed ones with a present page raise
            for (let i = s; i < s + len;) {
              let j = i
              while (j < s + len && writable[j] === writable[i]) j++
              if (writable[i] !== w && present(a + i * P, a + j * P) > 0) events.push([a + i * P, a + j * P])
              i = j
            }
            yield* cpu.mprotect(opRange[0], opRange[1] - opRange[0], w ? PROT_RW : PROT_READ)
            for (let i = s; i < s + len; i++) writable[i] = w
          }
          const expected = windows.flatMap(([ws, we], i) =>
            events.filter(([es, ee]) => ws < ee && es < we).map(() => i)
          )
          assert.deepStrictEqual([...called].sort((p, q) => p - q), expected.sort((p, q) => p - q))
        }
        assert.deepStrictEqual(wrong, [])
      }), { thp: false }),
    { arbitrary: { runs: 60 } }
  )
})
