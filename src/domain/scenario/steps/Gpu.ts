/**
 * The GPU SVM driver steps of a scenario (`scenarios.md`): a GPU page fault
 * without an access, a prefetch (migration ahead of use) and eviction of all
 * device memory, one Schema per op.
 *
 * @since 0.1.0
 */
import { Schema } from "effect"
import { NonNegativeIntLike, PositiveIntLike } from "../Numbers.ts"
import { BufferName, vmField } from "./Fields.ts"

const optional = Schema.optionalKey

/**
 * `gpu-fault`: one GPU page fault through the fault handler, no access.
 *
 * @category schemas
 * @since 0.1.0
 */
export const GpuFaultStep = Schema.Struct({
  op: Schema.Literal("gpu-fault"),
  buf: BufferName,
  offset: optional(NonNegativeIntLike),
  write: optional(Schema.Boolean),
  ...vmField
})

/**
 * `prefetch`: migrate ahead of use.
 *
 * @category schemas
 * @since 0.1.0
 */
export const PrefetchStep = Schema.Struct({
  op: Schema.Literal("prefetch"),
  buf: BufferName,
  offset: optional(NonNegativeIntLike),
  length: optional(PositiveIntLike),
  to: Schema.Literals(["vram", "system"]),
  ...vmField
})

/**
 * `evict-all`: every device allocation back to RAM.
 *
 * @category schemas
 * @since 0.1.0
 */
export const EvictAllStep = Schema.Struct({ op: Schema.Literal("evict-all") })

/**
 * The GPU SVM driver step Schemas, in the order of `scenarios.md`.
 *
 * @category schemas
 * @since 0.1.0
 */
export const gpuSteps = [GpuFaultStep, PrefetchStep, EvictAllStep] as const
