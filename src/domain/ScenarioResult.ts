/**
 * The result of one scenario run, as `gpusvm simulate FILE --json` prints it
 * (one JSON object per scenario on stdout; a public contract of scenarios.md).
 *
 * The schema is exact: every key of the contract is required, and unknown keys
 * are rejected by {@link decodeScenarioResult}, except where the contract is
 * open — `metrics.invalidations` carries one count per MMU notifier event
 * (`unmap`, `clear`, `migrate` always present; the CLI prints every event of
 * `enum mmu_notifier_event`, zeros included, on both machines:
 * {@link withEveryInvalidationEvent}) and a range's `flags` is a map of flag
 * names to booleans. `skipped` is optional: a scenario the machine cannot
 * express, not run.
 * `ok` must agree with the lists: true exactly when there are no violations and
 * no failures.
 *
 * @since 0.1.0
 */
import { Schema } from "effect"
import type { Exit, SchemaAST } from "effect"
import { MMU_EVENTS } from "./MmuRange.ts"

const Count = Schema.Int.check(Schema.isGreaterThanOrEqualTo(0))
const Address = Schema.Int.check(Schema.isGreaterThanOrEqualTo(0))

/**
 * An invariant breach (design.md §8): which invariant and what was seen.
 *
 * @category schemas
 * @since 0.1.0
 */
export const ResultViolation = Schema.Struct({ invariant: Schema.String, detail: Schema.String })
/** @category models @since 0.1.0 */
export type ResultViolation = typeof ResultViolation.Type

/**
 * An unmet expectation: the step, named by its JSON path (`steps[3]`,
 * `threads[1].steps[0]`) or its index, and what went wrong.
 *
 * @category schemas
 * @since 0.1.0
 */
export const ResultFailure = Schema.Struct({
  /** The step's JSON path (`steps[3]`, `threads[1].steps[0]`), or `<scenario>` for whole-run problems. */
  step: Schema.String,
  detail: Schema.String
})
/** @category models @since 0.1.0 */
export type ResultFailure = typeof ResultFailure.Type

/**
 * Fault-handler retries by the errno that caused them.
 *
 * @category schemas
 * @since 0.1.0
 */
export const FaultRetries = Schema.Struct({
  EAGAIN: Count,
  EBUSY: Count,
  EOPNOTSUPP: Count,
  EFAULT: Count,
  EPERM: Count
})
/** @category models @since 0.1.0 */
export type FaultRetries = typeof FaultRetries.Type

/**
 * Invalidations by MMU notifier event: `unmap`, `clear`, `migrate` always,
 * plus any other event that occurred (`protection-vma`, `release`, …).
 *
 * @category schemas
 * @since 0.1.0
 */
export const Invalidations = Schema.StructWithRest(
  Schema.Struct({ unmap: Count, clear: Count, migrate: Count }),
  [Schema.Record(Schema.String, Count)]
)
/** @category models @since 0.1.0 */
export type Invalidations = typeof Invalidations.Type

/**
 * The run's counters.
 *
 * @category schemas
 * @since 0.1.0
 */
export const ResultMetrics = Schema.Struct({
  faults: Count,
  faultRetries: FaultRetries,
  rangesCreated: Count,
  rangesRemoved: Count,
  notifiersCreated: Count,
  notifiersRemoved: Count,
  invalidations: Invalidations,
  bytesToVram: Count,
  bytesToRam: Count,
  evictions: Count,
  gcRuns: Count,
  dmaMappingsLive: Count,
  deviceBytesLive: Count,
  /** Madvise calls that zapped GPU PTEs (`xe_vm_invalidate_madvise_range`); absent when 0. */
  madviseInvalidations: Schema.optionalKey(Count)
})
/** @category models @since 0.1.0 */
export type ResultMetrics = typeof ResultMetrics.Type

/**
 * A GPU SVM range live at the end: `[start, end)` and its flags by name.
 *
 * @category schemas
 * @since 0.1.0
 */
export const ResultRange = Schema.Struct({
  start: Address,
  end: Address,
  flags: Schema.Record(Schema.String, Schema.Boolean)
})
/** @category models @since 0.1.0 */
export type ResultRange = typeof ResultRange.Type

/**
 * A notifier live at the end: `[start, end)`.
 *
 * @category schemas
 * @since 0.1.0
 */
export const ResultNotifier = Schema.Struct({ start: Address, end: Address })
/** @category models @since 0.1.0 */
export type ResultNotifier = typeof ResultNotifier.Type

/**
 * Schema of the `--json` result of one scenario.
 *
 * @category schemas
 * @since 0.1.0
 */
export const ScenarioResult = Schema.Struct({
  scenario: Schema.String,
  ok: Schema.Boolean,
  violations: Schema.Array(ResultViolation),
  failures: Schema.Array(ResultFailure),
  metrics: ResultMetrics,
  ranges: Schema.Array(ResultRange),
  notifiers: Schema.Array(ResultNotifier),
  durationMs: Schema.Finite.check(Schema.isGreaterThanOrEqualTo(0)),
  /**
   * Present when the scenario was not run because the machine cannot express
   * it (the native machine and a simulated file mapping, or hugetlb on a host
   * without reserved huge pages): why. A skipped result is `ok` (nothing
   * failed) with zero metrics.
   */
  skipped: Schema.optionalKey(Schema.String)
}).check(
  Schema.makeFilter((r) =>
    r.ok === (r.violations.length === 0 && r.failures.length === 0) ||
    { path: ["ok"], issue: `expected ok to be ${!r.ok} (there are ${r.violations.length} violations and ${r.failures.length} failures)` }
  )
)

/**
 * The `--json` result of one scenario.
 *
 * @category models
 * @since 0.1.0
 */
export type ScenarioResult = typeof ScenarioResult.Type

/**
 * Parse options of {@link decodeScenarioResult}: all errors, unknown keys rejected.
 *
 * @category parsing
 * @since 0.1.0
 */
export const RESULT_PARSE_OPTIONS: SchemaAST.ParseOptions = { errors: "all", onExcessProperty: "error" }

const decode = Schema.decodeUnknownExit(ScenarioResult)

/**
 * Decodes one `--json` result object (e.g. a parsed line of stdout) strictly.
 *
 * @category parsing
 * @since 0.1.0
 */
export const decodeScenarioResult = (u: unknown): Exit.Exit<ScenarioResult, Schema.SchemaError> =>
  decode(u, RESULT_PARSE_OPTIONS)

/**
 * `invalidations` with every MMU notifier event as a key (`unmap`, `clear`,
 * `migrate`, then the rest of `enum mmu_notifier_event` in declaration order),
 * zero where the event did not occur — so both machines print the same keys,
 * whichever events each can raise.
 *
 * @category constructors
 * @since 0.2.0
 */
export const withEveryInvalidationEvent = (r: ScenarioResult): ScenarioResult => {
  const invalidations: Record<string, number> = { unmap: 0, clear: 0, migrate: 0 }
  for (const e of MMU_EVENTS) invalidations[e] = 0
  return { ...r, metrics: { ...r.metrics, invalidations: { ...invalidations, ...r.metrics.invalidations } as Invalidations } }
}
