/**
 * The Xe madvise steps of a scenario (`scenarios.md`): `madvise` sets GPU-VA
 * range attributes over a buffer window (`DRM_IOCTL_XE_MADVISE`: preferred
 * location with its migration policy, atomic access, PAT index), and
 * `expect-attrs` compares the attribute ranges over a window with a list
 * (`VM_QUERY_MEM_RANGE_ATTRS`). Not the CPU's `madvise(MADV_DONTNEED)`, which is
 * `madvise-dontneed`.
 *
 * @since 0.3.0
 */
import { Schema } from "effect"
import { ATOMIC_ATTRS, MIGRATION_POLICIES } from "../../MemAttrs.ts"
import { NonNegativeIntLike, PageLength } from "../Numbers.ts"
import { BufferName, NonEmpty } from "./Fields.ts"

const optional = Schema.optionalKey

/** The attribute fields shared by both ops (each optional). */
const attrFields = {
  preferredLoc: optional(NonEmpty("preferred location (device, system or a pagemap id)")),
  migrationPolicy: optional(Schema.Literals(MIGRATION_POLICIES)),
  atomic: optional(Schema.Literals(ATOMIC_ATTRS)),
  pat: optional(NonNegativeIntLike)
}

/**
 * `madvise`: `DRM_IOCTL_XE_MADVISE` over the window (all of the buffer, or
 * `length` bytes from `offset`; page-aligned): `preferredLoc` (`"device"`,
 * `"system"` or a pagemap id) with `migrationPolicy` (default `"all-pages"`),
 * `atomic`, `pat` — at least one (else `InvalidArgument` when it runs).
 *
 * @category schemas
 * @since 0.3.0
 */
export const MadviseStep = Schema.Struct({
  op: Schema.Literal("madvise"),
  buf: BufferName,
  offset: optional(NonNegativeIntLike),
  length: optional(PageLength),
  ...attrFields
})

/**
 * One expected attribute range of `expect-attrs`: `[offset, offset + length)`
 * relative to the buffer, and the attributes it must have (only the ones
 * given are compared).
 *
 * @category schemas
 * @since 0.3.0
 */
export const ExpectedAttrRange = Schema.Struct({
  offset: NonNegativeIntLike,
  length: PageLength,
  ...attrFields
})

/**
 * `expect-attrs`: the attribute ranges overlapping the window, clipped to it,
 * must be exactly `ranges` (same boundaries, in order), each with the
 * attributes listed.
 *
 * @category schemas
 * @since 0.3.0
 */
export const ExpectAttrsStep = Schema.Struct({
  op: Schema.Literal("expect-attrs"),
  buf: BufferName,
  offset: optional(NonNegativeIntLike),
  length: optional(PageLength),
  ranges: Schema.Array(ExpectedAttrRange)
})

/**
 * The madvise step Schemas, in the order of `scenarios.md`.
 *
 * @category schemas
 * @since 0.3.0
 */
export const madviseSteps = [MadviseStep, ExpectAttrsStep] as const
