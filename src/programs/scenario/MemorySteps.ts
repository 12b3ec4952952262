/**
 * The CPU address-space steps of a scenario (scenarios.md "Steps"): `mmap`,
 * `munmap`, `madvise-dontneed`, `mprotect`, `mremap`, `mlock`, `munlock`
 * (kernel-semantics §11.17) and `exit`, each one call
 * of the `Cpu` service (`exit` also tears GPU SVM down, as a process exit
 * followed by the driver's `drm_gpusvm_fini`).
 *
 * @since 0.2.0
 */
import { Deferred, Effect } from "effect"
import type { BadAddress, InvalidArgument, OutOfMemory, VmaNotFound } from "../../domain/Errors.ts"
import * as Prot from "../../domain/Prot.ts"
import type { MadviseDontneedStep, MmapStep, MprotectStep, MremapStep, MunmapStep, StepOf } from "../../domain/Scenario.ts"
import type { MlockStep } from "../../domain/scenario/Step.ts"
import { type Interpreter, type ProcessEnv, type RunEnv, windowOf } from "./RunEnv.ts"
import { UnknownBuffer } from "./StepError.ts"

/**
 * The steps this family runs.
 *
 * @category models
 * @since 0.2.0
 */
export type MemoryStep = MmapStep | MunmapStep | MadviseDontneedStep | MprotectStep | MremapStep | MlockStep | StepOf<"exit">

/**
 * The ops of {@link MemoryStep}.
 *
 * @category models
 * @since 0.2.0
 */
export const MEMORY_OPS = ["mmap", "munmap", "madvise-dontneed", "mprotect", "mremap", "mlock", "munlock", "exit"] as const

/**
 * The errors of this family.
 *
 * @category errors
 * @since 0.2.0
 */
export type MemoryStepError = InvalidArgument | OutOfMemory | VmaNotFound | BadAddress | UnknownBuffer

const protOf = (p: MprotectStep["prot"] | undefined) => Prot.fromName(p ?? "rw")

/** The simulated file a `kind: "file"` buffer maps: one file per buffer name (a stable hash of the name). */
const fileSeedOf = (name: string): number => {
  let h = 17
  for (let i = 0; i < name.length; i++) h = (h * 31 + name.charCodeAt(i)) % 1_000_003
  return h
}

const mmap = (env: RunEnv, step: MmapStep) =>
  Effect.map(
    env.cpu.mmap({
      length: step.length,
      ...(step.addr === undefined ? {} : { addr: step.addr }),
      ...(step.fixed === undefined ? {} : { fixed: step.fixed }),
      ...(step.align === undefined ? {} : { align: step.align }),
      ...(step.kind === undefined ? {} : { kind: step.kind }),
      ...(step.shared === undefined ? {} : { shared: step.shared }),
      prot: protOf(step.prot),
      ...(step.locked === undefined ? {} : { locked: step.locked }),
      ...(step.kind === "file" ? { fileSeed: fileSeedOf(step.as) } : {})
    }),
    (addr) => {
      env.buffers.set(step.as, { addr, length: step.length })
    }
  )

const mremap = (env: RunEnv, step: MremapStep) => {
  const b = windowOf(env, step.buf, 0, undefined)
  if (b instanceof UnknownBuffer) return Effect.fail(b)
  return Effect.map(
    env.cpu.mremap(b.addr, b.length, step.newLength, {
      ...(step.newAddr === undefined ? {} : { newAddr: step.newAddr }),
      ...(step.dontUnmap === true ? { dontUnmap: true } : {})
    }),
    (addr) => {
      env.buffers.set(step.as ?? step.buf, { addr, length: step.newLength })
    }
  )
}

/**
 * `exit(2)` of a process of the run, then `fini` of every GPU SVM instance
 * on it (kernel-semantics §11.1, §11.17: a process's exit tears down only its
 * own ranges); completes its `done` (what `wait` joins). Idempotent.
 *
 * @category interpreters
 * @since 0.4.0
 */
export const exitProcess = (p: ProcessEnv): Effect.Effect<void> =>
  Effect.suspend(() => {
    if (p.exited) return Effect.void
    return Effect.andThen(
      Effect.andThen(p.cpu.exit, Effect.forEach(p.vms, (vm) => vm.svm.fini, { discard: true })),
      Effect.andThen(Effect.sync(() => {
        p.exited = true
      }), Deferred.succeed(p.done, undefined))
    )
  })

/**
 * Runs one address-space step. Errors: the `Cpu` call's typed error, or
 * `UnknownBuffer`.
 *
 * @category interpreters
 * @since 0.2.0
 */
export const run: Interpreter<MemoryStep, MemoryStepError> = (env, step) => {
  switch (step.op) {
    case "mmap":
      return mmap(env, step)
    case "mremap":
      return mremap(env, step)
    case "exit":
      return exitProcess(env.process)
    case "munmap":
    case "madvise-dontneed":
    case "mlock":
    case "munlock":
    case "mprotect": {
      const w = windowOf(env, step.buf, step.offset, step.length)
      if (w instanceof UnknownBuffer) return Effect.fail(w)
      if (step.op === "munmap") return env.cpu.munmap(w.addr, w.length)
      if (step.op === "madvise-dontneed") return env.cpu.madviseDontNeed(w.addr, w.length)
      if (step.op === "mlock") return env.cpu.mlock(w.addr, w.length)
      if (step.op === "munlock") return env.cpu.munlock(w.addr, w.length)
      return env.cpu.mprotect(w.addr, w.length, protOf(step.prot))
    }
  }
}
