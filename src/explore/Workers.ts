/**
 * A DFS split across worker threads (`gpusvm explore --workers N`), with the
 * same result whatever N.
 *
 * 1. The main thread runs the DFS in *split mode*: every run stops at its
 *    `splitAt`-th branch point and the prefix of choices up to there becomes
 *    a task (runs that end before are counted there and then). Prefixes come
 *    out in DFS order; `splitAt` grows until there are at least 4 tasks per
 *    worker (or the tree is too shallow).
 * 2. Each worker (an effect worker over `node:worker_threads`, see
 *    `@effect/platform-node` `NodeWorker`) explores the subtree below a prefix
 *    with a `Dfs` seeded with that prefix; a prefix node treats its earlier
 *    siblings as explored, so sleep sets below it are those of the whole
 *    search. Tasks are handed out as workers free up.
 * 3. Results are merged in prefix order: counts add up, terminal-state
 *    fingerprints (hashed) are united, and the violation reported is the one
 *    of the first subtree (in DFS order) that has one — the one a single DFS
 *    finds first. Subtrees after it are not started. It is then shrunk in the
 *    main thread exactly as in a single-threaded check.
 *
 * Determinism holds when the search is not cut short by `--time` or
 * `--budget` (a budget counts per task then, which depends on N).
 *
 * @since 0.2.0
 */
import { Effect, Queue, Result } from "effect"
import * as Worker from "effect/workers/Worker"
import type * as WorkerThreads from "node:worker_threads"
import { NodeWorker } from "@effect/platform-node"
import type { Scenario } from "../domain/Scenario.ts"
import * as ScheduleString from "../domain/ScheduleString.ts"
import type * as Runner from "../programs/ScenarioRunner.ts"
import { runOnce } from "./Controller.ts"
import { type CheckOptions, type CheckResult, InvalidExploreOptions, validate, verdictOf } from "./Explore.ts"
import * as ScenarioTarget from "./ScenarioTarget.ts"
import { Dfs } from "./Strategies.ts"

/** One subtree to explore. @since 0.2.0 @category models */
export interface Task {
  readonly index: number
  readonly scenario: Scenario
  readonly prefix: ReadonlyArray<number>
  readonly preemptions: number | "all"
  readonly reduction: boolean
  readonly maxSteps: number | undefined
  /** Epoch ms after which the worker stops (incomplete). */
  readonly deadline: number
}

/** What a worker found below one prefix. @since 0.2.0 @category models */
export interface Reply {
  readonly worker: number
  readonly index: number
  readonly schedules: number
  readonly pruned: number
  readonly complete: boolean
  readonly longest: number
  readonly fingerprints: ReadonlyArray<number>
  readonly violation: { readonly choices: ReadonlyArray<number>; readonly kind: string; readonly detail: string } | undefined
}

/** cyrb53: a 53-bit string hash (terminal states cross threads as numbers). */
export const hash = (s: string): number => {
  let h1 = 0xdeadbeef
  let h2 = 0x41c6ce57
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i)
    h1 = Math.imul(h1 ^ c, 2654435761)
    h2 = Math.imul(h2 ^ c, 1597334677)
  }
  h1 = Math.imul(h1 ^ (h1 >>> 16), 2246822507) ^ Math.imul(h2 ^ (h2 >>> 13), 3266489909)
  h2 = Math.imul(h2 ^ (h2 >>> 16), 2246822507) ^ Math.imul(h1 ^ (h1 >>> 13), 3266489909)
  return 4294967296 * (2097151 & h2) + (h1 >>> 0)
}

/**
 * Explores the subtree of one task (what a worker runs).
 *
 * @since 0.2.0
 * @category running
 */
export const runSubtree = async (task: Task, factory: Runner.MachineFactory, worker: number): Promise<Reply> => {
  const target = ScenarioTarget.target(task.scenario, factory)
  const bound = task.preemptions === "all" ? Infinity : task.preemptions
  const dfs = new Dfs(bound, task.reduction, task.prefix)
  const fingerprints = new Set<number>()
  let schedules = 0
  let pruned = 0
  let longest = 0
  let complete = false
  for (;;) {
    if (Date.now() > task.deadline) break
    const rec = await runOnce(target.program, dfs, task.maxSteps === undefined ? {} : { maxSteps: task.maxSteps })
    longest = Math.max(longest, rec.choices.length)
    const v = verdictOf(target, rec)
    if (v === undefined) pruned++
    else {
      schedules++
      fingerprints.add(hash(v.fingerprint))
      if (v.violation !== undefined) {
        return { worker, index: task.index, schedules, pruned, complete: false, longest, fingerprints: [...fingerprints], violation: { choices: rec.choices, ...v.violation } }
      }
    }
    if (!dfs.advance()) {
      complete = true
      break
    }
  }
  return { worker, index: task.index, schedules, pruned, complete, longest, fingerprints: [...fingerprints], violation: undefined }
}

interface Split {
  readonly tasks: ReadonlyArray<{ readonly prefix: ReadonlyArray<number>; readonly completedBefore: number }>
  /** Runs that ended in the main thread, in DFS order, each with how many prefixes came before it. */
  readonly ended: ReadonlyArray<{ readonly before: number; readonly fingerprint: number; readonly violation?: { readonly choices: ReadonlyArray<number>; readonly kind: string; readonly detail: string } }>
  readonly pruned: number
  readonly longest: number
}

const collect = async (scenario: Scenario, factory: Runner.MachineFactory, o: CheckOptions, splitAt: number): Promise<Split> => {
  const target = ScenarioTarget.target(scenario, factory)
  const bound = o.preemptions === "all" ? Infinity : (o.preemptions ?? 2)
  const dfs = new Dfs(bound, o.reduction ?? true)
  dfs.splitAt = splitAt
  const ended: Array<Split["ended"][number]> = []
  let pruned = 0
  let longest = 0
  for (;;) {
    const before = dfs.split.length
    const rec = await runOnce(target.program, dfs, o.maxSteps === undefined ? {} : { maxSteps: o.maxSteps })
    longest = Math.max(longest, rec.choices.length)
    if (dfs.split.length === before) {
      const v = verdictOf(target, rec)
      if (v === undefined) pruned++
      else {
        dfs.completedRun()
        ended.push({ before, fingerprint: hash(v.fingerprint), ...(v.violation === undefined ? {} : { violation: { choices: rec.choices, ...v.violation } }) })
        if (v.violation !== undefined) break
      }
    }
    if (!dfs.advance()) break
  }
  return { tasks: dfs.split, ended, pruned, longest }
}

/**
 * Explores a scenario's schedules with DFS across `workers` worker threads
 * spawned by `spawn` (a `node:worker_threads` Worker running
 * `src/cli/exploreWorker.ts`). Same result as `ScenarioTarget.explore` with
 * strategy dfs when the search runs to the end.
 *
 * @since 0.2.0
 * @category checking
 */
export const exploreParallel = (
  scenario: Scenario,
  factory: Runner.MachineFactory,
  options: CheckOptions,
  workers: number,
  spawn: (id: number) => WorkerThreads.Worker
): Effect.Effect<ScenarioTarget.ScenarioCheck, ScheduleString.InvalidSchedule | InvalidExploreOptions> =>
  Effect.gen(function*() {
    const problem = validate(options)
    if (problem !== undefined) return yield* new InvalidExploreOptions({ reason: problem })
    if ((options.strategy ?? "dfs") !== "dfs") return yield* new InvalidExploreOptions({ reason: "--workers splits a dfs search only" })
    const started = performance.now()
    const deadline = options.timeSeconds === undefined ? Number.MAX_SAFE_INTEGER : Date.now() + options.timeSeconds * 1000
    // 1. split
    let split = yield* Effect.promise(() => collect(scenario, factory, options, 1))
    for (let at = 2; split.tasks.length < 4 * workers && at <= 8 && split.ended.every((e) => e.violation === undefined); at++) {
      const deeper = yield* Effect.promise(() => collect(scenario, factory, options, at))
      if (deeper.tasks.length <= split.tasks.length) break
      split = deeper
    }
    const mainViolation = split.ended.find((e) => e.violation !== undefined)
    const limit = mainViolation === undefined ? split.tasks.length : mainViolation.before
    // 2. run the subtrees
    const replies = new Map<number, Reply>()
    if (limit > 0) {
      yield* Effect.scoped(Effect.gen(function*() {
        const platform = yield* Worker.WorkerPlatform
        const inbox = yield* Queue.unbounded<Reply>()
        const live: Array<Worker.Worker<Reply, Task>> = []
        for (let id = 0; id < Math.min(workers, limit); id++) {
          const w = yield* platform.spawn<Reply, Task>(id)
          yield* Effect.forkScoped(w.run((reply) => Queue.offer(inbox, reply)))
          live.push(w)
        }
        let next = 0
        const task = (index: number): Task => ({
          index,
          scenario,
          prefix: split.tasks[index]!.prefix,
          preemptions: options.preemptions ?? 2,
          reduction: options.reduction ?? true,
          maxSteps: options.maxSteps,
          deadline
        })
        for (const w of live) if (next < limit) yield* w.send(task(next++))
        let firstBad = Infinity
        let outstanding = live.length
        while (outstanding > 0) {
          const r = yield* Queue.take(inbox)
          outstanding--
          replies.set(r.index, r)
          if (r.violation !== undefined) firstBad = Math.min(firstBad, r.index)
          if (next < Math.min(limit, firstBad)) {
            yield* live[r.worker]!.send(task(next++))
            outstanding++
          }
          if (options.onProgress !== undefined) {
            const done = [...replies.values()].reduce((a, x) => a + x.schedules, 0)
            const el = performance.now() - started
            options.onProgress({ schedules: done, pruned: 0, elapsedMs: el, schedulesPerSecond: done / (el / 1000), frontier: next })
          }
        }
      }).pipe(Effect.provide(NodeWorker.layer(spawn)), Effect.orDie))
    }
    // 3. merge in DFS order
    const states = new Set<number>()
    let schedules = 0
    let pruned = split.pruned
    let longest = split.longest
    let complete = true
    let violation: { choices: ReadonlyArray<number>; kind: string; detail: string } | undefined
    let e = 0
    for (let i = 0; i <= split.tasks.length && violation === undefined; i++) {
      while (e < split.ended.length && split.ended[e]!.before <= i && violation === undefined) {
        const x = split.ended[e++]!
        schedules++
        states.add(x.fingerprint)
        if (x.violation !== undefined) violation = x.violation
      }
      if (i === split.tasks.length || violation !== undefined) break
      const r = replies.get(i)
      if (r === undefined) {
        complete = false
        break
      }
      schedules += r.schedules
      pruned += r.pruned
      longest = Math.max(longest, r.longest)
      for (const f of r.fingerprints) states.add(f)
      if (!r.complete && r.violation === undefined) complete = false
      if (r.violation !== undefined) violation = r.violation
    }
    const timeMs = performance.now() - started
    const base: CheckResult = {
      strategy: "dfs",
      preemptionBound: options.preemptions ?? 2,
      depth: undefined,
      schedules,
      pruned,
      complete: complete && violation === undefined,
      terminalStates: states.size,
      longestRun: longest,
      timeMs: Math.round(timeMs * 10) / 10,
      schedulesPerSecond: timeMs > 0 ? Math.round((schedules / (timeMs / 1000)) * 10) / 10 : 0,
      violation: undefined
    }
    if (violation === undefined) return { check: base, minimal: undefined }
    // 4. shrink in the main thread, as a single-threaded check does
    const schedule = ScheduleString.encode(violation.choices)
    const replayed = yield* ScenarioTarget.explore(scenario, factory, { ...options, strategy: "replay", schedule })
    const found = replayed.check.violation
    const decoded = ScheduleString.decode(schedule)
    if (found === undefined || Result.isFailure(decoded)) return { check: base, minimal: undefined }
    const shrunk = yield* ScenarioTarget.shrink(scenario, factory, decoded.success, found, options)
    return { check: { ...base, violation: shrunk.violation }, minimal: shrunk.minimal }
  })
