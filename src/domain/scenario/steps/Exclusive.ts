/**
 * The device-exclusive step of a scenario (`scenarios.md`, kernel-semantics
 * §11.17): `make-exclusive`, the device taking pages of a buffer exclusively for
 * its atomics (`make_device_exclusive`, the HMM selftests' `HMM_DMIRROR_EXCLUSIVE`).
 *
 * @since 0.3.0
 */
import { Schema } from "effect"
import { NonNegativeIntLike, PositiveIntLike } from "../Numbers.ts"
import { BufferName } from "./Fields.ts"

const optional = Schema.optionalKey

/**
 * `make-exclusive`: every page of the window (default the whole buffer) made
 * device-exclusive by the driver and mapped on the GPU for atomics; a later CPU
 * touch of a page revokes it (kernel-semantics §11.17).
 *
 * @category schemas
 * @since 0.3.0
 */
export const MakeExclusiveStep = Schema.Struct({
  op: Schema.Literal("make-exclusive"),
  buf: BufferName,
  offset: optional(NonNegativeIntLike),
  length: optional(PositiveIntLike)
})

/**
 * The device-exclusive step Schemas.
 *
 * @category schemas
 * @since 0.3.0
 */
export const exclusiveSteps = [MakeExclusiveStep] as const
