/**
 * The explorer checked against brute force and against itself (issue #12,
 * "Proof that it works"): schedule counts of toy programs, the preemption
 * bound against an independent enumerator, sleep-set reduction collapsing
 * independent actors and keeping every terminal state, exact replay of every
 * printed schedule, and the violations the scheduler itself finds (deadlock,
 * livelock, uncontrolled work).
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect, Semaphore } from "effect"
import * as ScheduleString from "../../src/domain/ScheduleString.ts"
import { runOnce } from "../../src/explore/Controller.ts"
import { Explore } from "../../src/explore/Explore.ts"
import { prng, Random, Replay } from "../../src/explore/Strategies.ts"
import { asActor, Interleaving } from "../../src/services/Interleaving.ts"

const binom = (n: number, k: number): number => {
  let r = 1
  for (let i = 1; i <= k; i++) r = (r * (n - k + i)) / i
  return Math.round(r)
}

/**
 * Brute force, independent of the explorer: every interleaving of actors with
 * `moves[i]` moves each, counting a preemption when the actor that moved last
 * still has moves left and another one moves. Returns how many interleavings
 * have at most `bound` preemptions.
 */
const bruteForce = (moves: ReadonlyArray<number>, bound: number): number => {
  let count = 0
  const left = [...moves]
  const go = (prev: number, preemptions: number) => {
    if (preemptions > bound) return
    if (left.every((n) => n === 0)) {
      count++
      return
    }
    for (let a = 0; a < left.length; a++) {
      if (left[a] === 0) continue
      const p = prev >= 0 && prev !== a && left[prev]! > 0 ? 1 : 0
      left[a]!--
      go(a, preemptions + p)
      left[a]!++
    }
  }
  go(-1, 0)
  return count
}

/** A toy program: actor i makes moves[i] moves; each move appends its name to a log. */
const toy = (moves: ReadonlyArray<number>, independent: boolean) =>
  Effect.gen(function*() {
    const il = yield* Interleaving
    const log: Array<string> = []
    const actor = (i: number) =>
      asActor(
        Effect.gen(function*() {
          for (let k = 0; k < moves[i]!; k++) {
            yield* il.point(`a${i}.${k}`, independent ? { footprint: { writes: [`own${i}`] } } : {})
            log.push(String(i))
          }
        }),
        `a${i}`
      )
    yield* Effect.all(moves.map((_, i) => actor(i)), { concurrency: "unbounded", discard: true })
    return log.join("")
  })

describe("Explore: counting (issue #12, proof that it works)", () => {
  it.effect("unbounded DFS without reduction runs exactly C(2n, n) schedules of 2 actors × n steps (n = 1…6)", () =>
    Effect.gen(function*() {
      for (let n = 1; n <= 6; n++) {
        const r = yield* Explore.check(toy([n, n], false), { preemptions: "all", reduction: false })
        expect(r.complete).toBe(true)
        expect(r.schedules).toBe(binom(2 * n, n))
        // every schedule of this program ends in a different log
        expect(r.terminalStates).toBe(binom(2 * n, n))
        expect(r.violation).toBeUndefined()
      }
    }))

  it.effect("with a preemption bound the count equals a brute-force enumerator (2 actors n = 1…5, 3 actors × 2, K = 0…3)", () =>
    Effect.gen(function*() {
      const shapes: ReadonlyArray<ReadonlyArray<number>> = [[1, 1], [2, 2], [3, 3], [4, 4], [5, 5], [2, 3], [2, 2, 2], [1, 2, 3]]
      for (const moves of shapes) {
        for (let k = 0; k <= 3; k++) {
          const r = yield* Explore.check(toy(moves, false), { preemptions: k, reduction: false })
          expect(r.complete).toBe(true)
          expect({ moves, k, n: r.schedules }).toEqual({ moves, k, n: bruteForce(moves, k) })
        }
      }
    }))

  it.effect("with sleep-set reduction, fully independent actors collapse to 1 schedule", () =>
    Effect.gen(function*() {
      for (const moves of [[1, 1], [3, 3], [6, 6], [2, 2, 2], [1, 3, 2]]) {
        const r = yield* Explore.check(toy(moves, true), { preemptions: "all" })
        expect(r.complete).toBe(true)
        expect(r.schedules).toBe(1)
        expect(r.pruned).toBeGreaterThan(0)
      }
    }))

  it.effect("reduction keeps every terminal state: random programs over shared variables, with and without sleep sets", () =>
    Effect.gen(function*() {
      const rand = prng(12)
      for (let trial = 0; trial < 40; trial++) {
        const nActors = 2 + Math.floor(rand() * 2)
        const nVars = 1 + Math.floor(rand() * 3)
        // each move: read or write (x = x * 3 + actor + 1) one variable, or a local step
        const plan = Array.from({ length: nActors }, () =>
          Array.from({ length: 1 + Math.floor(rand() * 3) }, () => ({ v: Math.floor(rand() * (nVars + 1)), write: rand() < 0.5 })))
        const program = Effect.gen(function*() {
          const il = yield* Interleaving
          const vars = new Array<number>(nVars).fill(0)
          const seen: Array<Array<number>> = plan.map(() => [])
          const actor = (i: number) =>
            asActor(
              Effect.gen(function*() {
                for (const m of plan[i]!) {
                  const name = `v${m.v}`
                  const local = m.v === nVars
                  yield* il.point(name, { footprint: local ? {} : m.write ? { writes: [name] } : { reads: [name] } })
                  if (local) continue
                  if (m.write) vars[m.v] = vars[m.v]! * 3 + i + 1
                  else seen[i]!.push(vars[m.v]!)
                }
              }),
              `a${i}`
            )
          yield* Effect.all(plan.map((_, i) => actor(i)), { concurrency: "unbounded", discard: true })
          return { vars, seen }
        })
        const states = (r: unknown) => r
        const full = yield* Explore.check(program, { preemptions: "all", reduction: false })
        const reduced = yield* Explore.check(program, { preemptions: "all", reduction: true })
        expect(states(reduced.complete)).toBe(true)
        expect(reduced.terminalStates).toBe(full.terminalStates)
        expect(reduced.schedules).toBeLessThanOrEqual(full.schedules)
      }
    }))
})

describe("Explore: replay is exact (issue #12)", () => {
  it.effect("every schedule string replays to an identical trace and result (random small programs, random schedules)", () =>
    Effect.gen(function*() {
      const rand = prng(99)
      for (let trial = 0; trial < 30; trial++) {
        const moves = Array.from({ length: 2 + Math.floor(rand() * 3) }, () => 1 + Math.floor(rand() * 4))
        const program = toy(moves, false)
        const first = yield* Effect.promise(() => runOnce(program, new Random(trial, 0)))
        const schedule = ScheduleString.encode(first.choices)
        const decoded = ScheduleString.decode(schedule)
        if (decoded._tag !== "Success") throw new Error("decode")
        const again = yield* Effect.promise(() => runOnce(program, new Replay(decoded.success)))
        expect(again.trace).toEqual(first.trace)
        expect(again.actors).toEqual(first.actors)
        expect(again.end).toEqual(first.end)
        const viaCheck = yield* Explore.check(program, { strategy: "replay", schedule })
        expect(viaCheck.schedules).toBe(1)
      }
    }))

  it("schedule strings round-trip and reject malformed input with a reason", () => {
    const rand = prng(5)
    for (let i = 0; i < 200; i++) {
      const xs = Array.from({ length: Math.floor(rand() * 40) }, () => Math.floor(rand() * 4))
      const s = ScheduleString.encode(xs)
      const back = ScheduleString.decode(s)
      expect(back._tag === "Success" ? back.success : undefined).toEqual(xs)
    }
    for (const bad of ["", "0.1", "s2:0", "s1:x", "s1:0*0", "s1:-1", "s1:0**2", "s1:0.", "s1:1*99999999999"]) {
      const r = ScheduleString.decode(bad)
      expect(r._tag).toBe("Failure")
      if (r._tag === "Failure") expect(r.failure.message).toMatch(/invalid schedule/)
    }
  })
})

describe("Explore: violations (issue #12)", () => {
  /** The lost update: read, yield, write back + 1. */
  const lostUpdate = Effect.gen(function*() {
    const il = yield* Interleaving
    let x = 0
    const inc = (name: string) =>
      asActor(
        Effect.gen(function*() {
          yield* il.point("read x")
          const v = x
          yield* il.point("write x")
          x = v + 1
        }),
        name
      )
    yield* Effect.all([inc("p"), inc("q")], { concurrency: "unbounded", discard: true })
    if (x !== 2) return yield* Effect.fail(`lost update: x = ${x}`)
    return x
  })

  it.effect("DFS finds a lost update, shrinks it to 1 preemption, and the schedule replays the failure", () =>
    Effect.gen(function*() {
      const r = yield* Explore.check(lostUpdate, { preemptions: 2 })
      expect(r.violation?.kind).toBe("failure")
      expect(r.violation?.detail).toContain("lost update")
      expect(r.violation?.preemptions).toBe(1)
      const again = yield* Explore.check(lostUpdate, { strategy: "replay", schedule: r.violation!.schedule })
      expect(again.violation?.detail).toBe(r.violation?.detail)
      // with no preemption allowed the bug cannot show
      const k0 = yield* Explore.check(lostUpdate, { preemptions: 0 })
      expect(k0.violation).toBeUndefined()
      expect(k0.complete).toBe(true)
    }))

  it.effect("PCT (depth 2) and random find the lost update within 200 runs", () =>
    Effect.gen(function*() {
      const pct = yield* Explore.check(lostUpdate, { strategy: "pct", depth: 2, budget: 200, seed: 1 })
      expect(pct.violation?.kind).toBe("failure")
      const rnd = yield* Explore.check(lostUpdate, { strategy: "random", budget: 200, seed: 1 })
      expect(rnd.violation?.kind).toBe("failure")
      expect(rnd.complete).toBe(false)
    }))

  it.effect("a deadlock (locks taken in opposite orders) is found by the scheduler, naming each actor's wait", () =>
    Effect.gen(function*() {
      const program = Effect.gen(function*() {
        const il = yield* Interleaving
        const a = yield* Semaphore.make(1)
        const b = yield* Semaphore.make(1)
        const take = (s: Semaphore.Semaphore, name: string) => il.blocking(`lock ${name}`, s.take(1))
        const worker = (first: Semaphore.Semaphore, fn: string, second: Semaphore.Semaphore, sn: string, who: string) =>
          asActor(
            Effect.gen(function*() {
              yield* il.point(`take ${fn}`)
              yield* take(first, fn)
              yield* il.point(`take ${sn}`)
              yield* take(second, sn)
              yield* second.release(1)
              yield* first.release(1)
            }),
            who
          )
        yield* Effect.all([worker(a, "A", b, "B", "p"), worker(b, "B", a, "A", "q")], { concurrency: "unbounded", discard: true })
      })
      const r = yield* Explore.check(program, { preemptions: 2 })
      expect(r.violation?.kind).toBe("deadlock")
      expect(r.violation?.detail).toContain("p waits for lock B")
      expect(r.violation?.detail).toContain("q waits for lock A")
    }))

  it.effect("a run that never finishes is a livelock once maxSteps decisions are spent", () =>
    Effect.gen(function*() {
      const program = Effect.gen(function*() {
        const il = yield* Interleaving
        const spin = il.point("spin", { spin: true })
        let flag = false
        yield* Effect.all([
          asActor(Effect.forever(spin), "spinner"),
          asActor(Effect.gen(function*() {
            yield* il.point("never sets")
            void flag
          }), "idle")
        ], { concurrency: "unbounded", discard: true })
        flag = true
      })
      const r = yield* Explore.check(program, { preemptions: 1, maxSteps: 500, shrink: false })
      expect(r.violation?.kind).toBe("livelock")
      expect(r.violation?.steps).toBe(500)
    }))

  it.effect("work that escapes through the host event loop is reported uncontrolled, never silently wrong", () =>
    Effect.gen(function*() {
      const program = Effect.gen(function*() {
        const il = yield* Interleaving
        yield* il.point("before")
        yield* Effect.promise(() => new Promise<void>((resolve) => setTimeout(resolve, 200)))
      })
      const r = yield* Explore.check(program, { budget: 1, shrink: false })
      expect(r.violation?.kind).toBe("uncontrolled")
    }))

  it.effect("virtual time: a sleep inside a run does not wait on the wall clock and is deterministic", () =>
    Effect.gen(function*() {
      const program = Effect.gen(function*() {
        const il = yield* Interleaving
        const order: Array<string> = []
        const sleeper = (name: string, ms: number) =>
          asActor(Effect.gen(function*() {
            yield* il.point(name)
            yield* Effect.sleep(`${ms} seconds`)
            order.push(name)
          }), name)
        yield* Effect.all([sleeper("slow", 1000), sleeper("fast", 10)], { concurrency: "unbounded", discard: true })
        return order.join(",")
      })
      const started = Date.now()
      const r = yield* Explore.check(program, { preemptions: "all" })
      expect(Date.now() - started).toBeLessThan(5_000)
      expect(r.complete).toBe(true)
      expect(r.terminalStates).toBe(1) // the 10 s sleeper always wakes first
    }))

  it.live("an interrupted check stops after the run in progress (Ctrl-C on the CLI)", () =>
    Effect.gen(function*() {
      const started = Date.now()
      // 2 actors × 12 steps unbounded: 2 704 156 schedules, far more than the half second allowed
      const r = yield* Effect.timeoutOption(Explore.check(toy([12, 12], false), { preemptions: "all", reduction: false }), "500 millis")
      expect(r._tag).toBe("None")
      expect(Date.now() - started).toBeLessThan(5_000)
    }))

  it.effect("bad options are typed errors", () =>
    Effect.gen(function*() {
      const e1 = yield* Effect.flip(Explore.check(Effect.void, { strategy: "replay" }))
      expect(e1._tag).toBe("InvalidExploreOptions")
      const e2 = yield* Effect.flip(Explore.check(Effect.void, { strategy: "replay", schedule: "s9:0" }))
      expect(e2._tag).toBe("InvalidSchedule")
      const e3 = yield* Effect.flip(Explore.check(Effect.void, { budget: 0 }))
      expect(e3.message).toContain("budget")
      const e4 = yield* Effect.flip(Explore.check(Effect.void, { preemptions: -1 }))
      expect(e4.message).toContain("preemptions")
    }))
})
