/**
 * The scenario codec (`scenarios.md`): a file as written (`Blocks.ts`), checked
 * across steps (`Checks.ts`), normalised (a top-level `steps` becomes
 * `threads: [{ steps }]`, `policy.migrate` defaults to `"xe"`), and the pure
 * decoders whose errors name the JSON path (`Issues.ts`).
 *
 * @since 0.1.0
 */
import { Effect, Exit, Schema, SchemaTransformation } from "effect"
import type { SchemaAST } from "effect"
import { commonFields, DEFAULT_MIGRATE_POLICY, MigratePolicy, ScenarioFileShape, type ScenarioFileType, type ScenarioProcess, ScenarioThread, VmNames } from "./Blocks.ts"
import { bufferIssues, errorTagIssues, exactlyOneOfStepsThreads, execTargetIssues, kernelStepIssues, liveNameIssues, memoryIssues, processIssues, svmIssues } from "./Checks.ts"
import { ProcessName } from "./steps/Fields.ts"
import { escapeExcerpt, type PathIssue, ScenarioDecodeError, toDecodeError } from "./Issues.ts"

/**
 * File order of two issue paths: thread and step indices compared as numbers;
 * anything else keeps the order the checks found them in (a stable sort).
 */
const byFileOrder = (a: PathIssue, b: PathIssue): number => {
  for (let i = 0; i < Math.min(a.path.length, b.path.length); i++) {
    const x = a.path[i]
    const y = b.path[i]
    if (x === y) continue
    return typeof x === "number" && typeof y === "number" ? x - y : 0
  }
  return 0
}

const ScenarioFile = ScenarioFileShape.check(
  Schema.makeFilter(exactlyOneOfStepsThreads, undefined, true),
  Schema.makeFilter((f: ScenarioFileType) => {
    const issues = [...svmIssues(f), ...processIssues(f), ...bufferIssues(f), ...liveNameIssues(f), ...errorTagIssues(f), ...memoryIssues(f), ...kernelStepIssues(f), ...execTargetIssues(f)].sort(byFileOrder)
    return issues.length === 0 ? true : issues
  })
)

/**
 * Schema of a thread in the normal form: a file's thread, plus the name of its
 * process when the file used the `processes` form (kernel-semantics §11.17).
 *
 * @category schemas
 * @since 0.4.0
 */
export const ScenarioNormalThread = Schema.Struct({
  ...ScenarioThread.fields,
  process: Schema.optionalKey(ProcessName)
})

/** A file's process as normal-form threads (each naming the process). */
const threadsOfProcess = (p: ScenarioProcess): Array<typeof ScenarioNormalThread.Type> =>
  (p.threads ?? (p.steps === undefined ? [] : [{ steps: p.steps }])).map((t) => ({ ...t, process: p.name }))

/**
 * Schema of a decoded scenario (the normal form: always `threads`, always a
 * `policy`). Decoding it directly accepts only the normal form; files go
 * through {@link Scenario}.
 *
 * @category schemas
 * @since 0.1.0
 */
export const ScenarioNormal = Schema.Struct({
  ...commonFields,
  policy: Schema.Struct({ migrate: MigratePolicy }),
  threads: Schema.Array(ScenarioNormalThread),
  /** The VMs of the one process (`steps` / `threads` forms). */
  vms: Schema.optionalKey(VmNames),
  /** The processes (the `processes` form): names and VMs; each thread names its process. */
  processes: Schema.optionalKey(Schema.Array(Schema.Struct({ name: ProcessName, vms: Schema.optionalKey(VmNames) })))
})

/**
 * The codec from a scenario file (`Encoded`, as written in JSON) to a decoded
 * `Scenario` (`Type`, normal form). Strict about unknown keys only with
 * {@link PARSE_OPTIONS}: decode through {@link decodeScenario}.
 *
 * @category schemas
 * @since 0.1.0
 */
export const Scenario = ScenarioFile.pipe(
  Schema.decodeTo(
    Schema.toType(ScenarioNormal),
    SchemaTransformation.transform({
      decode: (f: ScenarioFileType): typeof ScenarioNormal.Type => {
        const { steps, threads, policy, processes, ...rest } = f
        const migrate = { migrate: policy?.migrate ?? DEFAULT_MIGRATE_POLICY }
        if (processes !== undefined) {
          return {
            ...rest,
            policy: migrate,
            threads: processes.flatMap(threadsOfProcess),
            processes: processes.map((p) => (p.vms === undefined ? { name: p.name } : { name: p.name, vms: p.vms }))
          }
        }
        return { ...rest, policy: migrate, threads: threads ?? [{ steps: steps ?? [] }] }
      },
      encode: (s: typeof ScenarioNormal.Type): ScenarioFileType => {
        const { processes, threads, ...rest } = s
        const plain = (ts: ReadonlyArray<typeof ScenarioNormalThread.Type>) => ts.map(({ process: _p, ...t }) => t)
        if (processes === undefined) return { ...rest, threads: plain(threads) }
        return {
          ...rest,
          processes: processes.map((p) => ({ ...p, threads: plain(threads.filter((t) => t.process === p.name)) }))
        }
      }
    })
  )
)

/**
 * A decoded scenario: one or more threads of steps, plus the machine, svm and
 * policy settings.
 *
 * @category models
 * @since 0.1.0
 */
export type Scenario = typeof Scenario.Type

/**
 * The parse options the decoder uses: all errors, unknown keys rejected, inputs
 * reported in messages.
 *
 * @category parsing
 * @since 0.1.0
 */
export const PARSE_OPTIONS: SchemaAST.ParseOptions = { errors: "all", onExcessProperty: "error", reportInput: true }

const decodeRaw = Schema.decodeUnknownExit(Scenario)

/**
 * Decodes a parsed JSON value into a `Scenario` (pure, synchronous). Fails with
 * a `ScenarioDecodeError` listing every problem with its JSON path; `file`
 * prefixes each message line.
 *
 * @category parsing
 * @since 0.1.0
 */
export const decodeScenario = (json: unknown, file?: string): Exit.Exit<Scenario, ScenarioDecodeError> => {
  const exit = decodeRaw(json, PARSE_OPTIONS)
  if (Exit.isSuccess(exit)) return Exit.succeed(exit.value)
  const error = exit.cause.reasons.find((r) => r._tag === "Fail")
  return error === undefined
    ? Exit.failCause(exit.cause as never)
    : Exit.fail(toDecodeError(error.error.issue, file))
}

/**
 * `decodeScenario` as an Effect.
 *
 * @category parsing
 * @since 0.1.0
 */
export const decodeScenarioEffect = (json: unknown, file?: string): Effect.Effect<Scenario, ScenarioDecodeError> =>
  Effect.suspend(() => decodeScenario(json, file))

/**
 * Parses JSON text, then decodes it; a leading UTF-8 byte-order mark is
 * skipped. Text that is not JSON fails with path `<root>` and the parser's
 * message (escaped when it quotes unprintable input).
 *
 * @category parsing
 * @since 0.1.0
 */
export const decodeScenarioText = (text: string, file?: string): Exit.Exit<Scenario, ScenarioDecodeError> => {
  let json: unknown
  try {
    json = JSON.parse(text.startsWith("\uFEFF") ? text.slice(1) : text)
  } catch (e) {
    // the parser quotes the input around the error: show it escaped, never raw
    const parserMessage = e instanceof Error ? e.message : String(e)
    const reason = `invalid JSON: ${/^[\x20-\x7e]*$/.test(parserMessage) ? parserMessage : escapeExcerpt(parserMessage, 120)}`
    return Exit.fail(new ScenarioDecodeError({ ...(file === undefined ? {} : { file }), path: "<root>", reason, issues: [{ path: "<root>", reason }] }))
  }
  return decodeScenario(json, file)
}
