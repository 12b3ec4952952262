/**
 * `Explore.check`: the model checker. Runs a program under the controlled
 * scheduler (`Controller.ts`) again and again, one schedule per run, as the
 * chosen strategy (`Strategies.ts`) decides, until a run violates something,
 * the bounded space is exhausted (`complete: true`), or the budget (schedules
 * or time) is spent. A violation is then shrunk (`Shrink.ts`) to the fewest
 * preemptions, and reported with its schedule string and trace; replaying that
 * string (`strategy: "replay"`) reproduces the run exactly.
 *
 * What counts as a violation of a run: the program failing (a typed error or a
 * defect), a deadlock (every live actor blocked, found by the scheduler), a
 * livelock (the run exceeds `maxSteps` decisions), a run that escapes the
 * scheduler (`uncontrolled`), and whatever a {@link Target}'s `judge` says
 * (a scenario's expectations and invariants).
 *
 * @since 0.2.0
 */
import { Cause, Effect, Exit, Result, Schema } from "effect"
import * as ScheduleString from "../domain/ScheduleString.ts"
import { type Chooser, describeEnd, type RunRecord, runOnce, type TraceStep } from "./Controller.ts"
import { Dfs, Pct, Random, Replay } from "./Strategies.ts"

/** A strategy name. @since 0.2.0 @category models */
export type StrategyName = "dfs" | "pct" | "random" | "replay"

/** Options of a check. @since 0.2.0 @category models */
export interface CheckOptions {
  /** Default `"dfs"`. `"replay"` needs `schedule`. */
  readonly strategy?: StrategyName
  /** The schedule string to replay. */
  readonly schedule?: string
  /** DFS preemption bound (default 2); `"all"` = unbounded. */
  readonly preemptions?: number | "all"
  /** PCT bug depth (default 3). */
  readonly depth?: number
  /** Most schedules to run (default: dfs 1 000 000, pct/random 1 000). */
  readonly budget?: number
  /** Wall-clock budget in seconds (default none). */
  readonly timeSeconds?: number
  /** Seed of pct/random (default 0). */
  readonly seed?: number
  /** Sleep-set reduction in DFS (default true). */
  readonly reduction?: boolean
  /** Decisions per run before it is a livelock (default 200 000). */
  readonly maxSteps?: number
  /** Shrink a violation to the fewest preemptions (default true). */
  readonly shrink?: boolean
  /** Called about every 250 ms with the progress so far. */
  readonly onProgress?: (p: Progress) => void
}

/** Progress of a check. @since 0.2.0 @category models */
export interface Progress {
  readonly schedules: number
  readonly pruned: number
  readonly elapsedMs: number
  readonly schedulesPerSecond: number
  /** DFS: depth of the current branch point stack. */
  readonly frontier: number
}

/** A violation found, with the run that shows it. @since 0.2.0 @category models */
export interface Violation {
  /** `failure`, `defect`, `deadlock`, `livelock`, `uncontrolled`, `diverged`, or a target's own kind. */
  readonly kind: string
  readonly detail: string
  /** The (shrunk) failing schedule, replayable. */
  readonly schedule: string
  readonly preemptions: number
  readonly steps: number
  readonly actors: ReadonlyArray<string>
  readonly trace: ReadonlyArray<TraceStep>
  /** The schedule as first found, before shrinking. */
  readonly found: { readonly schedule: string; readonly preemptions: number; readonly steps: number }
}

/** The result of a check. @since 0.2.0 @category models */
export interface CheckResult {
  readonly strategy: StrategyName
  readonly preemptionBound: number | "all" | undefined
  readonly depth: number | undefined
  /** Runs that reached an end (not pruned). */
  readonly schedules: number
  /** Runs abandoned by the reduction or the preemption bound. */
  readonly pruned: number
  /** DFS: was the (bounded) space exhausted? Always false for pct/random. */
  readonly complete: boolean
  /** Distinct terminal states (by the target's fingerprint). */
  readonly terminalStates: number
  /** Longest run, in decisions. */
  readonly longestRun: number
  readonly timeMs: number
  readonly schedulesPerSecond: number
  readonly violation: Violation | undefined
}

/** What a target says of one finished run. @since 0.2.0 @category models */
export interface Verdict {
  readonly violation?: { readonly kind: string; readonly detail: string }
  /** The terminal state, as a string (equal strings = the same state). */
  readonly fingerprint: string
}

/**
 * What the explorer runs: a program and how to judge a run of it. A plain
 * effect is a target whose violation is its failure and whose terminal state
 * is its success value (JSON).
 *
 * @since 0.2.0
 * @category models
 */
export interface Target<A> {
  readonly program: Effect.Effect<A, unknown>
  readonly judge?: (exit: Exit.Exit<A, unknown>) => Verdict
}

const defaultJudge = (exit: Exit.Exit<unknown, unknown>): Verdict => {
  if (Exit.isSuccess(exit)) {
    let fp: string
    try {
      fp = JSON.stringify(exit.value) ?? "undefined"
    } catch {
      fp = String(exit.value)
    }
    return { fingerprint: fp }
  }
  const failure = exit.cause.reasons.find((r) => r._tag === "Fail")
  const kind = failure !== undefined ? "failure" : "defect"
  const detail = failure !== undefined && failure._tag === "Fail"
    ? describeError(failure.error)
    : Cause.pretty(exit.cause).split("\n").slice(0, 3).join(" ")
  return { violation: { kind, detail }, fingerprint: `${kind}:${detail}` }
}

const describeError = (e: unknown): string => {
  if (e instanceof Error) return `${(e as { _tag?: string })._tag ?? e.name}: ${e.message}`
  if (typeof e === "object" && e !== null && "_tag" in e) return String((e as { _tag: unknown })._tag)
  return String(e)
}

/**
 * The verdict of a run record (ends other than Done are violations of their own).
 *
 * @category functions
 */
export const verdictOf = <A>(target: Target<A>, rec: RunRecord): Verdict | undefined => {
  const e = rec.end
  switch (e._tag) {
    case "Done":
      return (target.judge ?? defaultJudge)(e.exit as Exit.Exit<A, unknown>)
    case "Pruned":
      return undefined
    case "Deadlock":
      return { violation: { kind: "deadlock", detail: describeEnd(e) }, fingerprint: "deadlock" }
    case "StepBudget":
      return { violation: { kind: "livelock", detail: describeEnd(e) }, fingerprint: "livelock" }
    case "Uncontrolled":
      return { violation: { kind: "uncontrolled", detail: describeEnd(e) }, fingerprint: "uncontrolled" }
    case "Diverged":
      return { violation: { kind: "diverged", detail: describeEnd(e) }, fingerprint: "diverged" }
  }
}

/**
 * Runs one schedule of `target` under `chooser`.
 *
 * @category functions
 */
export const runTarget = <A>(target: Target<A>, chooser: Chooser, maxSteps: number | undefined): Promise<RunRecord> =>
  runOnce(target.program, chooser, maxSteps === undefined ? {} : { maxSteps })

/**
 * A failing run turned into a reported violation: `rec` is the run shown (after
 * shrinking), `found` the schedule as first found.
 *
 * @since 0.2.0
 * @category constructors
 */
export const violationOf = (
  rec: RunRecord,
  v: { readonly kind: string; readonly detail: string },
  found: Violation["found"]
): Violation => ({
  kind: v.kind,
  detail: v.detail,
  schedule: ScheduleString.encode(rec.choices),
  preemptions: rec.preemptions,
  steps: rec.choices.length,
  actors: rec.actors,
  trace: rec.trace,
  found
})

/** How a run was first found, for {@link Violation.found}. */
const foundOf = (rec: RunRecord): Violation["found"] => ({
  schedule: ScheduleString.encode(rec.choices),
  preemptions: rec.preemptions,
  steps: rec.choices.length
})

/**
 * The result record of a search that ran `schedules` runs in `timeMs`
 * (times rounded to 0.1).
 *
 * @since 0.2.0
 * @category constructors
 */
export const resultOf = (r: Omit<CheckResult, "timeMs" | "schedulesPerSecond">, timeMs: number): CheckResult => ({
  ...r,
  timeMs: Math.round(timeMs * 10) / 10,
  schedulesPerSecond: timeMs > 0 ? Math.round((r.schedules / (timeMs / 1000)) * 10) / 10 : 0
})

/**
 * Shrinks a failing run to fewer preemptions: for each preemption, try the
 * schedule that keeps the previous actor instead (the rest replayed
 * leniently); keep any variant that still fails with the same kind and has
 * fewer preemptions (or as many and fewer steps); repeat to a fixpoint.
 *
 * @since 0.2.0
 * @category shrinking
 */
export const shrinkRun = async <A>(
  target: Target<A>,
  rec: RunRecord,
  kind: string,
  maxSteps: number | undefined,
  attempts = 200
): Promise<RunRecord> => {
  let best = rec
  let tries = 0
  let improved = true
  while (improved && tries < attempts) {
    improved = false
    const preemptAt = best.trace.filter((t) => t.preemption).map((t) => t.step)
    const candidates: Array<ReadonlyArray<number>> = []
    for (const at of preemptAt) {
      const prev = best.choices[at - 1]
      if (prev === undefined) continue
      // keep running the previous actor at the preemption; later choices as recorded
      candidates.push([...best.choices.slice(0, at), prev, ...best.choices.slice(at)])
      // or drop the preempting move's switch entirely (the rest as recorded)
      candidates.push([...best.choices.slice(0, at), ...best.choices.slice(at + 1)])
    }
    // shorter tails
    if (best.choices.length > 1) candidates.push(best.choices.slice(0, Math.floor(best.choices.length / 2)))
    for (const c of candidates) {
      if (++tries > attempts) break
      const r = await runTarget(target, new Replay(c, true), maxSteps)
      const v = verdictOf(target, r)
      if (v?.violation?.kind !== kind) continue
      if (r.preemptions < best.preemptions || (r.preemptions === best.preemptions && r.choices.length < best.choices.length)) {
        best = r
        improved = true
        break
      }
    }
  }
  return best
}

/**
 * Explores the schedules of a target (or of a plain effect). The program runs
 * once per schedule, from scratch: whatever it mutates must be created inside
 * it (build state in `Effect.suspend` / `Effect.gen`, not in the closure that
 * builds the effect), or runs see each other's leftovers. Never fails: a
 * bad option (e.g. `replay` without `schedule`, or a schedule string that does
 * not parse) is returned as `InvalidSchedule` / `InvalidExploreOptions` in the
 * error channel.
 *
 * @since 0.2.0
 * @category checking
 */
export const check = <A>(
  target: Target<A> | Effect.Effect<A, unknown>,
  options: CheckOptions = {}
): Effect.Effect<CheckResult, ScheduleString.InvalidSchedule | InvalidExploreOptions> =>
  Effect.suspend((): Effect.Effect<CheckResult, ScheduleString.InvalidSchedule | InvalidExploreOptions> => {
    const t: Target<A> = Effect.isEffect(target) ? { program: target } : target
    const problem = validate(options)
    if (problem !== undefined) return Effect.fail(new InvalidExploreOptions({ reason: problem }))
    let replay: ReadonlyArray<number> | undefined
    if ((options.strategy ?? "dfs") === "replay") {
      const decoded = ScheduleString.decode(options.schedule ?? "")
      if (Result.isFailure(decoded)) return Effect.fail(decoded.failure)
      replay = decoded.success
    }
    // interruptible: an interrupted check (Ctrl-C on the CLI) stops after the run in progress
    return Effect.promise((signal) => explore(t, options, replay, signal))
  })

/** Bad options of a check (a negative budget, replay without a schedule, …). @since 0.2.0 @category errors */
export class InvalidExploreOptions extends Schema.TaggedError<InvalidExploreOptions>()("InvalidExploreOptions", {
  reason: Schema.String
}) {
  override get message(): string {
    return `invalid explore options: ${this.reason}`
  }
}

const isCount = (n: number | undefined, min: number) => n === undefined || (Number.isSafeInteger(n) && n >= min)

/**
 * The first problem with `o`, or undefined.
 *
 * @category functions
 */
export const validate = (o: CheckOptions): string | undefined => {
  const s = o.strategy ?? "dfs"
  if (!["dfs", "pct", "random", "replay"].includes(s)) return `unknown strategy ${JSON.stringify(s)} (dfs, pct, random, replay)`
  if (s === "replay" && o.schedule === undefined) return "strategy replay needs a schedule string"
  if (o.preemptions !== undefined && o.preemptions !== "all" && !isCount(o.preemptions, 0)) return `preemptions must be a whole number ≥ 0 or "all", got ${String(o.preemptions)}`
  if (!isCount(o.depth, 1)) return `depth must be a whole number ≥ 1, got ${String(o.depth)}`
  if (!isCount(o.budget, 1)) return `budget must be a whole number ≥ 1, got ${String(o.budget)}`
  if (!isCount(o.maxSteps, 1)) return `maxSteps must be a whole number ≥ 1, got ${String(o.maxSteps)}`
  if (!isCount(o.seed, 0)) return `seed must be a whole number ≥ 0, got ${String(o.seed)}`
  if (o.timeSeconds !== undefined && !(o.timeSeconds > 0 && Number.isFinite(o.timeSeconds))) return `time must be a positive number of seconds, got ${String(o.timeSeconds)}`
  return undefined
}

const explore = async <A>(
  target: Target<A>,
  o: CheckOptions,
  replay: ReadonlyArray<number> | undefined,
  signal?: AbortSignal
): Promise<CheckResult> => {
  const strategy = o.strategy ?? "dfs"
  const started = performance.now()
  const deadline = o.timeSeconds === undefined ? Infinity : started + o.timeSeconds * 1000
  const budget = o.budget ?? (strategy === "dfs" ? 1_000_000 : strategy === "replay" ? 1 : 1_000)
  const bound = o.preemptions === "all" ? Infinity : (o.preemptions ?? 2)
  const dfs = strategy === "dfs" ? new Dfs(bound, o.reduction ?? true) : undefined
  const states = new Set<string>()
  let schedules = 0
  let pruned = 0
  let longest = 0
  let complete = false
  let lastProgress = started
  let lastTurn = started
  let failing: { readonly rec: RunRecord; readonly kind: string; readonly detail: string } | undefined

  for (let run = 0; ; run++) {
    if (schedules + pruned >= budget || performance.now() > deadline || signal?.aborted === true) break
    const chooser: Chooser = dfs ?? (strategy === "random"
      ? new Random(o.seed ?? 0, run)
      : strategy === "pct"
      ? new Pct(o.seed ?? 0, run, o.depth ?? 3, longest || 64)
      : new Replay(replay ?? []))
    const rec = await runTarget(target, chooser, o.maxSteps)
    longest = Math.max(longest, rec.choices.length)
    const v = verdictOf(target, rec)
    if (v === undefined) pruned++
    else {
      schedules++
      states.add(v.fingerprint)
      if (v.violation !== undefined) {
        failing = { rec, kind: v.violation.kind, detail: v.violation.detail }
        break
      }
    }
    if (dfs !== undefined && !dfs.advance()) {
      complete = true
      break
    }
    if (strategy === "replay") break
    const now = performance.now()
    // a turn of the host event loop now and then: signals (Ctrl-C), progress output and timers get through
    if (now - lastTurn >= 100) {
      lastTurn = now
      await new Promise<void>((resolve) => setImmediate(resolve))
    }
    if (o.onProgress !== undefined && now - lastProgress >= 250) {
      lastProgress = now
      const el = now - started
      o.onProgress({ schedules, pruned, elapsedMs: el, schedulesPerSecond: schedules / (el / 1000), frontier: dfs?.depth ?? 0 })
    }
  }

  let violation: Violation | undefined
  if (failing !== undefined) {
    const shrunk = (o.shrink ?? true) && strategy !== "replay"
      ? await shrinkRun(target, failing.rec, failing.kind, o.maxSteps)
      : failing.rec
    const v = verdictOf(target, shrunk)?.violation ?? failing
    violation = violationOf(shrunk, v, foundOf(failing.rec))
  }
  return resultOf({
    strategy,
    preemptionBound: strategy === "dfs" ? (o.preemptions ?? 2) : undefined,
    depth: strategy === "pct" ? (o.depth ?? 3) : undefined,
    schedules,
    pruned,
    complete: complete && failing === undefined,
    terminalStates: states.size,
    longestRun: longest,
    violation
  }, performance.now() - started)
}

/** The explorer's public API. @since 0.2.0 @category api */
export const Explore = { check, shrinkRun, validate } as const
