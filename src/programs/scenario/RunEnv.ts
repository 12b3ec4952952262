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
import type { Effect } from "effect"
import type { Scenario } from "../../domain/Scenario.ts"
import type { ResultFailure, ResultViolation } from "../../domain/ScenarioResult.ts"
import type { Cpu } from "../../services/Cpu.ts"
import type { DevicePagemapApi } from "../../services/DevicePagemap.ts"
import type { Gpu } from "../../services/Gpu.ts"
import type { GpuSvmApi } from "../../services/GpuSvm.ts"
import type { InterleavingApi } from "../../services/Interleaving.ts"
import type { Machine } from "../../services/Machine.ts"
import type { DriverApi } from "../Driver.ts"
import { UnknownBuffer } from "./StepError.ts"

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
 * What the step interpreters of one run share.
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
  /** Set by the `exit` step (the process exited and GPU SVM was torn down). */
  exited: boolean
  /** Why the run is skipped, if it is: the machine cannot move pages on demand (`KernelSteps.ts`, kernel-semantics §11.17). */
  skipped: string | undefined
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
