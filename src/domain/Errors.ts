/**
 * The typed errors of gpusvm: one `Schema.TaggedError` per errno the kernel
 * returns, each with an `errno` field and a message naming the address or field.
 *
 * | error | errno | kernel meaning |
 * |---|---|---|
 * | `InvalidArgument` | EINVAL | bad argument, address outside the GPU SVM, no chunk fits |
 * | `VmaNotFound` | ENOENT | no VMA at the address |
 * | `PermissionDenied` | EPERM | write on a read-only VMA |
 * | `BadAddress` | EFAULT | address space gone, PROT_NONE, range unmapped, devmem-only violated |
 * | `MixedPages` | EOPNOTSUPP | a range mixes system and device pages (or two allocations) |
 * | `Again` | EAGAIN | transient: retry |
 * | `OutOfMemory` | ENOMEM | allocation failed |
 * | `Busy` | EBUSY | the notifier sequence moved / HMM retries timed out |
 * | `TimedOut` | ETIME | eviction retries timed out |
 * | `AccessDenied` | EACCES | a devmem-only (atomic) fault on memory that can never migrate (kernel-semantics §11.10) |
 * | `InvalidConfig` | EINVAL | a malformed `GpuSvmConfig` field |
 *
 * @since 0.1.0
 */
import { Effect, Schema } from "effect"
import { hex } from "./Address.ts"

/**
 * The errno names the errors carry.
 *
 * @category models
 */
export type Errno = "EINVAL" | "ENOENT" | "EPERM" | "EFAULT" | "EOPNOTSUPP" | "EAGAIN" | "ENOMEM" | "EBUSY" | "ETIME" | "EACCES"

const errnoField = <E extends Errno>(errno: E) =>
  Schema.Literal(errno).pipe(Schema.withConstructorDefault(Effect.succeed(errno)))

/** The common fields: what went wrong (`reason`) and, where there is one, the address. */
const fields = <E extends Errno>(errno: E) => ({
  errno: errnoField(errno),
  reason: Schema.String,
  addr: Schema.optionalKey(Schema.Number)
})

const render = (errno: string, reason: string, addr: number | undefined): string =>
  addr === undefined ? `${errno}: ${reason}` : `${errno}: ${reason} at ${hex(addr)}`

/**
 * EINVAL: an argument is out of range or malformed (e.g. fault address outside the GPU SVM).
 *
 * @category errors
 */
export class InvalidArgument extends Schema.TaggedError<InvalidArgument>()("InvalidArgument", fields("EINVAL")) {
  override get message(): string {
    return render(this.errno, this.reason, this.addr)
  }
}

/**
 * ENOENT: no VMA contains the address (`vma_lookup` returned NULL).
 *
 * @category errors
 */
export class VmaNotFound extends Schema.TaggedError<VmaNotFound>()("VmaNotFound", fields("ENOENT")) {
  override get message(): string {
    return render(this.errno, this.reason, this.addr)
  }
}

/**
 * EPERM: a write-intended access to a VMA without write permission.
 *
 * @category errors
 */
export class PermissionDenied extends Schema.TaggedError<PermissionDenied>()("PermissionDenied", fields("EPERM")) {
  override get message(): string {
    return render(this.errno, this.reason, this.addr)
  }
}

/**
 * EFAULT: the address is not accessible (address space gone, no VMA for HMM, PROT_NONE, range unmapped).
 *
 * @category errors
 */
export class BadAddress extends Schema.TaggedError<BadAddress>()("BadAddress", fields("EFAULT")) {
  override get message(): string {
    return render(this.errno, this.reason, this.addr)
  }
}

/**
 * EOPNOTSUPP: a range holds pages of mixed placement that the call cannot map together.
 *
 * @category errors
 */
export class MixedPages extends Schema.TaggedError<MixedPages>()("MixedPages", fields("EOPNOTSUPP")) {
  override get message(): string {
    return render(this.errno, this.reason, this.addr)
  }
}

/**
 * EAGAIN: a transient condition; the caller retries.
 *
 * @category errors
 */
export class Again extends Schema.TaggedError<Again>()("Again", fields("EAGAIN")) {
  override get message(): string {
    return render(this.errno, this.reason, this.addr)
  }
}

/**
 * ENOMEM: an allocation (frames, IOVA space, VRAM) could not be satisfied.
 *
 * @category errors
 */
export class OutOfMemory extends Schema.TaggedError<OutOfMemory>()("OutOfMemory", fields("ENOMEM")) {
  override get message(): string {
    return render(this.errno, this.reason, this.addr)
  }
}

/**
 * EBUSY: the notifier sequence moved during an HMM walk, or retries ran out of time.
 *
 * @category errors
 */
export class Busy extends Schema.TaggedError<Busy>()("Busy", fields("EBUSY")) {
  override get message(): string {
    return render(this.errno, this.reason, this.addr)
  }
}

/**
 * ETIME: eviction could not complete before the HMM timeout.
 *
 * @category errors
 */
export class TimedOut extends Schema.TaggedError<TimedOut>()("TimedOut", fields("ETIME")) {
  override get message(): string {
    return render(this.errno, this.reason, this.addr)
  }
}

/**
 * EACCES: the access needs device memory (`ctx.devmem_only`, an atomic fault) but
 * the range can never migrate there (`!migrate_devmem`: a file, shmem or hugetlb
 * mapping). Xe's `__xe_svm_handle_pagefault` returns it at once, without trying
 * (kernel-semantics §11.10).
 *
 * @category errors
 */
export class AccessDenied extends Schema.TaggedError<AccessDenied>()("AccessDenied", fields("EACCES")) {
  override get message(): string {
    return render(this.errno, this.reason, this.addr)
  }
}

/**
 * EINVAL for configuration: `field` names the offending `GpuSvmConfig` field, `reason` says why.
 *
 * @category errors
 */
export class InvalidConfig extends Schema.TaggedError<InvalidConfig>()("InvalidConfig", {
  errno: errnoField("EINVAL"),
  field: Schema.String,
  reason: Schema.String
}) {
  override get message(): string {
    return `${this.errno}: invalid config field "${this.field}": ${this.reason}`
  }
}

/**
 * Every errno-carrying error of the domain.
 *
 * @category models
 */
export type SvmError =
  | InvalidArgument
  | VmaNotFound
  | PermissionDenied
  | BadAddress
  | MixedPages
  | Again
  | OutOfMemory
  | Busy
  | TimedOut
  | AccessDenied
  | InvalidConfig
  | GpuFaultError

/**
 * The errors a GPU fault can end on: every errno-carrying error the fault path
 * (HMM, DMA, the GPU SVM core, device memory) returns. `GpuFaultError.cause`
 * is one of these, decoded and encoded like any other field (as `SqlError`'s
 * `reason` is a union of its causes).
 *
 * @category errors
 * @since 0.2.0
 */
export const GpuFaultCause = Schema.Union([
  InvalidArgument,
  VmaNotFound,
  PermissionDenied,
  BadAddress,
  MixedPages,
  Again,
  OutOfMemory,
  Busy,
  TimedOut,
  AccessDenied
])

/**
 * The type of {@link GpuFaultCause}.
 *
 * @category errors
 * @since 0.2.0
 */
export type GpuFaultCause = typeof GpuFaultCause.Type

/**
 * A GPU access that could not be satisfied: the fault handler gave up (bounded
 * retries) or the address is not mirrorable. `cause` is the last typed error
 * of the fault path (absent when the GPU itself refused, e.g. a bad access
 * shape), `retries` how many fault rounds were tried. Build it with
 * {@link GpuFaultError.of}, the one constructor the GPUs, the fault handler and
 * prefetch share.
 *
 * @category errors
 * @since 0.1.0
 */
export class GpuFaultError extends Schema.TaggedError<GpuFaultError>()("GpuFaultError", {
  errno: errnoField("EFAULT"),
  reason: Schema.String,
  addr: Schema.Number,
  cause: Schema.optionalKey(GpuFaultCause),
  retries: Schema.Number
}) {
  /**
   * The GPU fault error at `addr`: `reason` says what gave up, `cause` is the
   * last typed error (if any), `retries` the fault rounds tried (default 0).
   */
  static of(addr: number, reason: string, cause?: GpuFaultCause, retries = 0): GpuFaultError {
    return new GpuFaultError(cause === undefined ? { reason, addr, retries } : { reason, addr, retries, cause })
  }

  /** The `_tag` of the last typed cause, if any (what `expect-error` matches besides `GpuFaultError`). */
  get causeTag(): GpuFaultCause["_tag"] | undefined {
    return this.cause?._tag
  }

  override get message(): string {
    const why = this.cause === undefined ? "" : ` (last error ${this.cause._tag}: ${this.cause.message})`
    const tries = this.retries > 0 ? ` (after ${this.retries} retries)` : ""
    return `GPU fault at ${hex(this.addr)}: ${this.reason}${tries}${why}`
  }
}
