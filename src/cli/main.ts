/**
 * The `gpusvm` command line (effect/cli), thin: parses arguments, loads
 * scenarios, picks the machine, runs the scenario runner, prints.
 *
 * - `gpusvm simulate [FILE|NAME …] [--json] [--seed N] [--machine simulated|native] [--kernel 6.17|7.0]
 *   [--otlp URL] [--trace FILE]`: no argument runs every built-in scenario; `--kernel` overrides every
 *   scenario's `svm.kernel` profile (kernel-semantics §11.16); `--otlp` / `--trace` export the
 *   trace as OTLP JSON (`trace.ts`). Exit 0: all ok; 1: a scenario
 *   failed; 2: bad input (nothing run). On the native machine a scenario it
 *   cannot express (a file mapping, hugetlb without reserved huge pages) is
 *   reported `skipped` and is no failure.
 * - `gpusvm scenarios`: lists the built-in scenarios.
 * - `gpusvm igt list [--filter GLOB]`: the IGT subtest names (`igt.ts`);
 *   `gpusvm simulate igt:<name>` / `'igt:<glob>'` runs the generated subtests
 *   (issue #17: vacuous and skipped ones are results with `skipped: reason`,
 *   vacuous ones also `vacuous`); `gpusvm igt report` the coverage table.
 *
 * A command line the parser rejects prints one line on stderr (exit 2); help
 * is printed only for `--help`.
 *
 * @since 0.1.0
 */
import { NodeRuntime, NodeServices } from "@effect/platform-node"
import { Console, Effect, Option } from "effect"
import { Argument, CliError, CliOutput, Command, Flag } from "effect/cli"
import { KERNEL_PROFILES, type KernelProfile } from "../domain/GpuSvmConfig.ts"
import { VERSION } from "../index.ts"
import * as Runner from "../programs/ScenarioRunner.ts"
import { type ScenarioResult, withEveryInvalidationEvent } from "../domain/ScenarioResult.ts"
import { matching } from "../igt/Subtests.ts"
import { builtins, expandIgt, type Loaded, type LoadError, loadIgt, loadWord, nativeSkipReason } from "./load.ts"
import { Native } from "../layers/native/Native.ts"
import { MACHINES, native, simulated } from "./machines.ts"
import { progress, summary } from "./report.ts"
import { explore } from "./explore.ts"
import * as Trace from "./trace.ts"
import * as ScenarioTarget from "../explore/ScenarioTarget.ts"
// issue #19: `gpusvm report`, and `simulate --events / --html`
import * as ReportHtml from "./report-html.ts"
// issue #17: `gpusvm igt list`
import { igt, parseWorkers, REPORT_TIMEOUT_MS, workersFlag } from "./igt.ts"
// issue #17 part 5: several IGT subtests across worker threads
import { type IgtJob, type IgtReply, spawnIgtWorker, WORKER_GRACE_MS } from "./igtJobs.ts"
import { runPool } from "./pool.ts"
import { itemName, lostResult, type SimulateItem, type SimulateOptions, skippedResult } from "./simulateItem.ts"

const setExit = (code: number) =>
  Effect.sync(() => {
    process.exitCode = code
  })

/** Reports bad input on stderr (one line per problem) and exits 2. */
const badInput = (message: string | ReadonlyArray<string>) =>
  Effect.andThen(Effect.forEach(typeof message === "string" ? [message] : message, (l) => Console.error(`gpusvm: ${l}`)), setExit(2))


/** Exit codes, as `--help` shows them. */
const EXIT_CODES = "Exit status: 0 every scenario passed (or was skipped); 1 a scenario failed; 2 bad input (nothing run)."

/**
 * Help on stdout only when asked for; a command line the parser rejects is
 * one line on stderr (stdout stays clean for `--json` consumers).
 */
const presenter = CliOutput.layerPresenter({
  present: (event) =>
    event._tag === "InvalidInvocation"
      ? Console.error(
        `gpusvm: ${event.errors.map((e) => e.message.replace(/\s*\n\s*/g, " ")).join("; ")} (see \`${event.commandPath.join(" ")} --help\`)`
      )
      : CliOutput.defaultPresenter.present(event)
})

/** `gpusvm simulate`. */
const simulate = Command.make(
  "simulate",
  {
    scenarios: Argument.String("scenario").pipe(
      Argument.withDescription("Scenario files or built-in scenario names (default: every built-in scenario)"),
      Argument.variadic()
    ),
    json: Flag.Boolean("json").pipe(Flag.withDescription("Print one JSON result object per scenario on stdout"), Flag.withDefault(false)),
    seed: Flag.String("seed").pipe(
      Flag.withMetavar("<non-negative integer>"),
      Flag.withDescription("Seed of the thread interleaving (overrides the scenario's)"),
      Flag.optional
    ),
    machine: Flag.String("machine").pipe(
      Flag.withMetavar("simulated|native"),
      Flag.withDescription("The machine to run on (default simulated)"),
      Flag.withDefault("simulated")
    ),
    schedule: Flag.String("schedule").pipe(
      Flag.withDescription("Replay an explorer schedule string exactly (simulated machine, one scenario)"),
      Flag.optional
    ),
    kernel: Flag.String("kernel").pipe(
      Flag.withMetavar("6.17|7.0"),
      Flag.withDescription("Kernel profile: 6.17 (the seed, bugs included) | 7.0 (upstream fixes); overrides the scenario's svm.kernel"),
      Flag.optional
    ),
    otlp: Flag.String("otlp").pipe(Flag.withDescription("Export the trace over OTLP/HTTP JSON to this URL (e.g. http://localhost:4318/v1/traces)"), Flag.optional),
    trace: Flag.String("trace").pipe(Flag.withDescription("Write the trace as OTLP JSON to this file"), Flag.optional),
    // issue #19: a recorded run (one scenario, simulated machine)
    events: Flag.String("events").pipe(Flag.withDescription("Write the run's events as JSONL to this file (one scenario)"), Flag.optional),
    html: Flag.String("html").pipe(Flag.withDescription("Write an offline HTML report of the run to this file (one scenario)"), Flag.optional),
    // issue #17 part 5: arguments that expand to several IGT subtests run across worker threads
    workers: workersFlag
  },
  (flags) => Trace.traced(flags, run(flags)).pipe(Effect.catchTag("TraceFlagError", (e) => badInput(e.message)))
).pipe(Command.withDescription(`Run scenarios on a simulated (or native) machine and check every invariant. ${EXIT_CODES}`))

/** The body of `gpusvm simulate`. */
const run = Effect.fnUntraced(function*({ scenarios, json, seed, machine, schedule, kernel, events, html, otlp, trace, workers: workersRaw }: {
    readonly events: Option.Option<string>
    readonly html: Option.Option<string>
    readonly otlp: Option.Option<string>
    readonly trace: Option.Option<string>
    readonly workers: Option.Option<string>
    readonly scenarios: ReadonlyArray<string>
    readonly json: boolean
    readonly seed: Option.Option<string>
    readonly machine: string
    readonly schedule: Option.Option<string>
    readonly kernel: Option.Option<string>
  }) {
    let kernelValue: KernelProfile | undefined
    if (Option.isSome(kernel)) {
      if (!(KERNEL_PROFILES as ReadonlyArray<string>).includes(kernel.value)) {
        return yield* badInput(`--kernel: expected one of ${KERNEL_PROFILES.join(", ")}, got "${kernel.value}"`)
      }
      kernelValue = kernel.value as KernelProfile
    }
    if (!(MACHINES as ReadonlyArray<string>).includes(machine)) {
      return yield* badInput(`--machine: expected one of ${MACHINES.join(", ")}, got "${machine}"`)
    }
    if (machine === "native") {
      const caps = yield* Native.probe
      const missing = (["linux", "helperBuilt", "userfaultfd", "pfnVisible"] as const).filter((c) => !caps[c])
      if (missing.length > 0) {
        return yield* badInput(
          `--machine native: this host lacks ${missing.map((c) => `${c} (${caps.details[c] ?? "unavailable"})`).join(", ")}`
        )
      }
    }
    let seedValue: number | undefined
    if (Option.isSome(seed)) {
      const n = Number(seed.value)
      if (!/^\d+$/.test(seed.value) || !Number.isSafeInteger(n)) return yield* badInput(`--seed: expected a non-negative integer, got "${seed.value}"`)
      seedValue = n
    }
    const words: ReadonlyArray<string> = scenarios.length > 0
      ? scenarios
      : (yield* builtins().pipe(Effect.orElseSucceed((): ReadonlyArray<{ readonly file: string }> => []))).map((b) => b.file)
    if (words.length === 0) return yield* badInput("no scenarios to run")
    const workers = parseWorkers(workersRaw)
    if (typeof workers === "string") return yield* badInput(workers)
    // issue #17 part 5: several IGT subtests (and whatever else is named) run across worker threads, on the
    // simulated machine, when nothing needs this thread's runtime (a recorded run, a replay, a trace export)
    if (
      workers > 1 && machine === "simulated" &&
      [events, html, schedule, otlp, trace].every(Option.isNone) &&
      words.reduce((n, w) => n + (w.startsWith("igt:") ? matching(w.slice("igt:".length)).length : 0), 0) >= 2
    ) {
      return yield* simulateAcross(words, json, { ...(seedValue === undefined ? {} : { seed: seedValue }), ...(kernelValue === undefined ? {} : { kernel: kernelValue }) }, workers)
    }
    // Every file is read and decoded first; the problems of all bad files are reported (one line each), nothing runs.
    const loaded: Array<Loaded> = []
    const problems: Array<string> = []
    // issue #17: igt:<name|glob> expands to generated subtests; vacuous / skipped ones are results without a run
    const notRun = new Map<Loaded, { readonly skipped: string; readonly vacuous?: string }>()
    for (const w of words) {
      if (w.startsWith("igt:")) {
        const expanded = yield* Effect.result(loadIgt(w))
        if (expanded._tag === "Failure") problems.push(...expanded.failure.lines)
        else {
          for (const e of expanded.success) {
            if (e.kind === "scenario") loaded.push(e.loaded)
            else {
              const placeholder: Loaded = { scenario: { name: `igt-${e.name}` } as Loaded["scenario"], source: `igt:${e.name}` }
              notRun.set(placeholder, e.kind === "vacuous" ? { skipped: `vacuous: ${e.reason}`, vacuous: e.reason } : { skipped: e.reason })
              loaded.push(placeholder)
            }
          }
        }
        continue
      }
      const l = yield* Effect.result(loadWord(w))
      if (l._tag === "Failure") problems.push(...l.failure.lines)
      else loaded.push(l.success)
    }
    if (problems.length > 0) return yield* badInput(problems)
    if (Option.isSome(events) || Option.isSome(html)) {
      // issue #19: a recorded run
      if (machine !== "simulated") return yield* badInput("--events / --html: recorded runs use the simulated machine")
      const options = ReportHtml.parseRecordOptions({ seed, schedule, kernel })
      if (typeof options === "string") return yield* badInput(options)
      return yield* ReportHtml.simulateRecorded(loaded, options, { events, html }, (r) => Console.log(json ? JSON.stringify(r) : summary([r])))
    }
    if (Option.isSome(schedule)) {
      if (machine !== "simulated") return yield* badInput("--schedule: schedules control the simulated machine only (the native machine is scheduled by the kernel)")
      if (loaded.length !== 1) return yield* badInput(`--schedule: give exactly one scenario, got ${loaded.length}`)
      if (seedValue !== undefined) return yield* badInput("--schedule and --seed exclude each other (the schedule decides every interleaving)")
      const replayed = yield* Effect.result(
        ScenarioTarget.replay(loaded[0]!.scenario, simulated, schedule.value, kernelValue === undefined ? {} : { kernel: kernelValue })
      )
      if (replayed._tag === "Failure") return yield* badInput(`--schedule: ${replayed.failure.message}`)
      const result = withEveryInvalidationEvent(replayed.success.result)
      yield* Console.log(json ? JSON.stringify(result) : summary([result], [loaded[0]!.source]))
      return yield* setExit(result.ok ? 0 : 1)
    }
    const results = []
    for (let i = 0; i < loaded.length; i++) {
      const { scenario, source } = loaded[i]!
      if (!json) progress(i, loaded.length, scenario.name)
      const igtNotRun = notRun.get(loaded[i]!)
      if (igtNotRun !== undefined) {
        const r = { ...skippedResult(scenario.name, igtNotRun.skipped), ...(igtNotRun.vacuous === undefined ? {} : { vacuous: igtNotRun.vacuous }) }
        results.push(r)
        if (json) yield* Console.log(JSON.stringify(r))
        continue
      }
      const skip = machine === "native"
        ? (source.startsWith("igt:") ? "generated IGT subtests use the simulated machine's address layout (fixed addresses)" : nativeSkipReason(scenario))
        : undefined
      const result = skip !== undefined ? skippedResult(scenario.name, skip) : withEveryInvalidationEvent(
        yield* Runner.run(scenario, machine === "native" ? native : simulated, {
          ...(seedValue === undefined ? {} : { seed: seedValue }),
          ...(kernelValue === undefined ? {} : { kernel: kernelValue })
        })
      )
      results.push(result)
      if (json) yield* Console.log(JSON.stringify(result))
    }
    if (!json) {
      progress(loaded.length, loaded.length, undefined)
      yield* Console.log(summary(results, loaded.map((l) => l.source)))
    }
    yield* setExit(results.every((r) => r.ok) ? 0 : 1)
  })

/**
 * `gpusvm simulate` across `workers` worker threads (`--workers N`, issue #17
 * part 5): every word's items (an `igt:` word's subtests by name, built in
 * the workers; a file or built-in loaded here) run in the pool of `pool.ts`,
 * handed out in the items' order; results are printed in the items' order, the same objects as the in-process path prints. A
 * worker that crashes or hangs is a failed result for its item.
 */
const simulateAcross = Effect.fnUntraced(function*(words: ReadonlyArray<string>, json: boolean, options: SimulateOptions, workers: number) {
  type Entry = { readonly item: SimulateItem; readonly source: string }
  const items: Array<Entry> = []
  const problems: Array<string> = []
  for (const w of words) {
    const l: Effect.Effect<ReadonlyArray<Entry>, LoadError> = w.startsWith("igt:")
      ? Effect.map(expandIgt(w), (ts) => ts.map((t) => ({ item: { _tag: "Igt", name: t.name } as const, source: `igt:${t.name}` })))
      : Effect.map(loadWord(w), (x) => [{ item: { _tag: "Scenario", scenario: x.scenario } as const, source: x.source }])
    const got = yield* Effect.result(l)
    if (got._tag === "Failure") problems.push(...got.failure.lines)
    else items.push(...got.success)
  }
  if (problems.length > 0) return yield* badInput(problems)
  const results = (yield* runPool<IgtJob, IgtReply>({
    items: items.map((x): IgtJob => ({ _tag: "Simulate", item: x.item, options })),
    workers,
    spawn: spawnIgtWorker,
    lost: (job, reason) => lostResult(job._tag === "Simulate" ? itemName(job.item) : job.name, reason),
    itemTimeoutMs: REPORT_TIMEOUT_MS + WORKER_GRACE_MS,
    onDone: (i, _, done) => Effect.sync(() => (json ? undefined : progress(done, items.length, itemName(items[i]!.item)))),
    onInOrder: (_, r) => (json ? Console.log(JSON.stringify(r)) : Effect.void)
  })) as ReadonlyArray<ScenarioResult>
  if (!json) {
    progress(items.length, items.length, undefined)
    yield* Console.log(summary(results, items.map((x) => x.source)))
  }
  yield* setExit(results.every((r) => r.ok) ? 0 : 1)
})

/** `gpusvm scenarios`. */
const scenarios = Command.make(
  "scenarios",
  {},
  Effect.fnUntraced(function*() {
    const list = yield* Effect.result(builtins())
    if (list._tag === "Failure") return yield* badInput(list.failure.message)
    const width = Math.max(0, ...list.success.map((b) => b.name.length))
    for (const b of list.success) yield* Console.log(`${b.name.padEnd(width)}  ${b.description}`)
  })
).pipe(Command.withDescription("List the built-in scenarios"))

/**
 * The root `gpusvm` command.
 *
 * @category cli
 */
export const gpusvm = Command.make("gpusvm").pipe(
  Command.withDescription(`GPU Shared Virtual Memory (drm_gpusvm) as an executable Effect model. ${EXIT_CODES}`),
  Command.withSubcommands([simulate, explore, scenarios, ReportHtml.report, igt])
)

gpusvm.pipe(
  Command.run({ version: VERSION }),
  // A command line the parser rejects (unknown flag, bad value, unknown command)
  // is bad input: exit 2, like a bad scenario file. The parser has already printed
  // what is wrong. A plain `--help` (ShowHelp with no errors) is not an error.
  Effect.catch((e) =>
    CliError.isCliError(e) ? (e._tag === "ShowHelp" && e.errors.length === 0 ? Effect.void : setExit(2)) : Effect.fail(e)
  ),
  Effect.provide(presenter),
  Effect.provide(NodeServices.layer),
  NodeRuntime.runMain
)
