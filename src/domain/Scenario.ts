/**
 * The scenario file format of `scenarios.md` (a public contract): its Schema,
 * the decoded types, and a pure decoder whose errors name the JSON path.
 *
 * - Numbers may be JSON numbers or strings: decimal `"4096"`, hex `"0x1000"`,
 *   binary multiples `"64K"` / `"2M"` / `"1G"` / `"1T"`. They decode to safe
 *   non-negative integers; fractions (`"2.5K"`), negatives and values `>= 2^53`
 *   are rejected.
 * - Unknown keys are rejected (a typo must not be silently ignored); an unknown
 *   `op` is reported at `….op` with its name.
 * - Checks that need no machine run after the shape: mmap/munmap/mprotect/
 *   madvise/mremap lengths are page multiples, every `buf` names a buffer some
 *   `mmap` / `mremap` creates with `as` (earlier in the same thread, or in any
 *   other thread), offsets and lengths stay inside buffers of statically known
 *   length, and the `svm` block obeys the `GpuSvmConfig` rules; a thread does
 *   not create a buffer name that is still live there, and every
 *   `expect-error` names a known error tag (`EXPECTABLE_ERROR_TAGS`).
 * - A top-level `steps` is normalised to `threads: [{ steps }]`, and
 *   `policy.migrate` defaults to `"xe"`.
 *
 * Every error is one line `FILE: PATH: MESSAGE`, the path written with dotted
 * keys and `[index]`, e.g. `steps[3].length: expected a positive integer, got -1`.
 *
 * The parts live under `scenario/`, one job each: `Numbers.ts` (the sizes
 * codec), `Patterns.ts`, `steps/*.ts` (one Schema per op, by op family:
 * address space, access, GPU SVM driver, control) and `Step.ts` (the union),
 * `Blocks.ts` (`machine`, `svm`, `policy`, threads), `Checks.ts` (the
 * cross-step checks), `Issues.ts` (issue formatting) and `Codec.ts` (the
 * normal form and the decoders). This module is the public entry: it
 * re-exports them under the names below.
 *
 * @since 0.1.0
 */
export {
  BINARY_UNITS,
  formatHex,
  formatSize,
  type IntLikeProblem,
  MAX_NOTIFIER_SIZE,
  NonNegativeIntLike,
  NotifierSize,
  PageLength,
  PageMultiple,
  parseIntLike,
  PositiveIntLike
} from "./scenario/Numbers.ts"
export { Expect, expectedBytes, Pattern, patternByte } from "./scenario/Patterns.ts"
export {
  type BarrierStep,
  type ExpectErrorStep,
  type ExpectRangesStep,
  type GpuAtomicIncStep,
  type ExpectDwordStep,
  type GpuExecStep,
  type GpuFaultStep,
  type MadviseDontneedStep,
  type MappingKind,
  type MmapStep,
  type MprotectStep,
  type MremapStep,
  type MunmapStep,
  NestedStep,
  type PrefetchStep,
  type ProtName,
  type ReadStep,
  Step,
  STEP_OPS,
  type StepOf,
  type StepOp,
  type WriteStep
} from "./scenario/Step.ts"
export {
  DEFAULT_MIGRATE_POLICY,
  MachineBlock,
  MigratePolicy,
  ScenarioThread,
  SvmSpec
} from "./scenario/Blocks.ts"
export { EXPECTABLE_ERROR_TAGS } from "./scenario/Checks.ts"
export {
  decodeScenario,
  decodeScenarioEffect,
  decodeScenarioText,
  PARSE_OPTIONS,
  Scenario,
  ScenarioNormal
} from "./scenario/Codec.ts"
export {
  describeIssue,
  escapeExcerpt,
  formatPath,
  ScenarioDecodeError,
  ScenarioIssue,
  stepPath,
  toDecodeError
} from "./scenario/Issues.ts"
