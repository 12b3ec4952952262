/**
 * The address-space steps of a scenario (`scenarios.md`): the mm system calls
 * `mmap`, `munmap`, `mprotect`, `madvise(MADV_DONTNEED)`, `mremap`, `mlock` and `munlock`, one
 * Schema per op. Their lengths are page multiples.
 *
 * @since 0.1.0
 */
import { Schema } from "effect"
import { Alignment, NonNegativeIntLike, PageLength } from "../Numbers.ts"
import { BufferName } from "./Fields.ts"

const optional = Schema.optionalKey

/** Mapping protection names of `mmap` / `mprotect`. */
const Prot = Schema.Literals(["rw", "r", "rwx", "none"])

/** The part of a buffer a step changes: all of it, or `length` bytes (a page multiple) from `offset`. */
const partFields = {
  buf: BufferName,
  offset: optional(NonNegativeIntLike),
  length: optional(PageLength)
}

/**
 * `mmap`: a new mapping named `as` (malloc is an anonymous mmap); `locked` is `MAP_LOCKED`
 * (kernel-semantics §11.17).
 *
 * @category schemas
 * @since 0.1.0
 */
export const MmapStep = Schema.Struct({
  op: Schema.Literal("mmap"),
  as: BufferName,
  length: PageLength,
  addr: optional(NonNegativeIntLike),
  fixed: optional(Schema.Boolean),
  align: optional(Alignment),
  kind: optional(Schema.Literals(["anonymous", "file", "hugetlb"])),
  shared: optional(Schema.Boolean),
  prot: optional(Prot),
  locked: optional(Schema.Boolean)
})

/**
 * `munmap`: unmap all (no `length`) or part of a buffer.
 *
 * @category schemas
 * @since 0.1.0
 */
export const MunmapStep = Schema.Struct({ op: Schema.Literal("munmap"), ...partFields })

/**
 * `mprotect`: change the protection of all or part of a buffer.
 *
 * @category schemas
 * @since 0.1.0
 */
export const MprotectStep = Schema.Struct({ op: Schema.Literal("mprotect"), ...partFields, prot: Prot })

/**
 * `madvise-dontneed`: drop pages; they read as zero after.
 *
 * @category schemas
 * @since 0.1.0
 */
export const MadviseDontneedStep = Schema.Struct({ op: Schema.Literal("madvise-dontneed"), ...partFields })

/**
 * `mlock`: lock all or part of a buffer — VM_LOCKED, populated at once (kernel-semantics §11.17).
 *
 * @category schemas
 * @since 0.3.0
 */
export const MlockStep = Schema.Struct({ op: Schema.Literal("mlock"), ...partFields })

/**
 * `munlock`: unlock all or part of a buffer (kernel-semantics §11.17).
 *
 * @category schemas
 * @since 0.3.0
 */
export const MunlockStep = Schema.Struct({ op: Schema.Literal("munlock"), ...partFields })

/**
 * `mremap`: move/resize a buffer; `as` names the new buffer (else `buf` keeps its name).
 * `newAddr` is `MREMAP_FIXED | MREMAP_MAYMOVE` to that page-aligned address (it must not
 * overlap the old range; whatever is mapped there is unmapped first, an UNMAP event);
 * `dontUnmap` is `MREMAP_DONTUNMAP` (kernel-semantics §11.15, §11.17 part 7).
 *
 * @category schemas
 * @since 0.1.0
 */
export const MremapStep = Schema.Struct({
  op: Schema.Literal("mremap"),
  buf: BufferName,
  newLength: PageLength,
  as: optional(BufferName),
  newAddr: optional(NonNegativeIntLike),
  dontUnmap: optional(Schema.Boolean)
})

/**
 * The address-space step Schemas, in the order of `scenarios.md`.
 *
 * @category schemas
 * @since 0.1.0
 */
export const mappingSteps = [MmapStep, MunmapStep, MprotectStep, MadviseDontneedStep, MremapStep, MlockStep, MunlockStep] as const
