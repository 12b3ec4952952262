/**
 * The IGT exec steps of a scenario (`scenarios.md`, issue #17 part 3): IGT's
 * `xe_exec` as `xe_exec_system_allocator` uses it, and the check of one dword.
 *
 * `gpu-exec`: the CPU writes a batch (`MI_STORE_DWORD_IMM` of `value` to each
 * `store` address, or `MI_ATOMIC | MI_ATOMIC_INC`, then
 * `MI_BATCH_BUFFER_END`) into the batch slot `batch`; the GPU fetches the
 * batch (a GPU read through the fault path), decodes it, stores the dwords (GPU
 * writes through the fault path) and writes the user fence `fence`
 * (`USER_FENCE_VALUE`, a GPU write); the CPU polls the fence, resets it, and
 * checks each stored dword. Buffers are named; addresses are resolved when the
 * step runs (the batch holds absolute addresses, as IGT's does).
 *
 * @since 0.4.0
 */
import { Schema } from "effect"
import { intCodec, NonNegativeIntLike } from "../Numbers.ts"
import { BufferName } from "./Fields.ts"

const optional = Schema.optionalKey

/**
 * A place in a named buffer: `buf` + `offset` (default 0).
 *
 * @category schemas
 * @since 0.4.0
 */
export const ExecTarget = Schema.Struct({ buf: BufferName, offset: optional(NonNegativeIntLike) })

/**
 * A 32-bit unsigned value (the dword `MI_STORE_DWORD_IMM` stores).
 *
 * @category schemas
 * @since 0.4.0
 */
export const Dword = intCodec({ expected: "a 32-bit unsigned value", min: 0, max: 0xffff_ffff })

/**
 * `gpu-exec`: one IGT exec (see the module doc). `store` is one target or
 * several (IGT's `multi-fault`: 4 stores in one batch); `atomic` is IGT's
 * `ATOMIC_BATCH` / `partial-atomic-*` (the CPU first writes `value - 1` to the
 * store target, the GPU's `MI_ATOMIC_INC` makes it `value`); `writeBatch:
 * false` runs a batch already in memory (IGT's `-eocheck` odd iterations);
 * `exec: false` only writes the batch (IGT writes batches ahead of their exec:
 * `touch_all_pages`, `partial`, the `-eocheck` next batch); `fence` absent is an exec without a sync (IGT's `touch_all_pages` but the
 * last); `fenceReset` is when the CPU zeroes the fence: `after` its poll
 * (`exec_ufence[0] = 0`, the default), `before` the exec (`data[idx].exec_sync
 * = 0`, IGT's `-race`), `none`; `queue` is the exec queue (default 0);
 * `badBatch` is IGT's fault injection (`exec.address = batch_addr * 2`): the
 * fetch must fault, the queue is banned and the fence must stay unsignalled;
 * `check: false` leaves the dword unchecked (check later with `expect-dword`).
 *
 * @category schemas
 * @since 0.4.0
 */
export const GpuExecStep = Schema.Struct({
  op: Schema.Literal("gpu-exec"),
  batch: ExecTarget,
  store: Schema.Union([ExecTarget, Schema.Array(ExecTarget)]),
  value: Dword,
  atomic: optional(Schema.Boolean),
  writeBatch: optional(Schema.Boolean),
  exec: optional(Schema.Boolean),
  fence: optional(ExecTarget),
  fenceReset: optional(Schema.Literals(["after", "before", "none"])),
  queue: optional(NonNegativeIntLike),
  badBatch: optional(Schema.Boolean),
  check: optional(Schema.Boolean)
})

/**
 * `expect-dword`: the CPU reads the little-endian u32 at `offset` of `buf`
 * and requires `value` (IGT's `igt_assert_eq(data->data, READ_VALUE(data))`).
 *
 * @category schemas
 * @since 0.4.0
 */
export const ExpectDwordStep = Schema.Struct({
  op: Schema.Literal("expect-dword"),
  buf: BufferName,
  offset: optional(NonNegativeIntLike),
  value: Dword
})

/**
 * The exec step Schemas, in the order of `scenarios.md`.
 *
 * @category schemas
 * @since 0.4.0
 */
export const execSteps = [GpuExecStep, ExpectDwordStep] as const
