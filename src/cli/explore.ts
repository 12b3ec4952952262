/**
 * `gpusvm explore FILE|NAME`: the model checker on the command line, and the
 * text it prints.
 *
 * `gpusvm explore FILE|NAME [--strategy dfs|pct|random] [--preemptions K|all]
 * [--depth D] [--budget N] [--time SECONDS] [--seed N] [--workers N]
 * [--kernel 6.17|7.0] [--no-reduction] [--json]`. Exit 0: nothing found (the text says whether
 * the space was complete); 1: a violation (the minimal trace and its schedule
 * string are printed first); 2: bad input. A progress line goes to stderr on a
 * terminal.
 *
 * @since 0.2.0
 */
import { Console, Effect, Option } from "effect"
import { Argument, Command, Flag } from "effect/cli"
import type { Scenario } from "../domain/Scenario.ts"
import type { CheckOptions, CheckResult, Progress, Violation } from "../explore/Explore.ts"
import * as ScenarioTarget from "../explore/ScenarioTarget.ts"
import { exploreParallel } from "../explore/Workers.ts"
import { Worker } from "node:worker_threads"
import { loadWord } from "./load.ts"
import { KERNEL_PROFILES, type KernelProfile } from "../domain/GpuSvmConfig.ts"
import type * as Runner from "../programs/ScenarioRunner.ts"
import { simulated } from "./machines.ts"
import { writeCounterexampleEvents } from "./report-html.ts"

const setExit = (code: number) =>
  Effect.sync(() => {
    process.exitCode = code
  })

const badInput = (message: string) => Effect.andThen(Console.error(`gpusvm: ${message}`), setExit(2))

const wholeNumber = (flag: string, raw: string, min: number): number | string => {
  const n = Number(raw)
  if (!/^\d+$/.test(raw) || !Number.isSafeInteger(n) || n < min) return `--${flag}: expected a whole number ≥ ${min}, got "${raw}"`
  return n
}

/** A worker thread running `exploreWorker` (the same extension as this module: .ts from source, .js when built). */
const spawnWorker = (id: number): Worker => {
  const ext = import.meta.url.endsWith(".ts") ? ".ts" : ".js"
  return new Worker(new URL(`./exploreWorker${ext}`, import.meta.url), { workerData: id })
}

/** Draws the progress line on stderr (terminals only). */
const progressLine = (p: Progress): void => {
  if (!process.stderr.isTTY) return
  process.stderr.write(
    `\r\x1b[2K${p.schedules} schedules, ${p.pruned} pruned, ${p.schedulesPerSecond.toFixed(0)}/s, frontier depth ${p.frontier}, ${(p.elapsedMs / 1000).toFixed(1)} s`
  )
}

const clearProgress = (): void => {
  if (process.stderr.isTTY) process.stderr.write("\r\x1b[2K")
}

import { formatTrace } from "../explore/TraceText.ts"
export { formatTrace }

/**
 * The human report of an exploration.
 *
 * @since 0.2.0
 * @category formatting
 */
export const formatResult = (name: string, source: string, r: CheckResult, minimal: Scenario | undefined, original: Scenario): string => {
  const bound = r.strategy === "dfs" ? `, preemptions ≤ ${r.preemptionBound}` : r.strategy === "pct" ? `, depth ${r.depth}` : ""
  const lines: Array<string> = []
  const v = r.violation
  if (v !== undefined) {
    lines.push(`VIOLATION in ${name}: ${v.kind}: ${v.detail}`)
    lines.push(`minimal trace: ${v.steps} steps, ${v.preemptions} preemption${v.preemptions === 1 ? "" : "s"}, actors ${v.actors.join(", ")}`)
    lines.push(...formatTrace(v))
    lines.push(`schedule: ${v.schedule}`)
    const shrunkSteps = minimal !== undefined && minimal !== original
    if (shrunkSteps) {
      const removed = original.threads.reduce((a, t) => a + t.steps.length, 0) - minimal.threads.reduce((a, t) => a + t.steps.length, 0)
      lines.push(`this schedule replays on the minimal scenario (${removed} step${removed === 1 ? "" : "s"} removed; --json prints it as minimalScenario)`)
    } else {
      lines.push(`replay: gpusvm simulate ${source} --schedule ${v.schedule}`)
    }
    lines.push(`first found: ${v.found.steps} steps, ${v.found.preemptions} preemptions, schedule ${v.found.schedule}`)
    if (shrunkSteps) lines.push(`replay the first-found run: gpusvm simulate ${source} --schedule ${v.found.schedule}`)
  }
  lines.push(
    `${name}: ${r.strategy}${bound}: ${r.schedules} schedules, ${r.pruned} pruned, ${r.terminalStates} terminal state${r.terminalStates === 1 ? "" : "s"}, ` +
      `longest run ${r.longestRun} steps, ${(r.timeMs / 1000).toFixed(1)} s, ${r.schedulesPerSecond} schedules/s`
  )
  if (v === undefined) lines.push(r.complete ? "no violation; complete: every schedule in the bounded space was run" : "no violation found; complete: false (budget or time ran out first)")
  return lines.join("\n")
}

/** `gpusvm explore`. @since 0.2.0 @category commands */
export const explore = Command.make(
  "explore",
  {
    scenario: Argument.String("scenario").pipe(Argument.withDescription("A scenario file or a built-in scenario name")),
    strategy: Flag.String("strategy").pipe(Flag.withDescription("dfs | pct | random"), Flag.withDefault("dfs")),
    preemptions: Flag.String("preemptions").pipe(Flag.withDescription("DFS preemption bound K, or all (default 2)"), Flag.withDefault("2")),
    depth: Flag.String("depth").pipe(Flag.withDescription("PCT bug depth (default 3)"), Flag.withDefault("3")),
    budget: Flag.String("budget").pipe(Flag.withDescription("Most schedules to run"), Flag.optional),
    time: Flag.String("time").pipe(Flag.withDescription("Wall-clock budget in seconds"), Flag.optional),
    seed: Flag.String("seed").pipe(Flag.withDescription("Seed of pct / random (default 0)"), Flag.withDefault("0")),
    workers: Flag.String("workers").pipe(Flag.withDescription("Worker threads to split the search across (default 1)"), Flag.withDefault("1")),
    kernel: Flag.String("kernel").pipe(Flag.withDescription("Kernel profile 6.17 | 7.0 (overrides the scenario's svm.kernel)"), Flag.optional),
    noReduction: Flag.Boolean("no-reduction").pipe(Flag.withDescription("Turn the sleep-set reduction off"), Flag.withDefault(false)),
    json: Flag.Boolean("json").pipe(Flag.withDescription("Print the result as one JSON object"), Flag.withDefault(false)),
    // issue #19: the counterexample's replayed run, recorded
    events: Flag.String("events").pipe(Flag.withDescription("Write the counterexample's events (its replayed run) as JSONL to this file"), Flag.optional)
  },
  Effect.fnUntraced(function*(a) {
    if (!["dfs", "pct", "random"].includes(a.strategy)) return yield* badInput(`--strategy: expected dfs, pct or random, got "${a.strategy}"`)
    const options: { -readonly [K in keyof CheckOptions]: CheckOptions[K] } = {
      strategy: a.strategy as "dfs" | "pct" | "random",
      reduction: !a.noReduction
    }
    if (a.preemptions !== "all") {
      const k = wholeNumber("preemptions", a.preemptions, 0)
      if (typeof k === "string") return yield* badInput(k)
      options.preemptions = k
    } else options.preemptions = "all"
    const depth = wholeNumber("depth", a.depth, 1)
    if (typeof depth === "string") return yield* badInput(depth)
    options.depth = depth
    const seed = wholeNumber("seed", a.seed, 0)
    if (typeof seed === "string") return yield* badInput(seed)
    options.seed = seed
    if (Option.isSome(a.budget)) {
      const b = wholeNumber("budget", a.budget.value, 1)
      if (typeof b === "string") return yield* badInput(b)
      options.budget = b
    }
    if (Option.isSome(a.time)) {
      const s = Number(a.time.value)
      if (!(s > 0 && Number.isFinite(s)) || !/^\d+(\.\d+)?$/.test(a.time.value)) return yield* badInput(`--time: expected a positive number of seconds, got "${a.time.value}"`)
      options.timeSeconds = s
    }
    const workers = wholeNumber("workers", a.workers, 1)
    if (typeof workers === "string") return yield* badInput(workers)
    if (workers > 64) return yield* badInput(`--workers: at most 64, got ${workers}`)
    let runOptions: Runner.RunOptions = {}
    if (Option.isSome(a.kernel)) {
      if (!(KERNEL_PROFILES as ReadonlyArray<string>).includes(a.kernel.value)) {
        return yield* badInput(`--kernel: expected one of ${KERNEL_PROFILES.join(", ")}, got "${a.kernel.value}"`)
      }
      runOptions = { kernel: a.kernel.value as KernelProfile }
    }
    const loaded = yield* Effect.result(loadWord(a.scenario))
    if (loaded._tag === "Failure") return yield* badInput(loaded.failure.message)
    const { scenario } = loaded.success
    if (!a.json) options.onProgress = progressLine
    const run = workers > 1
      ? exploreParallel(scenario, simulated, options, workers, spawnWorker, runOptions)
      : ScenarioTarget.explore(scenario, simulated, options, runOptions)
    const outcome = yield* Effect.result(run)
    clearProgress()
    if (outcome._tag === "Failure") return yield* badInput(outcome.failure.message)
    const { check, minimal } = outcome.success
    if (Option.isSome(a.events) && check.violation !== undefined) {
      const w = yield* Effect.result(writeCounterexampleEvents(minimal ?? scenario, check.violation.schedule, runOptions.kernel, a.events.value))
      if (w._tag === "Failure") return yield* badInput(w.failure)
    }
    if (a.json) {
      yield* Console.log(JSON.stringify({ scenario: scenario.name, ...check, workers, ...(minimal !== undefined && minimal !== scenario ? { minimalScenario: minimal } : {}) }))
    } else {
      yield* Console.log(formatResult(scenario.name, a.scenario, check, minimal, scenario))
    }
    yield* setExit(check.violation === undefined ? 0 : 1)
  })
).pipe(Command.withDescription("Check a scenario under every interleaving of its actors (a bounded model checker)"))
