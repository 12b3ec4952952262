/**
 * The data steps of a scenario (scenarios.md "Steps"): CPU and GPU reads and
 * writes of a buffer window with a byte pattern, the GPU atomic, a direct GPU
 * fault, prefetch and eviction of all device memory. Reads compare what they
 * got with the pattern they expect and record the first differing byte as a
 * failure; the calls' typed errors end the step.
 *
 * @since 0.2.0
 */
import { Effect } from "effect"
import { Buffer } from "node:buffer"
import { hex } from "../../domain/Address.ts"
import type { BadAddress, GpuFaultError, InvalidArgument, OutOfMemory, PermissionDenied, TimedOut } from "../../domain/Errors.ts"
import { expectedBytes, type GpuAtomicIncStep, type GpuFaultStep, type PrefetchStep, type ReadStep, type StepOf, type WriteStep } from "../../domain/Scenario.ts"
import { patternView } from "../../domain/scenario/Patterns.ts"
import { fail, type Interpreter, type RunEnv, windowOf } from "./RunEnv.ts"
import { UnknownBuffer } from "./StepError.ts"

/**
 * The steps this family runs.
 *
 * @category models
 * @since 0.2.0
 */
export type AccessStep = WriteStep | ReadStep | GpuAtomicIncStep | GpuFaultStep | PrefetchStep | StepOf<"evict-all">

/**
 * The ops of {@link AccessStep}.
 *
 * @category models
 * @since 0.2.0
 */
export const ACCESS_OPS = ["cpu-write", "gpu-write", "cpu-read", "gpu-read", "gpu-atomic-inc", "gpu-fault", "prefetch", "evict-all"] as const

/**
 * The errors of this family.
 *
 * @category errors
 * @since 0.2.0
 */
export type AccessStepError = BadAddress | PermissionDenied | InvalidArgument | GpuFaultError | OutOfMemory | TimedOut | UnknownBuffer

const view = (a: Uint8Array) => Buffer.from(a.buffer, a.byteOffset, a.length)

/** The first index where `got` differs from `want` (-1: equal), memcmp first (the common, equal case). */
const firstDifference = (got: Uint8Array, want: Uint8Array): number => {
  if (view(got).equals(view(want))) return -1
  for (let i = 0; i < want.length; i++) if (got[i] !== want[i]) return i
  return -1
}

/**
 * The most bytes one CPU or GPU call of a step moves: a larger window streams
 * in pieces of this size (patterns generated and compared piece by piece), so
 * a whole-buffer access of a huge buffer never materialises the buffer and
 * never exceeds `MAX_RW_COUNT` (issue #18).
 *
 * @category constants
 * @since 0.2.0
 */
export const STREAM_PIECE = 8 * 1024 * 1024

/** `f(offset, length)` for each piece of `[0, length)`, in order, stopping when `f` returns true. */
const pieces = <E>(length: number, f: (offset: number, length: number) => Effect.Effect<boolean, E>): Effect.Effect<void, E> =>
  Effect.gen(function*() {
    for (let off = 0; off < length; off += STREAM_PIECE) {
      if (yield* f(off, Math.min(STREAM_PIECE, length - off))) return
    }
  })

const write = (env: RunEnv, step: WriteStep) => {
  const w = windowOf(env, step.buf, step.offset, step.length)
  if (w instanceof UnknownBuffer) return Effect.fail(w)
  return pieces(w.length, (off, len) => {
    // a view of the shared pattern ramp: the memory calls copy it (issue #16: no 8 MiB buffer per write)
    const bytes = patternView(step.pattern, w.offset + off, len)
    const put: Effect.Effect<void, BadAddress | InvalidArgument | PermissionDenied | GpuFaultError> = step.op === "cpu-write"
      ? env.cpu.write(w.addr + off, bytes)
      : Effect.asVoid(env.gpu.access(w.addr + off, len, "write", bytes))
    return Effect.as(put, false)
  })
}

const read = (env: RunEnv, step: ReadStep, where: string) => {
  const w = windowOf(env, step.buf, step.offset, step.length)
  if (w instanceof UnknownBuffer) return Effect.fail(w)
  return pieces(w.length, (off, len) => {
    const got: Effect.Effect<Uint8Array | void, BadAddress | InvalidArgument | GpuFaultError> = step.op === "cpu-read"
      ? env.cpu.read(w.addr + off, len)
      : env.gpu.access(w.addr + off, len, "read")
    return Effect.map(got, (out) => {
      const want = expectedBytes(step.expect, len, w.offset + off)
      const bytes = out instanceof Uint8Array ? out : new Uint8Array(0)
      const at = bytes.length < want.length ? bytes.length : firstDifference(bytes, want)
      if (at < 0) return false
      const o = w.offset + off + at
      fail(env, where, `${step.op} of ${step.buf}: byte at offset ${o} (${hex(w.addr + off + at)}) is ${bytes[at] ?? "missing"}, expected ${want[at]}`)
      return true
    })
  })
}

/**
 * Runs one data step. Errors: the CPU's or GPU's typed error (a GPU access that
 * could not be satisfied is `GpuFaultError` with its typed cause), or
 * `UnknownBuffer`.
 *
 * @category interpreters
 * @since 0.2.0
 */
export const run: Interpreter<AccessStep, AccessStepError> = (env, step, where) => {
  switch (step.op) {
    case "cpu-write":
    case "gpu-write":
      return write(env, step)
    case "cpu-read":
    case "gpu-read":
      return read(env, step, where)
    case "evict-all":
      return Effect.forEach(env.pagemaps, (p) => p.evictAll, { discard: true })
    case "gpu-atomic-inc":
    case "gpu-fault":
    case "prefetch": {
      const w = windowOf(env, step.buf, step.offset, step.op === "prefetch" ? step.length : step.op === "gpu-fault" ? 1 : 4)
      if (w instanceof UnknownBuffer) return Effect.fail(w)
      if (step.op === "gpu-atomic-inc") return Effect.asVoid(env.gpu.access(w.addr, 4, "atomic"))
      if (step.op === "gpu-fault") return env.driver.handleFault({ addr: w.addr, write: step.write ?? false, atomic: false })
      return env.driver.prefetch(w.addr, w.addr + w.length, { to: step.to })
    }
  }
}
