/**
 * The named barriers of a scenario's threads (scenarios.md `barrier`) and the
 * runner's deadlock detection (design.md §8, bounded work). A barrier is
 * cyclic: it releases when every thread that names it has arrived, then
 * resets. Threads block only at barriers, so when every thread still running
 * waits at one, none can ever arrive: the waits fail with `BarrierDeadlock` and
 * the run records violation `deadlock` naming each thread's step and barrier,
 * at once rather than at the timeout.
 *
 * @since 0.2.0
 */
import { Deferred, Effect } from "effect"
import type { Scenario } from "../../domain/Scenario.ts"
import type { RunEnv } from "./RunEnv.ts"
import { BarrierDeadlock } from "./StepError.ts"

interface Barrier {
  readonly parties: number
  arrived: number
  gate: Deferred.Deferred<void, BarrierDeadlock>
}

/**
 * The barriers of one run.
 *
 * @category models
 * @since 0.2.0
 */
export interface Barriers {
  /** The step at `where` arrives at barrier `name`: waits for the others (or fails with `BarrierDeadlock`). */
  readonly arrive: (name: string, where: string) => Effect.Effect<void, BarrierDeadlock>
  /** A thread ended (normally or not): one fewer thread that can arrive. */
  readonly threadDone: Effect.Effect<void>
  /**
   * A thread of a fork child started, or a fork child's teardown is pending (kernel-semantics
   * §11.17): one more party that can still make progress (`threadDone` when it ends).
   */
  readonly threadStarted: Effect.Effect<void>
  /**
   * The step at `where` blocks on something other than a barrier (`wait` for
   * a process, kernel-semantics §11.17): it counts as waiting for the deadlock
   * check, and fails with `BarrierDeadlock` (naming `label`) if every running
   * thread ends up waiting.
   */
  readonly block: <A, E>(where: string, label: string, wait: Effect.Effect<A, E>) => Effect.Effect<A, E | BarrierDeadlock>
}

const partiesOf = (scenario: Scenario): Map<string, number> => {
  const usages = new Map<string, number>()
  for (const t of scenario.threads) {
    const names = new Set(t.steps.flatMap((s) => (s.op === "barrier" ? [s.name] : [])))
    for (const n of names) usages.set(n, (usages.get(n) ?? 0) + 1)
  }
  return usages
}

/**
 * The barriers of `env.scenario`, each with the number of threads that name it.
 * Under the explorer a wait is annotated (`il.blocking`) so the scheduler's own
 * deadlock report names it too.
 *
 * @category constructors
 * @since 0.2.0
 */
export const make = (env: Pick<RunEnv, "scenario" | "il" | "violations">): Effect.Effect<Barriers> =>
  Effect.gen(function*() {
    const barriers = new Map<string, Barrier>()
    for (const [name, parties] of partiesOf(env.scenario)) {
      barriers.set(name, { parties, arrived: 0, gate: yield* Deferred.make<void, BarrierDeadlock>() })
    }
    // the threads running now: those of the processes that start with the run (fork children's start later)
    const forked = new Set(env.scenario.threads.flatMap((t) => t.steps.flatMap((s) => (s.op === "fork" ? [s.as] : []))))
    // (and one for a process but the first with no threads: its teardown, see `Processes.ts`)
    let running = env.scenario.threads.filter((t) => t.process === undefined || !forked.has(t.process)).length +
      (env.scenario.processes ?? []).slice(1).filter((p) => !forked.has(p.name) && !env.scenario.threads.some((t) => t.process === p.name)).length
    const waitingAt = new Map<string, string>()
    let deadlocked = false
    const deadlock = yield* Deferred.make<never, BarrierDeadlock>()
    const checkDeadlock = Effect.suspend(() => {
      if (deadlocked || waitingAt.size === 0 || waitingAt.size < running) return Effect.void
      deadlocked = true
      env.violations.push({
        invariant: "deadlock",
        detail: `every running thread waits at a barrier no other thread can reach: ${[...waitingAt].map(([w, n]) => `${w} at ${n}`).join("; ")}`
      })
      return Effect.andThen(
        Effect.forEach(barriers, ([name, b]) => Deferred.fail(b.gate, new BarrierDeadlock({ barrier: name })), { discard: true }),
        Deferred.fail(deadlock, new BarrierDeadlock({ barrier: "(a wait for a process)" }))
      )
    })
    const arrive = (name: string, where: string) =>
      Effect.suspend(() => {
        const b = barriers.get(name)!
        if (deadlocked) return Effect.void
        const gate = b.gate
        b.arrived++
        if (b.arrived < b.parties) {
          waitingAt.set(where, `barrier ${name}`)
          const wait = Effect.ensuring(Deferred.await(gate), Effect.sync(() => waitingAt.delete(where)))
          return Effect.andThen(checkDeadlock, env.il.blocking(`barrier ${name} at ${where}`, wait))
        }
        b.arrived = 0
        // its waiters are released now, not when they next run: the deadlock
        // check must not count them as waiting any longer
        for (const [w, n] of waitingAt) if (n === `barrier ${name}`) waitingAt.delete(w)
        return Effect.flatMap(Deferred.make<void, BarrierDeadlock>(), (next) => {
          b.gate = next
          return Deferred.succeed(gate, undefined)
        })
      })
    const block = <A, E>(where: string, label: string, wait: Effect.Effect<A, E>): Effect.Effect<A, E | BarrierDeadlock> =>
      Effect.suspend(() => {
        if (deadlocked) return Effect.fail(new BarrierDeadlock({ barrier: label }))
        waitingAt.set(where, label)
        const guarded = Effect.ensuring(Effect.raceFirst(wait, Deferred.await(deadlock)), Effect.sync(() => waitingAt.delete(where)))
        return Effect.andThen(checkDeadlock, env.il.blocking(`${label} at ${where}`, guarded))
      })
    return {
      arrive,
      threadDone: Effect.andThen(Effect.sync(() => running--), checkDeadlock),
      threadStarted: Effect.sync(() => {
        running++
      }),
      block
    }
  })
