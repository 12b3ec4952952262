/**
 * Seeing a run (issue #19): `gpusvm report FILE|NAME [--seed N | --schedule S]
 * [--kernel 6.17|7.0] -o report.html [--events out.jsonl]`, and the recorded
 * runs behind `gpusvm simulate FILE --events out.jsonl --html out.html` and
 * `gpusvm explore FILE --events out.jsonl`.
 *
 * A recorded run is the scenario run once on the simulated machine (the
 * seeded schedule, or a schedule string replayed exactly with `--schedule`)
 * with a `report/Recorder` observing it; its events go to a JSONL file and/or
 * an offline HTML report (`report/Html.ts`). `report` exits 0 once the report
 * is written, whatever the run's verdict (the report shows it), and 2 on bad
 * input.
 *
 * @since 0.3.0
 */
import { readFileSync, writeFileSync } from "node:fs"
import { Console, Effect, Option } from "effect"
import { Argument, Command, Flag } from "effect/cli"
import { KERNEL_PROFILES, type KernelProfile } from "../domain/GpuSvmConfig.ts"
import { type RunEvent, toJsonl } from "../domain/RunEvent.ts"
import type { Scenario } from "../domain/Scenario.ts"
import type { ScenarioResult } from "../domain/ScenarioResult.ts"
import * as ScenarioTarget from "../explore/ScenarioTarget.ts"
import * as Runner from "../programs/ScenarioRunner.ts"
import * as Assets from "../report/Assets.ts"
import * as Html from "../report/Html.ts"
import * as Recorder from "../report/Recorder.ts"
import { type Loaded, loadWord } from "./load.ts"
import { simulated } from "./machines.ts"

/**
 * How to run the recorded scenario.
 *
 * @category models
 * @since 0.3.0
 */
export interface RecordOptions {
  readonly seed?: number
  readonly schedule?: string
  readonly kernel?: KernelProfile
}

/**
 * A recorded run: its result and events.
 *
 * @category models
 * @since 0.3.0
 */
export interface Recorded {
  readonly result: ScenarioResult
  readonly events: ReadonlyArray<RunEvent>
}

/**
 * Runs `scenario` once on the simulated machine, recorded: by its seeded
 * schedule (`seed` overrides the scenario's), or exactly along `schedule`
 * (`ScenarioTarget.replay`). Fails with a message for a schedule that does not
 * decode.
 *
 * @category running
 * @since 0.3.0
 */
export const record = (scenario: Scenario, options: RecordOptions = {}): Effect.Effect<Recorded, string> =>
  Effect.gen(function*() {
    const rec = Recorder.make()
    const kernel = options.kernel === undefined ? {} : { kernel: options.kernel }
    if (options.schedule !== undefined) {
      const replayed = yield* Effect.mapError(ScenarioTarget.replay(scenario, rec.factory(simulated), options.schedule, kernel), (e) => `--schedule: ${e.message}`)
      return { result: replayed.result, events: rec.finish(replayed.result) }
    }
    const result = yield* Runner.run(scenario, rec.factory(simulated), { ...kernel, ...(options.seed === undefined ? {} : { seed: options.seed }) })
    return { result, events: rec.finish(result) }
  })

/** The scenario's own text (its file), else its decoded JSON. */
const scenarioText = (loaded: Loaded | Scenario): string => {
  if ("source" in loaded) {
    try {
      return readFileSync(loaded.source, "utf8")
    } catch {
      return JSON.stringify(loaded.scenario, null, 2)
    }
  }
  return JSON.stringify(loaded, null, 2)
}

/** The command line of this process, for the report to show. */
const commandLine = (): string => ["gpusvm", ...process.argv.slice(2)].join(" ")

/**
 * Writes a recorded run's outputs: the events as JSONL to `events`, the HTML
 * report to `html` (either optional). Fails with a message when a file cannot
 * be written.
 *
 * @category output
 * @since 0.3.0
 */
export const writeOutputs = (
  run: Recorded,
  scenario: Loaded | Scenario,
  out: { readonly events?: string | undefined; readonly html?: string | undefined }
): Effect.Effect<void, string> =>
  Effect.try({
    try: () => {
      if (out.events !== undefined) writeFileSync(out.events, toJsonl(run.events))
      if (out.html !== undefined) {
        writeFileSync(out.html, Html.render({ result: run.result, events: run.events, scenarioText: scenarioText(scenario), command: commandLine() }, Assets.load()))
      }
    },
    catch: (e) => `cannot write the output: ${e instanceof Error ? e.message : String(e)}`
  })

/**
 * Parses `--seed` / `--schedule` / `--kernel` as `simulate` does; a string is the bad-input message.
 *
 * @category parsing
 * @since 0.3.0
 */
export const parseRecordOptions = (flags: {
  readonly seed: Option.Option<string>
  readonly schedule: Option.Option<string>
  readonly kernel: Option.Option<string>
}): RecordOptions | string => {
  const o: { -readonly [K in keyof RecordOptions]: RecordOptions[K] } = {}
  if (Option.isSome(flags.kernel)) {
    if (!(KERNEL_PROFILES as ReadonlyArray<string>).includes(flags.kernel.value)) return `--kernel: expected one of ${KERNEL_PROFILES.join(", ")}, got "${flags.kernel.value}"`
    o.kernel = flags.kernel.value as KernelProfile
  }
  if (Option.isSome(flags.seed)) {
    const n = Number(flags.seed.value)
    if (!/^\d+$/.test(flags.seed.value) || !Number.isSafeInteger(n)) return `--seed: expected a non-negative integer, got "${flags.seed.value}"`
    o.seed = n
  }
  if (Option.isSome(flags.schedule)) {
    if (o.seed !== undefined) return "--schedule and --seed exclude each other (the schedule decides every interleaving)"
    o.schedule = flags.schedule.value
  }
  return o
}

const setExit = (code: number) =>
  Effect.sync(() => {
    process.exitCode = code
  })

const badInput = (message: string) => Effect.andThen(Console.error(`gpusvm: ${message}`), setExit(2))

/**
 * `gpusvm simulate FILE --events out.jsonl --html out.html` (one scenario,
 * simulated machine): the recorded run, its outputs written, the summary
 * printed by `print`. Exit 0 ok, 1 failed, 2 bad input.
 *
 * @category commands
 * @since 0.3.0
 */
export const simulateRecorded = (
  loaded: ReadonlyArray<Loaded>,
  options: RecordOptions,
  out: { readonly events: Option.Option<string>; readonly html: Option.Option<string> },
  print: (result: ScenarioResult) => Effect.Effect<void>
): Effect.Effect<void> =>
  Effect.gen(function*() {
    if (loaded.length !== 1) return yield* badInput(`--events / --html: give exactly one scenario, got ${loaded.length}`)
    const run = yield* Effect.result(record(loaded[0]!.scenario, options))
    if (run._tag === "Failure") return yield* badInput(run.failure)
    const w = yield* Effect.result(writeOutputs(run.success, loaded[0]!, { events: Option.getOrUndefined(out.events), html: Option.getOrUndefined(out.html) }))
    if (w._tag === "Failure") return yield* badInput(w.failure)
    yield* print(run.success.result)
    yield* setExit(run.success.result.ok ? 0 : 1)
  })

/**
 * `gpusvm explore … --events out.jsonl`: the counterexample's run replayed
 * (its schedule on the minimal scenario), recorded, its events written.
 *
 * @category commands
 * @since 0.3.0
 */
export const writeCounterexampleEvents = (
  scenario: Scenario,
  schedule: string,
  kernel: KernelProfile | undefined,
  file: string
): Effect.Effect<void, string> =>
  Effect.flatMap(record(scenario, { schedule, ...(kernel === undefined ? {} : { kernel }) }), (run) => writeOutputs(run, scenario, { events: file }))

/**
 * `gpusvm report`.
 *
 * @category commands
 * @since 0.3.0
 */
export const report = Command.make(
  "report",
  {
    scenario: Argument.String("scenario").pipe(Argument.withDescription("A scenario file or a built-in scenario name")),
    output: Flag.String("output").pipe(Flag.withAlias("o"), Flag.withDescription("Where to write the HTML report"), Flag.withDefault("report.html")),
    seed: Flag.String("seed").pipe(Flag.withDescription("Seed of the thread interleaving (overrides the scenario's)"), Flag.optional),
    schedule: Flag.String("schedule").pipe(Flag.withDescription("Replay an explorer schedule string exactly"), Flag.optional),
    kernel: Flag.String("kernel").pipe(Flag.withDescription("Kernel profile 6.17 | 7.0 (overrides the scenario's svm.kernel)"), Flag.optional),
    events: Flag.String("events").pipe(Flag.withDescription("Also write the run's events as JSONL to this file"), Flag.optional)
  },
  Effect.fnUntraced(function*(a) {
    const options = parseRecordOptions(a)
    if (typeof options === "string") return yield* badInput(options)
    const loaded = yield* Effect.result(loadWord(a.scenario))
    if (loaded._tag === "Failure") return yield* badInput(loaded.failure.message)
    const run = yield* Effect.result(record(loaded.success.scenario, options))
    if (run._tag === "Failure") return yield* badInput(run.failure)
    const w = yield* Effect.result(writeOutputs(run.success, loaded.success, { html: a.output, events: Option.getOrUndefined(a.events) }))
    if (w._tag === "Failure") return yield* badInput(w.failure)
    const r = run.success.result
    yield* Console.log(`${a.output}: ${r.scenario} ${r.ok ? "ok" : "FAILED"}, ${run.success.events.length} events`)
  })
).pipe(Command.withDescription("Write an offline HTML report of one run: address-space map, actor timeline, metric plots"))
