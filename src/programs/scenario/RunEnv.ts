/**
 * The state one scenario run shares between its step interpreters: the
 * services of the stack, the named buffers, the failures and violations found
 * so far, and the exit flag. Built once per run by `ScenarioRunner.run`; every
 * interpreter (`MemorySteps`, `AccessSteps`, `Expectations`, `Barriers`) takes
 * it as its first argument. Mutated only by the run's own fibers (the threads
 * of the scenario; fibers interleave only at yield points, so plain fields
 * suffice).
 *
 * @since 0.2.0
 */
import type { Deferred, Effect } from "effect"
import type { Scenario } from "../../domain/Scenario.ts"
import type { ResultFailure, ResultViolation } from "../../domain/ScenarioResult.ts"
import type { Cpu } from "../../services/Cpu.ts"
import type { DevicePagemapApi } from "../../services/DevicePagemap.ts"
import type { Gpu } from "../../services/Gpu.ts"
import type { GpuSvmApi } from "../../services/GpuSvm.ts"
import type { InterleavingApi } from "../../services/Interleaving.ts"
import type { Machine } from "../../services/Machine.ts"
import type { Mm } from "../../services/Mm.ts"
import type { DriverApi } from "../Driver.ts"
import { type StepError, UnknownBuffer } from "./StepError.ts"

/**
 * A mapped buffer: its address and length, by the name its `mmap` (or
 * `mremap … as`) gave it.
 *
 * @category models
 * @since 0.2.0
 */
export interface Buffer {
  readonly addr: number
  readonly length: number
}

/**
 * A window of a buffer a step works on: its address, its offset in the buffer
 * and its length (`length` defaults to the rest of the buffer).
 *
 * @category models
 * @since 0.2.0
 */
export interface Window {
  readonly addr: number
  readonly offset: number
  readonly length: number
}

/**
 * One GPU VM of a process of the run (kernel-semantics §11.17: several GPU
 * SVMs per process): its GPU page table, its GPU SVM instance and driver.
 *
 * @category models
 * @since 0.4.0
 */
export interface VmEnv {
  readonly name: string
  readonly gpu: Gpu["Service"]
  readonly svm: GpuSvmApi
  readonly driver: DriverApi
}

/**
 * One process of the run (kernel-semantics §11.17): its machine services, its
 * VMs (the first is the default), its buffer names, and its lifecycle.
 *
 * @category models
 * @since 0.4.0
 */
export interface ProcessEnv {
  readonly name: string
  /** The run's first process (its first VM's ranges are the result's; it exits at the run's end). */
  readonly primary: boolean
  readonly cpu: Cpu["Service"]
  readonly mm: Mm["Service"]
  readonly machine: Machine["Service"]
  readonly pagemaps: ReadonlyArray<DevicePagemapApi>
  readonly vms: ReadonlyArray<VmEnv>
  readonly buffers: Map<string, Buffer>
  /** Buffer objects by name (`bo-create … as`), each with the VM that created it (kernel-semantics §11.17). */
  readonly bos: Map<string, { readonly vm: string; readonly id: number }>
  /** Set once the process exited and every GPU SVM of it was torn down. */
  exited: boolean
  /** Completes when the process has exited (`wait` joins it). */
  readonly done: Deferred.Deferred<void>
}

/**
 * What the processes of one run share besides the result: every process by
 * name (in start order), and the process operations the step interpreters
 * call (`fork`, `wait`), implemented by `ScenarioRunner`.
 *
 * @category models
 * @since 0.4.0
 */
export interface RunWorld {
  readonly processes: Map<string, ProcessEnv>
  /** Why the run is skipped, if it is: the machine cannot move pages on demand (`KernelSteps.ts`, kernel-semantics §11.17). */
  readonly skip: { reason: string | undefined }
  /** The `fork` step of `env`'s thread: the child is started, the step returns. */
  readonly fork: (env: RunEnv, child: string, where: string) => Effect.Effect<void, StepError>
  /** The `wait` step: until process `name` has exited (or the run deadlocked). */
  readonly wait: (env: RunEnv, name: string, where: string) => Effect.Effect<void, StepError>
}

/**
 * What the step interpreters of one run share, as one thread sees it: the
 * run's scenario, interleaving, failures and violations; the thread's process
 * and the VM its step uses (`cpu` … `buffers` are theirs, for short).
 *
 * @category models
 * @since 0.2.0
 */
export interface RunEnv {
  readonly scenario: Scenario
  readonly il: InterleavingApi
  readonly cpu: Cpu["Service"]
  readonly gpu: Gpu["Service"]
  readonly svm: GpuSvmApi
  readonly driver: DriverApi
  readonly machine: Machine["Service"]
  readonly pagemaps: ReadonlyArray<DevicePagemapApi>
  readonly buffers: Map<string, Buffer>
  readonly failures: Array<ResultFailure>
  readonly violations: Array<ResultViolation>
  /** The thread's process. */
  readonly process: ProcessEnv
  /** The VM the step uses. */
  readonly vm: VmEnv
  /** Every process of the run. */
  readonly world: RunWorld
}

/**
 * The view of process `process` and its VM `vm` over the run's shared part.
 *
 * @category constructors
 * @since 0.4.0
 */
export const viewOf = (
  shared: Pick<RunEnv, "scenario" | "il" | "failures" | "violations" | "world">,
  process: ProcessEnv,
  vm: VmEnv
): RunEnv => ({
  scenario: shared.scenario,
  il: shared.il,
  failures: shared.failures,
  violations: shared.violations,
  world: shared.world,
  process,
  vm,
  cpu: process.cpu,
  gpu: vm.gpu,
  svm: vm.svm,
  driver: vm.driver,
  machine: process.machine,
  pagemaps: process.pagemaps,
  buffers: process.buffers
})

/**
 * The view of `env`'s process with VM `name` (kernel-semantics §11.17: a
 * step's `vm`); `env` itself when `name` is absent or already its VM.
 * The decoder checked the name.
 *
 * @category helpers
 * @since 0.4.0
 */
export const withVm = (env: RunEnv, name: string | undefined): RunEnv => {
  if (name === undefined || name === env.vm.name) return env
  const vm = env.process.vms.find((v) => v.name === name)
  return vm === undefined ? env : viewOf(env, env.process, vm)
}

/**
 * The window `[offset, offset + length)` of buffer `buf`, or `UnknownBuffer`.
 *
 * @category helpers
 * @since 0.2.0
 */
export const windowOf = (
  env: RunEnv,
  buf: string,
  offset: number | undefined,
  length: number | undefined
): Window | UnknownBuffer => {
  const b = env.buffers.get(buf)
  if (b === undefined) return new UnknownBuffer({ buf })
  const off = offset ?? 0
  return { addr: b.addr + off, offset: off, length: length ?? Math.max(b.length - off, 0) }
}

/**
 * Records an unmet expectation of the step at `where`.
 *
 * @category helpers
 * @since 0.2.0
 */
export const fail = (env: RunEnv, where: string, detail: string): void => {
  env.failures.push({ step: where, detail })
}

/**
 * The interpreter of one op family: runs a step of that family in the run.
 *
 * @category models
 * @since 0.2.0
 */
export type Interpreter<S, E> = (env: RunEnv, step: S, where: string) => Effect.Effect<void, E>
