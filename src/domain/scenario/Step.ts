/**
 * The step union of a scenario (`scenarios.md`): every op's Schema (from the
 * families in `steps/`), `expect-error` that nests any other step, the decoded
 * step types, and the list of op names.
 *
 * @since 0.1.0
 */
import { Schema } from "effect"
import { accessSteps } from "./steps/Access.ts"
import { boSteps } from "./steps/Bo.ts"
import { controlSteps } from "./steps/Control.ts"
import { exclusiveSteps } from "./steps/Exclusive.ts"
import { execSteps } from "./steps/Exec.ts"
import { NonEmpty } from "./steps/Fields.ts"
import { gpuSteps } from "./steps/Gpu.ts"
import { kernelSteps } from "./steps/Kernel.ts"
import { madviseSteps } from "./steps/Madvise.ts"
import { mappingSteps } from "./steps/Mappings.ts"

const NESTABLE = [...mappingSteps, ...accessSteps, ...gpuSteps, ...execSteps, ...exclusiveSteps, ...madviseSteps, ...kernelSteps, ...controlSteps, ...boSteps] as const

/**
 * Schema of a step allowed inside `expect-error`: any op but `expect-error`.
 *
 * @category schemas
 * @since 0.1.0
 */
export const NestedStep = Schema.Union(NESTABLE).annotate({ expected: "a step object with a known op" })

/**
 * `expect-error`: run `step` and require the typed error `tag` (e.g. `"BadAddress"`).
 *
 * @category schemas
 * @since 0.1.0
 */
export const ExpectErrorStep = Schema.Struct({
  op: Schema.Literal("expect-error"),
  step: NestedStep,
  tag: NonEmpty("error tag")
})

/**
 * Schema of one step: a union tagged by `op`.
 *
 * @category schemas
 * @since 0.1.0
 */
export const Step = Schema.Union([...NESTABLE, ExpectErrorStep]).annotate({ expected: "a step object with a known op" })

/**
 * One decoded step (a union tagged by `op`).
 *
 * @category models
 * @since 0.1.0
 */
export type Step = typeof Step.Type
/**
 * A step allowed inside `expect-error`.
 *
 * @category models
 * @since 0.1.0
 */
export type NestedStep = typeof NestedStep.Type
/**
 * The name of an op.
 *
 * @category models
 * @since 0.1.0
 */
export type StepOp = Step["op"]
/**
 * The step of one op: `StepOf<"mmap">`.
 *
 * @category models
 * @since 0.1.0
 */
export type StepOf<Op extends StepOp> = Extract<Step, { readonly op: Op }>

/** @category models @since 0.1.0 */
export type MmapStep = StepOf<"mmap">
/** @category models @since 0.1.0 */
export type MunmapStep = StepOf<"munmap">
/** @category models @since 0.1.0 */
export type MprotectStep = StepOf<"mprotect">
/** @category models @since 0.1.0 */
export type MadviseDontneedStep = StepOf<"madvise-dontneed">
/** @category models @since 0.1.0 */
export type MremapStep = StepOf<"mremap">
/** @category models @since 0.3.0 */
export type MlockStep = StepOf<"mlock" | "munlock">
/** @category models @since 0.1.0 */
export type WriteStep = StepOf<"cpu-write" | "gpu-write">
/** @category models @since 0.1.0 */
export type ReadStep = StepOf<"cpu-read" | "gpu-read">
/** @category models @since 0.1.0 */
export type GpuAtomicIncStep = StepOf<"gpu-atomic-inc">
/** @category models @since 0.1.0 */
export type GpuFaultStep = StepOf<"gpu-fault">
/** @category models @since 0.1.0 */
export type PrefetchStep = StepOf<"prefetch">
/** The kernel page-move steps (kernel-semantics §11.17). @category models @since 0.3.0 */
export type KernelStep = StepOf<"kernel-reclaim" | "kernel-compact" | "kernel-collapse" | "kernel-ksm-merge" | "kernel-split-thp">
/** @category models @since 0.3.0 */
export type MadviseStep = StepOf<"madvise">
/** @category models @since 0.3.0 */
export type ExpectAttrsStep = StepOf<"expect-attrs">
/** kernel-semantics §11.17. @category models @since 0.3.0 */
export type MakeExclusiveStep = StepOf<"make-exclusive">
/** @category models @since 0.1.0 */
export type ExpectErrorStep = StepOf<"expect-error">
/** @category models @since 0.1.0 */
export type ExpectRangesStep = StepOf<"expect-ranges">
/** @category models @since 0.3.0 */
export type ExpectMetricsStep = StepOf<"expect-metrics">
/** @category models @since 0.4.0 */
export type GpuExecStep = StepOf<"gpu-exec">
/** @category models @since 0.4.0 */
export type ExpectDwordStep = StepOf<"expect-dword">
/** @category models @since 0.1.0 */
export type BarrierStep = StepOf<"barrier">
/** @category models @since 0.4.0 */
export type ForkStep = StepOf<"fork">
/** @category models @since 0.4.0 */
export type BoStep = StepOf<"bo-create" | "bo-bind" | "bo-unbind" | "bo-destroy" | "bo-mmap" | "vm-unbind" | "vm-bind">
/** @category models @since 0.4.0 */
export type WaitStep = StepOf<"wait">
/** Mapping protection names of `mmap` / `mprotect`. @category models @since 0.1.0 */
export type ProtName = MprotectStep["prot"]
/** Mapping kinds of `mmap`. @category models @since 0.1.0 */
export type MappingKind = NonNullable<MmapStep["kind"]>

/**
 * Every op name, in the order of scenarios.md.
 *
 * @category models
 * @since 0.1.0
 */
export const STEP_OPS: ReadonlyArray<StepOp> = [
  ...NESTABLE.map((s) => s.fields.op.literal),
  "expect-error"
]
