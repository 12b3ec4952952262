/**
 * The memory-access steps of a scenario (`scenarios.md`): CPU and GPU writes
 * of a pattern, reads compared with an expectation, and the GPU's 32-bit
 * atomic increment, one Schema per op.
 *
 * @since 0.1.0
 */
import { Schema } from "effect"
import { NonNegativeIntLike, PositiveIntLike } from "../Numbers.ts"
import { Expect, Pattern } from "../Patterns.ts"
import { BufferName, vmField } from "./Fields.ts"

const optional = Schema.optionalKey

const writeFields = {
  buf: BufferName,
  offset: optional(NonNegativeIntLike),
  length: optional(PositiveIntLike),
  pattern: Pattern
}
const readFields = {
  buf: BufferName,
  offset: optional(NonNegativeIntLike),
  length: optional(PositiveIntLike),
  expect: Expect
}

/**
 * `cpu-write`: the CPU writes the pattern.
 *
 * @category schemas
 * @since 0.1.0
 */
export const CpuWriteStep = Schema.Struct({ op: Schema.Literal("cpu-write"), ...writeFields })
/**
 * `gpu-write`: the GPU writes the pattern.
 *
 * @category schemas
 * @since 0.1.0
 */
export const GpuWriteStep = Schema.Struct({ op: Schema.Literal("gpu-write"), ...writeFields, ...vmField })
/**
 * `cpu-read`: the CPU reads and compares with `expect`.
 *
 * @category schemas
 * @since 0.1.0
 */
export const CpuReadStep = Schema.Struct({ op: Schema.Literal("cpu-read"), ...readFields })
/**
 * `gpu-read`: the GPU reads and compares with `expect`.
 *
 * @category schemas
 * @since 0.1.0
 */
export const GpuReadStep = Schema.Struct({ op: Schema.Literal("gpu-read"), ...readFields, ...vmField })

/**
 * `gpu-atomic-inc`: a 32-bit atomic increment by the GPU at `offset`.
 *
 * @category schemas
 * @since 0.1.0
 */
export const GpuAtomicIncStep = Schema.Struct({
  op: Schema.Literal("gpu-atomic-inc"),
  buf: BufferName,
  offset: NonNegativeIntLike,
  ...vmField
})

/**
 * The memory-access step Schemas, in the order of `scenarios.md`.
 *
 * @category schemas
 * @since 0.1.0
 */
export const accessSteps = [CpuWriteStep, GpuWriteStep, CpuReadStep, GpuReadStep, GpuAtomicIncStep] as const
