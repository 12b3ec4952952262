/**
 * The kernel page-move steps of a scenario (`scenarios.md`, kernel-semantics
 * §11.17): `kernel-reclaim`, `kernel-compact`, `kernel-collapse`,
 * `kernel-ksm-merge` and `kernel-split-thp` make the machine's kernel move the
 * pages of all or part of a buffer on its own (`Machine.kernelMove`): reclaim
 * swaps anonymous pages out, compaction / NUMA migration moves them to new
 * frames, khugepaged collapses 512 small pages into a THP, ksmd merges
 * identical pages read-only, a THP split turns one PMD mapping into 512 PTEs.
 * Simulated-only: the native machine skips a scenario that uses them.
 *
 * @since 0.3.0
 */
import { Schema } from "effect"
import { NonNegativeIntLike, PageLength } from "../Numbers.ts"
import { BufferName } from "./Fields.ts"

const optional = Schema.optionalKey

/** The part of a buffer a kernel move acts on: all of it, or `length` bytes (a page multiple) from `offset` (page aligned, see `Checks.ts`). */
const kernelStep = <Op extends string>(op: Op) =>
  Schema.Struct({ op: Schema.Literal(op), buf: BufferName, offset: optional(NonNegativeIntLike), length: optional(PageLength) })

/**
 * `kernel-reclaim`: reclaim swaps the buffer's anonymous pages out (CLEAR; a later touch swaps in to a new frame).
 *
 * @category schemas
 * @since 0.3.0
 */
export const KernelReclaimStep = kernelStep("kernel-reclaim")

/**
 * `kernel-compact`: compaction / NUMA migration moves the buffer's anonymous pages to new frames (CLEAR, same bytes).
 *
 * @category schemas
 * @since 0.3.0
 */
export const KernelCompactStep = kernelStep("kernel-compact")

/**
 * `kernel-collapse`: khugepaged collapses each 2 MiB-aligned block of the buffer into one THP (CLEAR over 2 MiB).
 *
 * @category schemas
 * @since 0.3.0
 */
export const KernelCollapseStep = kernelStep("kernel-collapse")

/**
 * `kernel-ksm-merge`: ksmd merges the buffer's identical pages into read-only KSM pages (CLEAR; a write breaks the COW).
 *
 * @category schemas
 * @since 0.3.0
 */
export const KernelKsmMergeStep = kernelStep("kernel-ksm-merge")

/**
 * `kernel-split-thp`: each THP mapping of the buffer is split into 512 PTEs (CLEAR over 2 MiB, same frames).
 *
 * @category schemas
 * @since 0.3.0
 */
export const KernelSplitThpStep = kernelStep("kernel-split-thp")

/**
 * The kernel page-move step Schemas, in the order of `scenarios.md`.
 *
 * @category schemas
 * @since 0.3.0
 */
export const kernelSteps = [KernelReclaimStep, KernelCompactStep, KernelCollapseStep, KernelKsmMergeStep, KernelSplitThpStep] as const

/**
 * The ops of {@link kernelSteps} with the `Machine.kernelMove` kind each asks for.
 *
 * @category constants
 * @since 0.3.0
 */
export const KERNEL_STEP_KINDS = {
  "kernel-reclaim": "reclaim",
  "kernel-compact": "compact",
  "kernel-collapse": "collapse",
  "kernel-ksm-merge": "ksm-merge",
  "kernel-split-thp": "split-thp"
} as const

/**
 * Schema of a rate of `machine.kernel`: a probability in [0, 1].
 *
 * @category schemas
 * @since 0.3.0
 */
export const KernelRate = Schema.Number.check(
  Schema.makeFilter((n: number) => (Number.isFinite(n) && n >= 0 && n <= 1) || `expected a probability in [0, 1], got ${n}`)
)

/**
 * Schema of `machine.kernel` (kernel-semantics §11.17): per move kind, the probability that the
 * kernel actor performs one at each of its turns, on a random window of a random live buffer;
 * `turns` bounds its turns (default 64). Seeded by the scenario's schedule seed.
 *
 * @category schemas
 * @since 0.3.0
 */
export const KernelBlock = Schema.Struct({
  reclaim: optional(KernelRate),
  compaction: optional(KernelRate),
  khugepaged: optional(KernelRate),
  ksm: optional(KernelRate),
  thpSplit: optional(KernelRate),
  turns: optional(NonNegativeIntLike)
})
/** @category models @since 0.3.0 */
export type KernelBlock = typeof KernelBlock.Type
