/**
 * The buffer-object and GPU VM bind steps of a scenario (`scenarios.md`,
 * kernel-semantics §11.17; IGT xe_exec_system_allocator `bo-unmap`, `busy`,
 * `evict-malloc-mix-bo`), one Schema per op. A BO lives in device memory
 * (`vram_if_possible`); every op acts on one GPU VM (`vm`, default the
 * thread's).
 *
 * @since 0.4.0
 */
import { Schema } from "effect"
import { NonNegativeIntLike, PositiveIntLike } from "../Numbers.ts"
import { BufferName, NonEmpty, vmField } from "./Fields.ts"

const optional = Schema.optionalKey

/**
 * Schema of a buffer-object name: the `as` of `bo-create`, the `bo` of the others.
 *
 * @category schemas
 * @since 0.4.0
 */
export const BoName = NonEmpty("buffer object name")

/**
 * `bo-create`: `xe_bo_create` of `length` bytes (a multiple of 4 KiB) in device memory.
 *
 * @category schemas
 * @since 0.4.0
 */
export const BoCreateStep = Schema.Struct({ op: Schema.Literal("bo-create"), as: BoName, length: PositiveIntLike, ...vmField })

/**
 * `bo-bind`: `VM_BIND MAP` of BO `bo` at buffer `buf`'s address (+ `offset`): the SVM ranges there go first.
 *
 * @category schemas
 * @since 0.4.0
 */
export const BoBindStep = Schema.Struct({ op: Schema.Literal("bo-bind"), bo: BoName, buf: BufferName, offset: optional(NonNegativeIntLike), ...vmField })

/**
 * `bo-unbind`: `VM_BIND UNMAP` of BO `bo`'s binding (the window returns to the mirror).
 *
 * @category schemas
 * @since 0.4.0
 */
export const BoUnbindStep = Schema.Struct({ op: Schema.Literal("bo-unbind"), bo: BoName, ...vmField })

/**
 * `bo-destroy`: `gem_close` of BO `bo` (unbound first if bound; its device memory is freed).
 *
 * @category schemas
 * @since 0.4.0
 */
export const BoDestroyStep = Schema.Struct({ op: Schema.Literal("bo-destroy"), bo: BoName, ...vmField })

/**
 * `bo-mmap`: `xe_bo_map_fixed` of BO `bo` at buffer `buf`'s address (+ `offset`): a shared
 * VM_PFNMAP mapping of the whole BO replaces what is mapped there (MAP_FIXED; UNMAP first), and
 * CPU loads and stores through `buf` there reach the BO's device memory. The window must lie in
 * the buffer; `munmap` of it drops the mapping (the BO's memory lives until then, even after
 * `bo-destroy`).
 *
 * @category schemas
 * @since 0.5.0
 */
export const BoMmapStep = Schema.Struct({ op: Schema.Literal("bo-mmap"), bo: BoName, buf: BufferName, offset: optional(NonNegativeIntLike), ...vmField })

const windowFields = { buf: optional(BufferName), offset: optional(NonNegativeIntLike), length: optional(PositiveIntLike), ...vmField }

/**
 * `vm-unbind`: `VM_BIND UNMAP` of the CPU-address mirror over a buffer's window (no `buf`: the
 * whole GPU VA window); fails `Busy` (EBUSY) while an SVM range there has GPU mappings.
 *
 * @category schemas
 * @since 0.4.0
 */
export const VmUnbindStep = Schema.Struct({ op: Schema.Literal("vm-unbind"), ...windowFields })

/**
 * `vm-bind`: `VM_BIND MAP` with `CPU_ADDR_MIRROR` over a buffer's window (no `buf`: the whole GPU
 * VA window); BO bindings there are replaced.
 *
 * @category schemas
 * @since 0.4.0
 */
export const VmBindStep = Schema.Struct({ op: Schema.Literal("vm-bind"), ...windowFields })

/**
 * The BO and bind step Schemas, in the order of `scenarios.md`.
 *
 * @category schemas
 * @since 0.4.0
 */
export const boSteps = [BoCreateStep, BoBindStep, BoUnbindStep, BoDestroyStep, BoMmapStep, VmUnbindStep, VmBindStep] as const
