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
import { hex } from "../../domain/Address.ts"
import type { BadAddress, GpuFaultError, OutOfMemory, PermissionDenied, TimedOut } from "../../domain/Errors.ts"
import { expectedBytes, patternByte, type GpuAtomicIncStep, type GpuFaultStep, type PrefetchStep, type ReadStep, type StepOf, type WriteStep } from "../../domain/Scenario.ts"
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
export type AccessStepError = BadAddress | PermissionDenied | GpuFaultError | OutOfMemory | TimedOut | UnknownBuffer

const firstDifference = (got: Uint8Array, want: Uint8Array): number => {
  for (let i = 0; i < want.length; i++) if (got[i] !== want[i]) return i
  return -1
}

const write = (env: RunEnv, step: WriteStep) => {
  const w = windowOf(env, step.buf, step.offset, step.length)
  if (w instanceof UnknownBuffer) return Effect.fail(w)
  const bytes = new Uint8Array(w.length)
  for (let i = 0; i < w.length; i++) bytes[i] = patternByte(step.pattern, w.offset + i)
  return step.op === "cpu-write" ? env.cpu.write(w.addr, bytes) : Effect.asVoid(env.gpu.access(w.addr, w.length, "write", bytes))
}

const read = (env: RunEnv, step: ReadStep, where: string) => {
  const w = windowOf(env, step.buf, step.offset, step.length)
  if (w instanceof UnknownBuffer) return Effect.fail(w)
  const got: Effect.Effect<Uint8Array | void, BadAddress | GpuFaultError> = step.op === "cpu-read"
    ? env.cpu.read(w.addr, w.length)
    : env.gpu.access(w.addr, w.length, "read")
  return Effect.map(got, (out) => {
    const want = expectedBytes(step.expect, w.length, w.offset)
    const bytes = out instanceof Uint8Array ? out : new Uint8Array(0)
    const at = bytes.length < want.length ? bytes.length : firstDifference(bytes, want)
    if (at >= 0) {
      fail(env, where, `${step.op} of ${step.buf}: byte at offset ${w.offset + at} (${hex(w.addr + at)}) is ${bytes[at] ?? "missing"}, expected ${want[at]}`)
    }
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
