/**
 * A DFS split across worker threads (`gpusvm explore --workers N`), with the
 * same result whatever N.
 *
 * 1. The main thread runs the left-most schedule (the "spine") in *split
 *    mode*: at every branch point along it, each other allowed candidate
 *    becomes a task (the prefix of choices up to and including it). A spine
 *    of L branch points gives about L tasks of falling size, handed out
 *    largest first as workers free up.
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
import { type CheckOptions, type CheckResult, InvalidExploreOptions, resultOf, validate, verdictOf } from "./Explore.ts"
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
  /** Most schedules to run below this prefix (`--budget` applies per subtree with workers). */
  readonly budget: number | undefined
  /** The runner's options (kernel profile). */
  readonly runOptions: Runner.RunOptions
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

/**
 * cyrb53: a 53-bit string hash (terminal states cross threads as numbers).
 *
 * @category functions
 */
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
export const runSubtree = async (task: Task, factory: Runner.StackFactory, worker: number, signal?: AbortSignal): Promise<Reply> => {
  const target = ScenarioTarget.target(task.scenario, factory, task.runOptions)
  const bound = task.preemptions === "all" ? Infinity : task.preemptions
  const dfs = new Dfs(bound, task.reduction, task.prefix)
  const fingerprints = new Set<number>()
  let schedules = 0
  let pruned = 0
  let longest = 0
  let complete = false
  let lastTurn = Date.now()
  for (;;) {
    if (Date.now() > task.deadline || (task.budget !== undefined && schedules + pruned >= task.budget) || signal?.aborted === true) break
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
    // a turn of the event loop now and then, so a close request from the main thread gets through
    if (Date.now() - lastTurn >= 100) {
      lastTurn = Date.now()
      await new Promise<void>((resolve) => setImmediate(resolve))
    }
  }
  return { worker, index: task.index, schedules, pruned, complete, longest, fingerprints: [...fingerprints], violation: undefined }
}

/** One item of the search in DFS order: a schedule already run in the main thread, or a subtree for a worker. */
type Item =
  | { readonly _tag: "Run"; readonly fingerprint: number; readonly violation?: { readonly choices: ReadonlyArray<number>; readonly kind: string; readonly detail: string } }
  | { readonly _tag: "Pruned" }
  | { readonly _tag: "Task"; readonly prefix: ReadonlyArray<number> }

/**
 * Runs the left-most schedule below `prefix` in split mode: the run itself,
 * then every sibling subtree along it, in DFS order (a deeper sibling is
 * explored before a shallower one; siblings in candidate order).
 */
const expand = async (
  scenario: Scenario,
  factory: Runner.StackFactory,
  o: CheckOptions,
  prefix: ReadonlyArray<number>,
  runOptions: Runner.RunOptions
): Promise<{ readonly items: Array<Item>; readonly longest: number }> => {
  const target = ScenarioTarget.target(scenario, factory, runOptions)
  const bound = o.preemptions === "all" ? Infinity : (o.preemptions ?? 2)
  const dfs = new Dfs(bound, o.reduction ?? true, prefix)
  dfs.splitting = true
  const rec = await runOnce(target.program, dfs, o.maxSteps === undefined ? {} : { maxSteps: o.maxSteps })
  const v = verdictOf(target, rec)
  const first: Item = v === undefined
    ? { _tag: "Pruned" }
    : { _tag: "Run", fingerprint: hash(v.fingerprint), ...(v.violation === undefined ? {} : { violation: { choices: rec.choices, ...v.violation } }) }
  const subtrees = [...dfs.split].sort((a, b) => b.depth - a.depth || a.rank - b.rank).map((t): Item => ({ _tag: "Task", prefix: t.prefix }))
  return { items: [first, ...subtrees], longest: rec.choices.length }
}

/**
 * The split: starting from the whole tree, expand the largest subtree (the
 * shortest prefix) in place until there are `want` subtrees, a main-thread
 * run finds a violation, or `maxRuns` spine runs were spent.
 */
const collect = async (scenario: Scenario, factory: Runner.StackFactory, o: CheckOptions, want: number, maxRuns: number, runOptions: Runner.RunOptions) => {
  let items: Array<Item> = [{ _tag: "Task", prefix: [] }]
  let longest = 0
  for (let runs = 0; runs < maxRuns; runs++) {
    const tasks = items.filter((x) => x._tag === "Task").length
    if (runs > 0 && tasks >= want) break
    if (items.some((x) => x._tag === "Run" && x.violation !== undefined)) break
    let at = -1
    for (let k = 0; k < items.length; k++) {
      const x = items[k]!
      if (x._tag === "Task" && (at < 0 || x.prefix.length < (items[at] as { prefix: ReadonlyArray<number> }).prefix.length)) at = k
    }
    if (at < 0) break
    const e = await expand(scenario, factory, o, (items[at] as { prefix: ReadonlyArray<number> }).prefix, runOptions)
    longest = Math.max(longest, e.longest)
    items = [...items.slice(0, at), ...e.items, ...items.slice(at + 1)]
  }
  return { items, longest }
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
  factory: Runner.StackFactory,
  options: CheckOptions,
  workers: number,
  spawn: (id: number) => WorkerThreads.Worker,
  runOptions: Runner.RunOptions = {}
): Effect.Effect<ScenarioTarget.ScenarioCheck, ScheduleString.InvalidSchedule | InvalidExploreOptions> =>
  Effect.gen(function*() {
    const problem = validate(options)
    if (problem !== undefined) return yield* new InvalidExploreOptions({ reason: problem })
    if ((options.strategy ?? "dfs") !== "dfs") return yield* new InvalidExploreOptions({ reason: "--workers splits a dfs search only" })
    const started = performance.now()
    const deadline = options.timeSeconds === undefined ? Number.MAX_SAFE_INTEGER : Date.now() + options.timeSeconds * 1000
    // 1. split
    const split = yield* Effect.promise(() => collect(scenario, factory, options, 8 * workers, 64, runOptions))
    const items = split.items
    const firstMainViolation = items.findIndex((x) => x._tag === "Run" && x.violation !== undefined)
    const horizon = firstMainViolation < 0 ? items.length : firstMainViolation
    // tasks before the horizon, largest (shortest prefix) first
    const order = items
      .map((x, k) => ({ x, k }))
      .filter((t) => t.k < horizon && t.x._tag === "Task")
      .sort((a, b) => (a.x as { prefix: ReadonlyArray<number> }).prefix.length - (b.x as { prefix: ReadonlyArray<number> }).prefix.length || a.k - b.k)
      .map((t) => t.k)
    // 2. run the subtrees
    const replies = new Map<number, Reply>()
    if (order.length > 0) {
      yield* Effect.scoped(Effect.gen(function*() {
        const platform = yield* Worker.WorkerPlatform
        const inbox = yield* Queue.unbounded<Reply>()
        const live: Array<Worker.Worker<Reply, Task>> = []
        for (let id = 0; id < Math.min(workers, order.length); id++) {
          const w = yield* platform.spawn<Reply, Task>(id)
          yield* Effect.forkScoped(w.run((reply) => Queue.offer(inbox, reply)))
          live.push(w)
        }
        let next = 0
        let firstBad = horizon
        const task = (index: number): Task => ({
          index,
          scenario,
          prefix: (items[index] as { prefix: ReadonlyArray<number> }).prefix,
          preemptions: options.preemptions ?? 2,
          reduction: options.reduction ?? true,
          maxSteps: options.maxSteps,
          budget: options.budget,
          runOptions,
          deadline
        })
        const sendNext = (w: Worker.Worker<Reply, Task>) =>
          Effect.suspend(() => {
            while (next < order.length && order[next]! > firstBad) next++
            if (next >= order.length) return Effect.succeed(false)
            return Effect.as(w.send(task(order[next++]!)), true)
          })
        let outstanding = 0
        for (const w of live) if (yield* sendNext(w)) outstanding++
        while (outstanding > 0) {
          const r = yield* Queue.take(inbox)
          outstanding--
          replies.set(r.index, r)
          if (r.violation !== undefined) firstBad = Math.min(firstBad, r.index)
          if (yield* sendNext(live[r.worker]!)) outstanding++
          if (options.onProgress !== undefined) {
            const done = [...replies.values()].reduce((a, x) => a + x.schedules, 0)
            const el = performance.now() - started
            options.onProgress({ schedules: done, pruned: 0, elapsedMs: el, schedulesPerSecond: done / (el / 1000), frontier: order.length - next })
          }
        }
      }).pipe(Effect.provide(NodeWorker.layer(spawn)), Effect.orDie))
    }
    // 3. merge in DFS order
    const states = new Set<number>()
    let schedules = 0
    let pruned = 0
    let longest = split.longest
    let complete = true
    let violation: { choices: ReadonlyArray<number>; kind: string; detail: string } | undefined
    for (let i = 0; i < items.length && violation === undefined; i++) {
      const x = items[i]!
      if (x._tag === "Pruned") {
        pruned++
        continue
      }
      if (x._tag === "Run") {
        schedules++
        states.add(x.fingerprint)
        violation = x.violation
        continue
      }
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
    const base: CheckResult = resultOf({
      strategy: "dfs",
      preemptionBound: options.preemptions ?? 2,
      depth: undefined,
      schedules,
      pruned,
      complete: complete && violation === undefined,
      terminalStates: states.size,
      longestRun: longest,
      violation: undefined
    }, performance.now() - started)
    if (violation === undefined) return { check: base, minimal: undefined }
    // 4. shrink in the main thread, as a single-threaded check does
    const schedule = ScheduleString.encode(violation.choices)
    const replayed = yield* ScenarioTarget.explore(scenario, factory, { ...options, strategy: "replay", schedule }, runOptions)
    const found = replayed.check.violation
    const decoded = ScheduleString.decode(schedule)
    if (found === undefined || Result.isFailure(decoded)) return { check: base, minimal: undefined }
    const shrunk = yield* ScenarioTarget.shrink(scenario, factory, decoded.success, found, options, runOptions)
    return { check: { ...base, violation: shrunk.violation }, minimal: shrunk.minimal }
  })
