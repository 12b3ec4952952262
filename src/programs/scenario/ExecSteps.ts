/**
 * The IGT exec steps of a scenario (issue #17 part 3, scenarios.md
 * `gpu-exec` / `expect-dword`): IGT's `xe_exec` of a batch that stores
 * dwords and signals a user fence, as `xe_exec_system_allocator` does it,
 * built only on the `Cpu` and `Gpu` services.
 *
 * One exec, in IGT's order (`test_exec`'s loop body, `write_dword`):
 * 1. the CPU writes the batch into its slot: per store `MI_STORE_DWORD_IMM`
 *    (or `MI_ATOMIC | MI_ATOMIC_INC`, after the CPU wrote `value - 1` to the
 *    target, `write_dword(…, atomic)`), then `MI_BATCH_BUFFER_END`; the
 *    addresses are absolute (resolved from the buffer names now);
 * 2. `fenceReset: "before"`: the CPU zeroes the fence (`data[idx].exec_sync = 0`);
 * 3. the GPU fetches the batch: a GPU read through the fault path (the batch
 *    lives in SVM memory, so fetching it may fault and migrate it);
 * 4. the GPU decodes it and runs each command: a store is a GPU write of 4
 *    bytes, an atomic a GPU atomic, both through the fault path;
 * 5. the GPU writes `USER_FENCE_VALUE` (8 bytes) to the fence;
 * 6. the CPU polls the fence (a CPU read: it may fault the page back) and,
 *    `fenceReset: "after"`, zeroes it (`exec_ufence[0] = 0`);
 * 7. the CPU reads each stored dword and compares (`igt_assert_eq`).
 *
 * The model's GPU runs a batch to completion inside the step (no async
 * engine); exec queues are ids, and a queue whose batch faulted is banned
 * (`xe_exec` on it fails): IGT's `FAULT` path (`exec.address = batch_addr *
 * 2`, the wait returns `-ETIME` / `-EIO`) is `badBatch`.
 *
 * @since 0.4.0
 */
import { Effect } from "effect"
import { hex } from "../../domain/Address.ts"
import type { BadAddress, GpuFaultError, InvalidArgument, PermissionDenied } from "../../domain/Errors.ts"
import type { ExpectDwordStep, GpuExecStep } from "../../domain/Scenario.ts"
import { fail, type Interpreter, type RunEnv, windowOf } from "./RunEnv.ts"
import { UnknownBuffer } from "./StepError.ts"

/**
 * The steps this family runs.
 *
 * @category models
 * @since 0.4.0
 */
export type ExecStep = GpuExecStep | ExpectDwordStep

/**
 * The errors of this family: the CPU's and GPU's typed errors, `UnknownBuffer`.
 *
 * @category errors
 * @since 0.4.0
 */
export type ExecStepError = BadAddress | PermissionDenied | InvalidArgument | GpuFaultError | UnknownBuffer

/**
 * IGT's command encodings (`lib/intel_reg.h`): `MI_STORE_DWORD_IMM_GEN4`,
 * `MI_ATOMIC | MI_ATOMIC_INC`, `MI_BATCH_BUFFER_END`; and `USER_FENCE_VALUE`.
 *
 * @category constants
 * @since 0.4.0
 */
export const MI = {
  STORE_DWORD_IMM: ((0x20 << 23) | 2) >>> 0,
  ATOMIC_INC: ((0x2f << 23) | (0x5 << 8)) >>> 0,
  BATCH_BUFFER_END: (0x0a << 23) >>> 0,
  USER_FENCE_VALUE: 0xdeadbeefdeadbeefn
} as const

/** The exec queues a faulted batch banned, per run. */
const banned = new WeakMap<RunEnv, Set<number>>()

type Target = GpuExecStep["batch"]

const addrOf = (env: RunEnv, t: Target): number | UnknownBuffer => {
  const w = windowOf(env, t.buf, t.offset, 0)
  return w instanceof UnknownBuffer ? w : w.addr
}

const u32 = (v: number): Uint8Array => {
  const out = new Uint8Array(4)
  new DataView(out.buffer).setUint32(0, v >>> 0, true)
  return out
}
const u64 = (v: bigint): Uint8Array => {
  const out = new Uint8Array(8)
  new DataView(out.buffer).setBigUint64(0, v, true)
  return out
}
const readU32 = (b: Uint8Array, at = 0): number => new DataView(b.buffer, b.byteOffset, b.length).getUint32(at, true)
const readU64 = (b: Uint8Array): bigint => new DataView(b.buffer, b.byteOffset, b.length).getBigUint64(0, true)

/**
 * The batch of a store list, as IGT's `write_dword` / `__write_dword` build it.
 *
 * @category functions
 * @since 0.4.0
 */
export const encodeBatch = (stores: ReadonlyArray<number>, value: number, atomic: boolean): Uint8Array => {
  const words: Array<number> = []
  for (const a of stores) {
    if (atomic) words.push(MI.ATOMIC_INC, a % 2 ** 32, Math.floor(a / 2 ** 32))
    else words.push(MI.STORE_DWORD_IMM, a % 2 ** 32, Math.floor(a / 2 ** 32), value >>> 0)
  }
  words.push(MI.BATCH_BUFFER_END)
  const out = new Uint8Array(words.length * 4)
  const dv = new DataView(out.buffer)
  words.forEach((w, i) => dv.setUint32(i * 4, w >>> 0, true))
  return out
}

/** One decoded command of a batch. */
type Command = { readonly kind: "store"; readonly addr: number; readonly value: number } | { readonly kind: "atomic"; readonly addr: number }

/**
 * Decodes a fetched batch up to `MI_BATCH_BUFFER_END`; a string says why it is not a batch (the GPU would hang).
 *
 * @category functions
 * @since 0.4.0
 */
export const decodeBatch = (bytes: Uint8Array): ReadonlyArray<Command> | string => {
  const out: Array<Command> = []
  let i = 0
  const word = () => readU32(bytes, (i++) * 4)
  while (i * 4 < bytes.length) {
    const op = word()
    if (op === MI.BATCH_BUFFER_END) return out
    if (op === MI.STORE_DWORD_IMM || op === MI.ATOMIC_INC) {
      if ((i + (op === MI.ATOMIC_INC ? 2 : 3)) * 4 > bytes.length) break
      const lo = word()
      const addr = word() * 2 ** 32 + lo
      out.push(op === MI.ATOMIC_INC ? { kind: "atomic", addr } : { kind: "store", addr, value: word() })
    } else return `unknown command ${hex(op)} at dword ${i - 1}`
  }
  return "no MI_BATCH_BUFFER_END"
}

const gpuExec = Effect.fnUntraced(function*(env: RunEnv, step: GpuExecStep, where: string) {
  const targets = Array.isArray(step.store) ? step.store : [step.store as Target]
  const stores: Array<number> = []
  for (const t of targets) {
    const a = addrOf(env, t)
    if (a instanceof UnknownBuffer) return yield* Effect.fail(a)
    stores.push(a)
  }
  const batchAddr = addrOf(env, step.batch)
  if (batchAddr instanceof UnknownBuffer) return yield* Effect.fail(batchAddr)
  const fence = step.fence === undefined ? undefined : addrOf(env, step.fence)
  if (fence instanceof UnknownBuffer) return yield* Effect.fail(fence)
  const atomic = step.atomic === true
  const batch = encodeBatch(stores, step.value, atomic)
  const queue = step.queue ?? 0
  const bannedHere = banned.get(env) ?? new Set<number>()
  banned.set(env, bannedHere)
  // 1. the CPU writes the batch (write_dword); an atomic first sets the target to value - 1
  if (step.writeBatch !== false) {
    if (atomic) for (const a of stores) yield* env.cpu.write(a, u32(step.value - 1))
    yield* env.cpu.write(batchAddr, batch)
  }
  if (step.exec === false) return
  const reset = step.fenceReset ?? "after"
  // 2. data[idx].exec_sync = 0 (IGT -race: the fence lives in the data buffer)
  if (fence !== undefined && reset === "before") yield* env.cpu.write(fence, u64(0n))
  if (bannedHere.has(queue)) return fail(env, where, `gpu-exec: exec queue ${queue} is banned (an earlier batch on it faulted): xe_exec fails`)
  // 3. the GPU fetches the batch through the fault path
  if (step.badBatch === true) {
    const fetched = yield* Effect.result(env.gpu.access(batchAddr * 2, batch.length, "read"))
    if (fetched._tag === "Success") {
      return fail(env, where, `gpu-exec: the fetch of the bad batch address ${hex(batchAddr * 2)} did not fault`)
    }
    bannedHere.add(queue)
    if (fence !== undefined) {
      const f = yield* env.cpu.read(fence, 8)
      if (readU64(f) === MI.USER_FENCE_VALUE) fail(env, where, `gpu-exec: the user fence at ${hex(fence)} was signalled after a faulting batch`)
    }
    return
  }
  const fetched = yield* env.gpu.access(batchAddr, batch.length, "read")
  // 4. decode and run
  const commands = decodeBatch(fetched)
  if (typeof commands === "string") {
    bannedHere.add(queue)
    return fail(env, where, `gpu-exec: the batch at ${hex(batchAddr)} is not a batch (${commands}): the GPU hangs, the fence is never signalled`)
  }
  for (const c of commands) {
    if (c.kind === "store") yield* env.gpu.access(c.addr, 4, "write", u32(c.value))
    else yield* env.gpu.access(c.addr, 4, "atomic")
  }
  // 5. the user fence
  if (fence !== undefined) {
    yield* env.gpu.access(fence, 8, "write", u64(MI.USER_FENCE_VALUE))
    // 6. the CPU polls it, then resets it
    const f = yield* env.cpu.read(fence, 8)
    if (readU64(f) !== MI.USER_FENCE_VALUE) {
      return fail(env, where, `gpu-exec: the user fence at ${hex(fence)} reads 0x${readU64(f).toString(16)}, expected 0x${MI.USER_FENCE_VALUE.toString(16)}`)
    }
    if (reset === "after") yield* env.cpu.write(fence, u64(0n))
  }
  // 7. the CPU checks the dwords
  if (step.check !== false) {
    for (let i = 0; i < stores.length; i++) {
      const got = readU32(yield* env.cpu.read(stores[i]!, 4))
      if (got !== step.value >>> 0) {
        fail(env, where, `gpu-exec: the dword at ${hex(stores[i]!)} (${targets[i]!.buf}+${targets[i]!.offset ?? 0}) is ${hex(got)}, expected ${hex(step.value)}`)
      }
    }
  }
})

const expectDword = Effect.fnUntraced(function*(env: RunEnv, step: ExpectDwordStep, where: string) {
  const a = addrOf(env, step)
  if (a instanceof UnknownBuffer) return yield* Effect.fail(a)
  const got = readU32(yield* env.cpu.read(a, 4))
  if (got !== step.value >>> 0) fail(env, where, `expect-dword: the dword at ${hex(a)} (${step.buf}+${step.offset ?? 0}) is ${hex(got)}, expected ${hex(step.value)}`)
})

/**
 * Runs one exec step. Errors: the CPU's or GPU's typed error (an access of a
 * store or the fence that could not be satisfied ends the step), or
 * `UnknownBuffer`; unmet expectations (an unsignalled fence, a wrong dword, a
 * batch that is not one) are failures of the run.
 *
 * @category interpreters
 * @since 0.4.0
 */
export const run: Interpreter<ExecStep, ExecStepError> = (env, step, where) =>
  step.op === "gpu-exec" ? gpuExec(env, step, where) : expectDword(env, step, where)
