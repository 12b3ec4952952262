/**
 * One controlled execution: the explorer's scheduler.
 *
 * The program runs on a private Effect `Scheduler` whose single dispatcher
 * holds every fiber task of the run in one FIFO queue (by priority, as
 * Effect's own) and never yields on operation counts. Components reach yield
 * points through the `Interleaving` reference this controller provides; a
 * point parks the fiber (an `Effect.callback` the controller resumes). The
 * controller alternates:
 *
 * 1. drain the queue synchronously: every runnable fiber runs until it parks
 *    at a point, blocks (lock, deferred, join), sleeps or ends;
 * 2. if the root fiber ended, the run is over;
 * 3. the parked fibers are the *enabled* actors; ask the strategy which one
 *    moves, resume it, and go to 1;
 * 4. no actor enabled: fire the earliest virtual-clock timer if any (time
 *    moves only when every actor is idle); else give the host event loop two
 *    turns — if work arrived from outside (a promise, a real timer) the run is
 *    `uncontrolled`, otherwise every live actor is blocked: a `deadlock`,
 *    reported with what each actor waits for.
 *
 * A move is the work of the chosen actor from its point to its next one; a
 * fiber it wakes (a lock waiter) runs in the same move, and such a move is
 * treated as touching everything for reduction. Time is virtual: the
 * controller provides its own `Clock` whose `sleep` registers a timer; time
 * moves when every actor is idle (to the next timer) and by {@link SPIN_MS}
 * at every spin point (a retry round takes time, so a timeout on the clock
 * ends a retry loop under the explorer as it would on a real machine).
 *
 * Actors are numbered in the order they first park; a choice is a
 * *preemption* when the previous actor was still enabled (and did not park at
 * a `spin` point) and another one is chosen.
 *
 * No kernel counterpart; the design follows CHESS and loom (stateless model
 * checking: every run starts from scratch and replays its choices).
 *
 * @since 0.2.0
 */
import { Cause, Clock, Duration, Effect, Exit, Fiber, Scheduler } from "effect"
import { createHook } from "node:async_hooks"
import type { Footprint } from "../domain/Footprint.ts"
import { ActorName, Interleaving, type InterleavingApi, type PointOptions } from "../services/Interleaving.ts"

/** An actor parked at a yield point, as a strategy sees it. @since 0.2.0 @category models */
export interface Enabled {
  /** Actor index (order of first appearance). */
  readonly actor: number
  /** The label of the point it parked at. */
  readonly label: string
  /** Footprint of its next step (undefined = touches everything). */
  readonly footprint: Footprint | undefined
  /** Did it park at a spin point? */
  readonly spin: boolean
}

/** One decision of a run. @since 0.2.0 @category models */
export interface Decision {
  /** Decision number, from 0. */
  readonly step: number
  /** The enabled actors, by ascending index. */
  readonly enabled: ReadonlyArray<Enabled>
  /** The actor that moved last (undefined before the first move). */
  readonly previous: number | undefined
  /** Did the previous move touch something no footprint covers (another actor woke during it)? */
  readonly previousGlobal: boolean
  /** Actor names so far (by index). */
  readonly actors: ReadonlyArray<string>
}

/**
 * Is choosing `actor` at `d` a preemption (the previous actor is still enabled,
 * did not park at a spin point, and another one runs)?
 *
 * @since 0.2.0
 * @category predicates
 */
export const isPreemption = (d: Decision, actor: number): boolean => {
  if (d.previous === undefined || actor === d.previous) return false
  const prev = d.enabled.find((e) => e.actor === d.previous)
  return prev !== undefined && !prev.spin
}

/** What picks the next actor. `undefined` abandons the run (pruned). @since 0.2.0 @category models */
export interface Chooser {
  readonly choose: (d: Decision) => number | undefined
}

/** One step of a trace. @since 0.2.0 @category models */
export interface TraceStep {
  readonly step: number
  readonly actor: string
  /** Where the actor was parked (the point the step starts from). */
  readonly at: string
  readonly preemption: boolean
  /** Events recorded during the step (`Interleaving.note`). */
  readonly notes: ReadonlyArray<string>
}

/** How a run ended. @since 0.2.0 @category models */
export type RunEnd =
  | { readonly _tag: "Done"; readonly exit: Exit.Exit<unknown, unknown> }
  | { readonly _tag: "Deadlock"; readonly waits: ReadonlyArray<{ readonly actor: string; readonly waitsFor: string }> }
  | { readonly _tag: "StepBudget"; readonly steps: number }
  | { readonly _tag: "Pruned" }
  | { readonly _tag: "Diverged"; readonly detail: string }
  | { readonly _tag: "Uncontrolled"; readonly detail: string }

/** The record of one run. @since 0.2.0 @category models */
export interface RunRecord {
  /** The actor chosen at each decision. */
  readonly choices: ReadonlyArray<number>
  /** Actor names by index. */
  readonly actors: ReadonlyArray<string>
  readonly trace: ReadonlyArray<TraceStep>
  readonly preemptions: number
  /** Decisions that had more than one enabled actor. */
  readonly branchingDecisions: number
  readonly end: RunEnd
  /** Virtual time at the end, ms. */
  readonly virtualMs: number
}

/** Options of one run. @since 0.2.0 @category models */
export interface RunOptions {
  /** Decisions after which the run stops as `StepBudget` (a livelock or a very long run); default 200 000. */
  readonly maxSteps?: number
  /** Record the trace (default true; strategies that only count may turn it off). */
  readonly trace?: boolean
  /** Keep JavaScript stack traces during the run (default false: `Error.stackTraceLimit` is 0 while it runs). */
  readonly stackTraces?: boolean
}

interface ActorState {
  readonly index: number
  readonly name: string
  waitsFor: string | undefined
  lastLabel: string
}

interface Park {
  readonly actor: ActorState
  readonly label: string
  readonly options: PointOptions | undefined
  readonly resume: () => void
}

/** A dispatcher with one FIFO queue per priority; never flushed by anyone but the controller. */
class Queue implements Scheduler.SchedulerDispatcher {
  private buckets: Array<[number, Array<() => void>]> = []
  size = 0
  scheduleTask(task: () => void, priority: number): void {
    this.size++
    const b = this.buckets
    for (let i = 0; i < b.length; i++) {
      const bucket = b[i]!
      if (bucket[0] === priority) {
        bucket[1].push(task)
        return
      }
      if (bucket[0] > priority) {
        b.splice(i, 0, [priority, [task]])
        return
      }
    }
    b.push([priority, [task]])
  }
  /** Runs one task (lowest priority first, FIFO within); false if empty. */
  runOne(): boolean {
    const b = this.buckets
    while (b.length > 0) {
      const bucket = b[0]!
      const task = bucket[1].shift()
      if (bucket[1].length === 0) b.shift()
      if (task !== undefined) {
        this.size--
        task()
        return true
      }
    }
    return false
  }
  flush(): void {
    while (this.runOne()) {
      // drain
    }
  }
}

class ControlledScheduler implements Scheduler.Scheduler {
  readonly executionMode = "sync" as const
  readonly queue: Queue
  constructor(queue: Queue) {
    this.queue = queue
  }
  shouldYield(): boolean {
    return false
  }
  makeDispatcher(): Scheduler.SchedulerDispatcher {
    return this.queue
  }
}

/**
 * Virtual time one round of a retry loop (a spin point) takes, ms.
 *
 * @category constants
 */
export const SPIN_MS = 0.1

/** Tasks one drain may run before the run is declared a spin outside any yield point. */
const MAX_DRAIN_TASKS = 5_000_000

const macrotask = () => new Promise<void>((resolve) => setImmediate(resolve))

/**
 * Host resources (timers, file and socket requests, …) the run itself created
 * and that are still alive, by async id: an `async_hooks` hook records every
 * non-promise resource initialised while the run's own code executes (the
 * controller sets `owner.draining` around it, so a timer of the test runner or
 * of anything else in the process is never counted) and forgets it when it is
 * destroyed. This is exact where the counts of `hostResources` are not (another
 * timer of the process expiring meanwhile hides a new one from the counts).
 */
const runResources = { draining: false, live: new Map<number, string>() }
/** Kinds that are not work the host owes the run: promises, microtasks, ticks, immediates, userland resources (`effect/Fiber`). */
const isHostWork = (type: string): boolean =>
  type !== "PROMISE" && type !== "Microtask" && type !== "TickObject" && type !== "Immediate" && !type.includes("/")
const resourceHook = createHook({
  init(asyncId, type) {
    if (runResources.draining && isHostWork(type)) runResources.live.set(asyncId, type)
  },
  destroy(asyncId) {
    runResources.live.delete(asyncId)
  }
})

/** Node's active handles and requests by kind (timers, file and socket requests…): work the host event loop owes. */
const hostResources = (): Array<{ readonly kind: string; readonly count: number }> => {
  const counts = new Map<string, number>()
  for (const k of process.getActiveResourcesInfo()) if (k !== "Immediate") counts.set(k, (counts.get(k) ?? 0) + 1)
  return [...counts].map(([kind, count]) => ({ kind, count }))
}

/**
 * Runs `program` once under the controller, with `chooser` deciding every
 * move. Never rejects: every way a run can end is a {@link RunEnd}.
 *
 * @since 0.2.0
 * @category running
 */
export const runOnce = async (
  program: Effect.Effect<unknown, unknown>,
  chooser: Chooser,
  options: RunOptions = {}
): Promise<RunRecord> => {
  // JavaScript stack traces are off while a controlled run executes: the model's
  // typed errors are created by the thousand in retry paths and their stacks are
  // never shown (violations carry messages); capturing them costs a fifth of a run.
  const stackTraceLimit = Error.stackTraceLimit
  Error.stackTraceLimit = options.stackTraces === true ? stackTraceLimit : 0
  try {
    return await runControlled(program, chooser, options)
  } finally {
    Error.stackTraceLimit = stackTraceLimit
    resourceHook.disable()
    runResources.draining = false
    runResources.live.clear()
  }
}

const runControlled = async (
  program: Effect.Effect<unknown, unknown>,
  chooser: Chooser,
  options: RunOptions
): Promise<RunRecord> => {
  const maxSteps = options.maxSteps ?? 200_000
  const tracing = options.trace ?? true
  const queue = new Queue()
  const scheduler = new ControlledScheduler(queue)
  const actors: Array<ActorState> = []
  const byFiber = new WeakMap<object, ActorState>()
  const names = new Set<string>()
  const parked: Array<Park> = []
  const timers: Array<{ readonly at: number; readonly seq: number; readonly fire: () => void }> = []
  let timerSeq = 0
  let now = 0
  let free = false // after the verdict: points pass straight through
  let current: ActorState | undefined
  let othersMoved = false
  let notes: Array<string> = []

  const actorOf = (fiber: Fiber.Fiber<unknown, unknown> | undefined): ActorState | undefined => {
    if (fiber === undefined) return undefined
    const known = byFiber.get(fiber)
    if (known !== undefined) return known
    const base = fiber.getRef(ActorName) ?? "actor"
    let name = base
    for (let k = 2; names.has(name); k++) name = `${base}#${k}`
    names.add(name)
    const a: ActorState = { index: actors.length, name, waitsFor: undefined, lastLabel: "start" }
    actors.push(a)
    byFiber.set(fiber, a)
    return a
  }

  const api: InterleavingApi = {
    controlled: true,
    point: (label, pointOptions) =>
      Effect.callback<void>((resume) => {
        if (free) return resume(Effect.void)
        const a = actorOf(Fiber.getCurrent())
        if (a === undefined) return resume(Effect.void)
        if (current !== undefined && a !== current) othersMoved = true
        // a retry round takes time: timeouts measured on the clock expire under the explorer too
        if (pointOptions?.spin === true) now += SPIN_MS
        a.lastLabel = label
        parked.push({ actor: a, label, options: pointOptions, resume: () => resume(Effect.void) })
      }),
    blocking: (what, effect) =>
      Effect.suspend(() => {
        const a = actorOf(Fiber.getCurrent())
        if (a === undefined) return effect
        const before = a.waitsFor
        a.waitsFor = what
        return Effect.ensuring(effect, Effect.sync(() => {
          a.waitsFor = before
        }))
      }),
    note: (text) =>
      Effect.sync(() => {
        if (!tracing || free) return
        // a note made by another actor during this step (one it woke) says whose it is
        const a = actorOf(Fiber.getCurrent())
        notes.push(a === undefined || a === current ? text : `(${a.name}) ${text}`)
      })
  }

  const clock: Clock.Clock = {
    currentTimeMillisUnsafe: () => now,
    currentTimeMillis: Effect.sync(() => now),
    currentTimeNanosUnsafe: () => BigInt(Math.round(now * 1e6)),
    currentTimeNanos: Effect.sync(() => BigInt(Math.round(now * 1e6))),
    monotonicTimeNanosUnsafe: () => BigInt(Math.round(now * 1e6)),
    monotonicTimeNanos: Effect.sync(() => BigInt(Math.round(now * 1e6))),
    sleep: (d) =>
      Effect.callback<void>((resume) => {
        const ms = Duration.toMillis(d)
        const t = { at: now + (Number.isFinite(ms) && ms > 0 ? ms : 0), seq: timerSeq++, fire: () => resume(Effect.void) }
        timers.push(t)
        return Effect.sync(() => {
          const i = timers.indexOf(t)
          if (i >= 0) timers.splice(i, 1)
        })
      })
  }

  const baseline = new Map(hostResources().map((r) => [r.kind, r.count]))
  runResources.live.clear()
  resourceHook.enable()
  runResources.draining = true
  const root = Effect.runFork(
    program.pipe(Effect.provideService(Interleaving, api), Effect.provideService(Clock.Clock, clock)),
    { scheduler }
  )
  runResources.draining = false

  const drain = (): boolean => {
    let n = 0
    runResources.draining = true
    try {
      while (queue.runOne()) {
        if (++n > MAX_DRAIN_TASKS) return false
      }
      return true
    } finally {
      runResources.draining = false
    }
  }

  const choices: Array<number> = []
  const trace: Array<TraceStep> = []
  let preemptions = 0
  let branching = 0
  let previous: number | undefined
  let previousGlobal = false
  let end: RunEnd | undefined

  const finish = async (e: RunEnd): Promise<void> => {
    end = e
    free = true
    for (const p of parked.splice(0)) p.resume()
    root.interruptUnsafe()
    for (let turn = 0; turn < 3 && root.pollUnsafe() === undefined; turn++) {
      drain()
      for (const t of timers.splice(0)) t.fire()
      drain()
      if (root.pollUnsafe() === undefined) await macrotask()
    }
  }

  while (end === undefined) {
    if (!drain()) {
      await finish({ _tag: "Uncontrolled", detail: `more than ${MAX_DRAIN_TASKS} tasks ran without reaching a yield point (a loop without a point?)` })
      break
    }
    const exit = root.pollUnsafe()
    if (exit !== undefined) {
      end = { _tag: "Done", exit }
      break
    }
    if (parked.length === 0) {
      if (timers.length > 0) {
        let k = 0
        for (let i = 1; i < timers.length; i++) {
          const a = timers[i]!
          const b = timers[k]!
          if (a.at < b.at || (a.at === b.at && a.seq < b.seq)) k = i
        }
        const t = timers.splice(k, 1)[0]!
        now = Math.max(now, t.at)
        t.fire()
        continue
      }
      // Nothing runnable inside the run: either outside work is pending, or a deadlock.
      await macrotask()
      await macrotask()
      if (queue.size > 0 || parked.length > 0 || root.pollUnsafe() !== undefined) {
        await finish({ _tag: "Uncontrolled", detail: "work arrived through the host event loop (a promise or a real timer inside the run)" })
        break
      }
      const counted = hostResources().filter((r) => (baseline.get(r.kind) ?? 0) < r.count).map((r) => r.kind)
      const pending = [...new Set([...counted, ...runResources.live.values()])]
      if (pending.length > 0) {
        await finish({
          _tag: "Uncontrolled",
          detail: `the run waits on the host event loop (${pending.join(", ")} pending), not on another actor`
        })
        break
      }
      const waits = actors.map((a) => ({ actor: a.name, waitsFor: a.waitsFor ?? `blocked after ${a.lastLabel}` }))
      await finish({ _tag: "Deadlock", waits: waits.length > 0 ? waits : [{ actor: "main", waitsFor: "blocked before any yield point" }] })
      break
    }
    if (choices.length >= maxSteps) {
      await finish({ _tag: "StepBudget", steps: choices.length })
      break
    }
    parked.sort((a, b) => a.actor.index - b.actor.index)
    const enabled: Array<Enabled> = parked.map((p) => ({
      actor: p.actor.index,
      label: p.label,
      footprint: p.options?.footprint,
      spin: p.options?.spin === true
    }))
    const decision: Decision = { step: choices.length, enabled, previous, previousGlobal, actors: actors.map((a) => a.name) }
    const chosen = chooser.choose(decision)
    if (chosen === undefined) {
      await finish({ _tag: "Pruned" })
      break
    }
    const at = parked.findIndex((p) => p.actor.index === chosen)
    if (at < 0) {
      await finish({
        _tag: "Diverged",
        detail: `step ${choices.length}: actor ${chosen} is not enabled (enabled: ${enabled.map((e) => `${e.actor} ${actors[e.actor]!.name}`).join(", ")})`
      })
      break
    }
    if (enabled.length > 1) branching++
    const preempt = isPreemption(decision, chosen)
    if (preempt) preemptions++
    const p = parked.splice(at, 1)[0]!
    choices.push(chosen)
    current = p.actor
    othersMoved = false
    notes = []
    p.resume()
    if (!drain()) {
      await finish({ _tag: "Uncontrolled", detail: `more than ${MAX_DRAIN_TASKS} tasks ran without reaching a yield point (a loop without a point?)` })
    }
    if (tracing) trace.push({ step: choices.length - 1, actor: p.actor.name, at: p.label, preemption: preempt, notes })
    previous = chosen
    previousGlobal = othersMoved
    current = undefined
  }

  return {
    choices,
    actors: actors.map((a) => a.name),
    trace,
    preemptions,
    branchingDecisions: branching,
    end: end!,
    virtualMs: now
  }
}

/** A one-line description of a run end. @since 0.2.0 @category formatting */
export const describeEnd = (e: RunEnd): string => {
  switch (e._tag) {
    case "Done":
      return Exit.isSuccess(e.exit) ? "completed" : `failed: ${Cause.pretty(e.exit.cause).split("\n")[0]}`
    case "Deadlock":
      return `deadlock: ${e.waits.map((w) => `${w.actor} waits for ${w.waitsFor}`).join("; ")}`
    case "StepBudget":
      return `no progress: ${e.steps} steps without finishing (livelock?)`
    case "Pruned":
      return "pruned"
    case "Diverged":
      return `schedule diverged: ${e.detail}`
    case "Uncontrolled":
      return `uncontrolled: ${e.detail}`
  }
}
