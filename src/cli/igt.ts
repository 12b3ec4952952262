/**
 * `gpusvm igt …` (issue #17 part 4): the IGT `xe_exec_system_allocator`
 * subtests by name, from the table of src/igt/Subtests.ts.
 *
 * - `gpusvm igt list [--filter GLOB]`: one subtest name per line, in IGT's
 *   order (`--list-subtests` order); `--filter` keeps the names the shell-style
 *   glob matches (`*`, `?`, `[…]`). Exit 0; a filter that matches nothing is
 *   bad input (one line on stderr, exit 2).
 *
 * - `gpusvm igt report [--filter GLOB] [--json] [--workers N]`: builds and
 *   runs every (matching) subtest on the simulated machine (`Generate.ts`,
 *   the scenario runner), across N worker threads (default one per core; 1:
 *   in this thread), and prints the coverage table: passed, failed, skipped
 *   by reason, vacuous (issue #17 part 5). `--json`: one outcome per line in
 *   the subtests' order whatever N, then the totals. A progress bar on stderr
 *   when it is a terminal. Exit 0 unless a subtest failed (1); bad input 2.
 *
 * @since 0.3.0
 */
import { Console, Effect, Option } from "effect"
import { availableParallelism } from "node:os"
import { Command, Flag } from "effect/cli"
import { build } from "../igt/Generate.ts"
import { matching, type Subtest } from "../igt/Subtests.ts"
import * as Runner from "../programs/ScenarioRunner.ts"
import { type IgtJob, type IgtReply, spawnIgtWorker, WORKER_GRACE_MS } from "./igtJobs.ts"
import { simulated } from "./machines.ts"
import { runPool } from "./pool.ts"
import { progress } from "./report.ts"

/**
 * The outcome of one subtest in a report.
 *
 * @category models
 */
export interface IgtOutcome {
  readonly name: string
  readonly outcome: "passed" | "failed" | "skipped" | "vacuous"
  /** skipped / vacuous: why; failed: the first failure or violation. */
  readonly detail?: string
  readonly ms: number
}

/**
 * Builds (`Generate.ts` `build`) and runs one subtest on the simulated
 * machine, in this thread: its outcome.
 *
 * @category running
 */
export const runSubtest = (t: Subtest): Effect.Effect<IgtOutcome> =>
  Effect.suspend(() => {
    const started = performance.now()
    const b = build(t)
    if (b.kind !== "scenario") return Effect.succeed<IgtOutcome>({ name: t.name, outcome: b.kind, detail: b.reason, ms: 0 })
    // the benchmarks (prefetch-*-benchmark: 128 prefetches of 64 MiB) run past the default 60 s bound
    return Effect.map(Runner.run(b.scenario, simulated, { timeoutMs: REPORT_TIMEOUT_MS }), (r): IgtOutcome => {
      const first = r.failures[0]?.detail ?? r.violations[0]?.detail
      return { name: t.name, outcome: r.ok ? "passed" : "failed", ...(r.ok || first === undefined ? {} : { detail: first }), ms: Math.round(performance.now() - started) }
    })
  })

/**
 * The outcome of a subtest whose worker gave no outcome (it crashed, or
 * stopped answering): failed, with the reason.
 *
 * @category constructors
 */
export const lostOutcome = (name: string, reason: string): IgtOutcome => ({ name, outcome: "failed", detail: reason, ms: 0 })

/**
 * How heavy a subtest is, roughly (a larger number: longer), to hand the
 * heaviest out first when the subtests run across workers (so that no long
 * one starts last and runs alone). A static guess from the family and the
 * section; only the order of hand-out depends on it, never an outcome.
 *
 * @category functions
 */
export const weight = (t: Subtest): number => {
  const n = t.name
  if (n.endsWith("-benchmark")) return 1_000
  let w = 1
  if (/(^|-)many-/.test(n) || n.startsWith("threads-") || n.startsWith("process-")) w *= 4
  else if (n.startsWith("twice-")) w *= 2
  if (n.includes("-stride")) w *= 4
  if (n.includes("-large")) w *= 3
  if (t.section !== undefined && /(^|-)(new|free)(-|$)/.test(t.section)) w *= 4
  if (t.section !== undefined && /prefetch|multi-fault|busy/.test(t.section)) w *= 2
  if (n.startsWith("evict-") || n.startsWith("processes-evict-")) w *= 20
  return w
}

/**
 * Builds and runs each subtest on the simulated machine and returns the
 * outcomes in the subtests' order. With `workers` > 1 they run across that
 * many worker threads (`igtWorker.ts`, the pool of `pool.ts`), heaviest
 * first; a worker that crashes or hangs turns into a failed outcome for its
 * subtest. `onEach` sees every outcome in order; `onProgress` each as it
 * comes (with the count so far).
 *
 * @category running
 */
export const runSubtests = (
  subtests: ReadonlyArray<Subtest>,
  onEach: (o: IgtOutcome) => Effect.Effect<void> = () => Effect.void,
  options: { readonly workers?: number; readonly onProgress?: (o: IgtOutcome, done: number) => Effect.Effect<void> } = {}
): Effect.Effect<ReadonlyArray<IgtOutcome>> => {
  const workers = options.workers ?? 1
  if (workers <= 1 || subtests.length <= 1) {
    return Effect.forEach(subtests, (t, i) =>
      Effect.tap(runSubtest(t), (o) => Effect.andThen(options.onProgress?.(o, i + 1) ?? Effect.void, onEach(o))))
  }
  const weights = subtests.map(weight)
  const order = subtests.map((_, i) => i).sort((a, b) => weights[b]! - weights[a]! || a - b)
  return runPool<IgtJob, IgtReply>({
    items: subtests.map((t): IgtJob => ({ _tag: "Outcome", name: t.name })),
    workers,
    spawn: spawnIgtWorker,
    order,
    lost: (job, reason) => lostOutcome(job._tag === "Outcome" ? job.name : "", reason),
    itemTimeoutMs: REPORT_TIMEOUT_MS + WORKER_GRACE_MS,
    onDone: (_, o, done) => options.onProgress?.(o as IgtOutcome, done) ?? Effect.void,
    onInOrder: (_, o) => onEach(o as IgtOutcome)
  }) as Effect.Effect<ReadonlyArray<IgtOutcome>>
}

/**
 * The time bound of one subtest in a report: 10 minutes (the runner's default, 60 s, is too short
 * for the prefetch benchmarks).
 *
 * @category constants
 */
export const REPORT_TIMEOUT_MS = 600_000

/** The reason class of a skip: its source (`#14`, `#17 part 1`, …) and what. */
const reasonClass = (detail: string): string => detail.split("; ").map((d) => d.replace(/ \(.*\)$/, "")).join("; ")

/**
 * The coverage table of a report, as text lines.
 *
 * @category functions
 */
export const coverageTable = (outcomes: ReadonlyArray<IgtOutcome>, wallMs: number, workers = 1): ReadonlyArray<string> => {
  const count = (k: IgtOutcome["outcome"]) => outcomes.filter((o) => o.outcome === k).length
  const byReason = new Map<string, number>()
  for (const o of outcomes) if (o.outcome === "skipped") byReason.set(reasonClass(o.detail ?? ""), (byReason.get(reasonClass(o.detail ?? "")) ?? 0) + 1)
  const lines = [
    `IGT xe_exec_system_allocator: ${outcomes.length} subtests in ${(wallMs / 1000).toFixed(1)} s (${workers} worker${workers === 1 ? "" : "s"})`,
    `  passed   ${count("passed")}`,
    `  failed   ${count("failed")}`,
    `  skipped  ${count("skipped")}`,
    ...[...byReason].sort((a, b) => b[1] - a[1]).map(([r, n]) => `    ${String(n).padStart(5)}  ${r}`),
    `  vacuous  ${count("vacuous")}`
  ]
  for (const o of outcomes) if (o.outcome === "failed") lines.push(`  FAILED ${o.name}: ${o.detail ?? ""}`)
  return lines
}

/**
 * The `--workers N` flag of `gpusvm igt report` and `gpusvm simulate`: worker
 * threads to run the subtests across (default: the machine's cores,
 * `os.availableParallelism()`; 1 runs them in this thread).
 *
 * @category flags
 */
export const workersFlag = Flag.String("workers").pipe(
  Flag.withMetavar("N"),
  Flag.withDescription("Worker threads to run the subtests across (default: one per core; 1: in this thread)"),
  Flag.optional
)

/**
 * The value of `--workers`: a whole number from 1 to 64, or the number of
 * cores when absent; a string says what is wrong.
 *
 * @category functions
 */
export const parseWorkers = (raw: Option.Option<string>): number | string => {
  if (Option.isNone(raw)) return Math.max(1, Math.min(64, availableParallelism()))
  const n = Number(raw.value)
  if (!/^\d+$/.test(raw.value) || !Number.isSafeInteger(n) || n < 1 || n > 64) return `--workers: expected a whole number from 1 to 64, got "${raw.value}"`
  return n
}

/** `gpusvm igt report`. */
const report = Command.make(
  "report",
  {
    filter: Flag.String("filter").pipe(Flag.withMetavar("GLOB"), Flag.withDescription("Only the subtests whose name matches this glob"), Flag.optional),
    json: Flag.Boolean("json").pipe(Flag.withDescription("One JSON object per subtest, then the totals"), Flag.withDefault(false)),
    workers: workersFlag
  },
  Effect.fnUntraced(function*({ filter, json, workers: workersRaw }) {
    const workers = parseWorkers(workersRaw)
    if (typeof workers === "string") {
      yield* Console.error(`gpusvm: igt report: ${workers}`)
      return yield* Effect.sync(() => {
        process.exitCode = 2
      })
    }
    const glob = Option.getOrUndefined(filter)
    const subtests = matching(glob)
    if (subtests.length === 0) {
      yield* Console.error(`gpusvm: igt report: no subtest matches "${glob}"`)
      return yield* Effect.sync(() => {
        process.exitCode = 2
      })
    }
    const started = performance.now()
    const outcomes = yield* runSubtests(subtests, (o) => (json ? Console.log(JSON.stringify(o)) : Effect.void), {
      workers,
      onProgress: (o, done) => Effect.sync(() => progress(done, subtests.length, o.name))
    })
    progress(subtests.length, subtests.length, undefined)
    const wall = performance.now() - started
    const used = Math.min(workers, subtests.length)
    if (json) {
      const count = (k: IgtOutcome["outcome"]) => outcomes.filter((o) => o.outcome === k).length
      yield* Console.log(JSON.stringify({ total: outcomes.length, passed: count("passed"), failed: count("failed"), skipped: count("skipped"), vacuous: count("vacuous"), wallMs: Math.round(wall), workers: used }))
    } else yield* Console.log(coverageTable(outcomes, wall, used).join("\n"))
    if (outcomes.some((o) => o.outcome === "failed")) {
      yield* Effect.sync(() => {
        process.exitCode = 1
      })
    }
  })
).pipe(Command.withDescription("Run every IGT subtest (generated scenarios, simulated machine) and print the coverage table"))

/** `gpusvm igt list`. */
const list = Command.make(
  "list",
  {
    filter: Flag.String("filter").pipe(
      Flag.withMetavar("GLOB"),
      Flag.withDescription("Only the subtests whose name matches this glob (* ? [...]), e.g. 'once-*'"),
      Flag.optional
    )
  },
  Effect.fnUntraced(function*({ filter }) {
    const glob = Option.getOrUndefined(filter)
    const names = matching(glob).map((t) => t.name)
    if (names.length === 0) {
      yield* Console.error(`gpusvm: igt list: no subtest matches "${glob}"`)
      return yield* Effect.sync(() => {
        process.exitCode = 2
      })
    }
    yield* Console.log(names.join("\n"))
  })
).pipe(Command.withDescription("List the IGT xe_exec_system_allocator subtests, one name per line, in IGT's order"))

/**
 * `gpusvm igt`: the IGT `xe_exec_system_allocator` subtests (`list`).
 *
 * @category commands
 * @since 0.3.0
 */
export const igt = Command.make("igt").pipe(
  Command.withDescription("The IGT xe_exec_system_allocator subtests by name (see docs/igt.md)"),
  Command.withSubcommands([list, report])
)
