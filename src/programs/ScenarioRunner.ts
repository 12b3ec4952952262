/**
 * `ScenarioRunner`: runs a decoded scenario (scenarios.md) on a machine the
 * caller supplies, checks every expectation and the invariants of design.md
 * §8, and returns the `--json` result object. Written only against service
 * interfaces: the CLI (or a test) passes a `StackFactory` that builds the
 * whole stack (machine, GPU SVM, policy, driver — `Driver.simulated` /
 * `Driver.native`) from the scenario's `machine`, `svm` and `policy` blocks.
 *
 * The steps are run by one interpreter per op family (`scenario/`):
 * `MemorySteps` (mmap … exit), `AccessSteps` (reads, writes, faults, prefetch,
 * eviction), `MadviseSteps` (Xe madvise attributes), `Expectations` (expect-ranges, expect-error), `Barriers`
 * (barriers and deadlock detection); `Invariants` ends the run.
 *
 * Threads run concurrently (one fiber each), meet at named barriers, and
 * interleave as the machine's seeded schedule decides. A failed expectation is
 * recorded and the thread goes on; an unexpected typed error (or defect) is
 * recorded and ends that thread. The run never fails: every problem is a
 * `failure` (an unmet expectation) or a `violation` (an invariant breach).
 *
 * After the threads: the live ranges and notifiers are captured for the
 * result, the tree-integrity invariant is checked, then the process exits (if
 * it has not) and GPU SVM is torn down (`fini`), and the no-leak invariant is
 * checked: no notifier, DMA mapping or device allocation may remain.
 *
 * @since 0.1.0
 */
import { Clock, Context, Effect, Exit, type Layer, Option, Scope } from "effect"
import type { GpuSvmConfigInput, KernelProfile } from "../domain/GpuSvmConfig.ts"
import type { NestedStep, Scenario, Step } from "../domain/Scenario.ts"
import { stepPath } from "../domain/Scenario.ts"
import type { ResultFailure, ResultViolation, ScenarioResult } from "../domain/ScenarioResult.ts"
import { Cpu } from "../services/Cpu.ts"
import { DevicePagemaps } from "../services/DevicePagemap.ts"
import { Gpu } from "../services/Gpu.ts"
import { GpuSvm } from "../services/GpuSvm.ts"
import { asActor, Interleaving } from "../services/Interleaving.ts"
import { Machine, type Injection, type MachineServices } from "../services/Machine.ts"
import { Driver } from "./Driver.ts"
import type { DriverOptions } from "./DriverState.ts"
import type { PolicyName } from "./MigrationPolicy.ts"
import { stepSpan } from "./Spans.ts"
import * as AccessSteps from "./scenario/AccessSteps.ts"
import * as ExclusiveSteps from "./scenario/ExclusiveSteps.ts"
import * as Barriers from "./scenario/Barriers.ts"
import * as BoSteps from "./scenario/BoSteps.ts"
import * as Budget from "./scenario/Budget.ts"
import * as ExecSteps from "./scenario/ExecSteps.ts"
import * as Expectations from "./scenario/Expectations.ts"
import * as Invariants from "./scenario/Invariants.ts"
import * as KernelSteps from "./scenario/KernelSteps.ts"
import * as MadviseSteps from "./scenario/MadviseSteps.ts"
import * as MemorySteps from "./scenario/MemorySteps.ts"
import * as Processes from "./scenario/Processes.ts"
import { type ProcessEnv, type RunEnv, type VmEnv, viewOf, withVm } from "./scenario/RunEnv.ts"
import type { StepError } from "./scenario/StepError.ts"

/**
 * What the runner needs of a stack: a machine, GPU SVM and the driver.
 *
 * @category models
 * @since 0.2.0
 */
export type ScenarioStack = MachineServices | GpuSvm | Driver

/**
 * The stack a factory builds for one run (from the scenario, with the CLI's
 * `--seed` and `--kernel` applied): the machine's settings, the GPU SVM
 * config, the driver's options and the migration policy.
 *
 * @category models
 * @since 0.2.0
 */
export interface StackRequest {
  /** VRAM per pagemap (0 = no device memory). */
  readonly vramBytes: number
  /** Seed of the thread interleaving, if any. */
  readonly seed: number | undefined
  /** Initial fault injections. */
  readonly inject: Injection
  /** The device-private owner the GPU SVM instance uses (the pagemap must carry it). */
  readonly devicePrivateOwner: string
  /** The GPU SVM config (`svm` block; `name` is the scenario's). */
  readonly config: GpuSvmConfigInput
  /** The driver's options (`svm` block). */
  readonly driver: DriverOptions
  /** The migration policy (`policy.migrate`). */
  readonly policy: PolicyName
}

/**
 * Builds a fresh stack for one scenario run; a build failure (a host that
 * cannot run the machine, a bad config) is reported as the run's `runner`
 * violation.
 *
 * @category models
 * @since 0.2.0
 */
export type StackFactory = (request: StackRequest) => Layer.Layer<ScenarioStack, unknown>

/**
 * Options of a run.
 *
 * @category models
 * @since 0.1.0
 */
export interface RunOptions {
  /** Overrides the scenario's schedule seed. */
  readonly seed?: number
  /** Default VRAM per pagemap when the scenario gives none (default 256 MiB). */
  readonly defaultVramBytes?: number
  /** Time bound on the threads (default 60 s; the budget's `ms`): past it, a `budget` violation. */
  readonly timeoutMs?: number
  /** The run's work budget (steps, fault retries, time), over `DEFAULT_BUDGET`; past a limit, a `budget` violation. */
  readonly budget?: Partial<Budget.WorkBudget>
  /** The kernel profile (kernel-semantics §11.16); overrides the scenario's `svm.kernel` (default "7.0"). */
  readonly kernel?: KernelProfile
}

/**
 * The device-private owner scenarios run with.
 *
 * @category constants
 * @since 0.1.0
 */
export const OWNER = "gpusvm-scenario"

/**
 * The stack request of `scenario` under `options`.
 *
 * @category constructors
 * @since 0.2.0
 */
export const requestOf = (scenario: Scenario, options: RunOptions = {}): StackRequest => {
  const svmSpec = scenario.svm ?? {}
  const kernel = options.kernel ?? svmSpec.kernel
  return {
    vramBytes: scenario.machine?.vramBytes ?? options.defaultVramBytes ?? 256 * 1024 * 1024,
    seed: options.seed ?? scenario.machine?.schedule?.seed,
    inject: scenario.machine?.inject ?? {},
    devicePrivateOwner: OWNER,
    config: {
      name: scenario.name,
      devicePrivateOwner: OWNER,
      ...(svmSpec.chunkSizes === undefined ? {} : { chunkSizes: svmSpec.chunkSizes }),
      ...(svmSpec.notifierSize === undefined ? {} : { notifierSize: svmSpec.notifierSize }),
      ...(svmSpec.hmmTimeoutMs === undefined ? {} : { hmmTimeoutMs: svmSpec.hmmTimeoutMs }),
      ...(kernel === undefined ? {} : { kernel })
    },
    driver: {
      ...(svmSpec.gpuvaStart === undefined ? {} : { gpuvaStart: svmSpec.gpuvaStart }),
      ...(svmSpec.gpuvaEnd === undefined ? {} : { gpuvaEnd: svmSpec.gpuvaEnd }),
      ...(svmSpec.checkPagesThreshold === undefined ? {} : { checkPagesThreshold: svmSpec.checkPagesThreshold }),
      ...(svmSpec.readOnlyMirror === undefined ? {} : { readOnlyMirror: svmSpec.readOnlyMirror }),
      ...(svmSpec.onSplitVma === undefined ? {} : { onSplitVma: svmSpec.onSplitVma }),
      ...(svmSpec.systemAtomics === undefined ? {} : { systemAtomics: svmSpec.systemAtomics })
    },
    policy: scenario.policy.migrate
  }
}

/** The dispatcher: each op to its family's interpreter (a step's `vm` picks that VM of the thread's process). */
const exec = (base: RunEnv, barriers: Barriers.Barriers) => {
  const run = (step: Step | NestedStep, where: string): Effect.Effect<void, StepError> => {
    const env = "vm" in step ? withVm(base, step.vm) : base
    switch (step.op) {
      case "mmap":
      case "munmap":
      case "madvise-dontneed":
      case "mprotect":
      case "mremap":
      case "mlock":
      case "munlock":
      case "exit":
        return MemorySteps.run(env, step, where)
      case "cpu-write":
      case "gpu-write":
      case "cpu-read":
      case "gpu-read":
      case "gpu-atomic-inc":
      case "gpu-fault":
      case "prefetch":
      case "evict-all":
        return AccessSteps.run(env, step, where)
      case "kernel-reclaim":
      case "kernel-compact":
      case "kernel-collapse":
      case "kernel-ksm-merge":
      case "kernel-split-thp":
        return KernelSteps.run(env, step, where)
      case "madvise":
      case "expect-attrs":
        return MadviseSteps.run(env, step, where)
      case "make-exclusive":
        return ExclusiveSteps.run(env, step, where)
      case "gpu-exec": // issue #17 part 3: IGT's exec
      case "expect-dword":
        return ExecSteps.run(env, step, where)
      case "expect-ranges":
        return Expectations.expectRanges(env, step, where)
      case "expect-metrics":
        return Expectations.expectMetrics(env, step, where)
      case "expect-error":
        return Expectations.expectError(env, step, where, run)
      case "barrier":
        return barriers.arrive(step.name, where)
      case "bo-create":
      case "bo-bind":
      case "bo-unbind":
      case "bo-destroy":
      case "bo-mmap":
      case "vm-unbind":
      case "vm-bind":
        return BoSteps.run(env, step, where)
      case "fork":
        return env.world.fork(env, step.as, where)
      case "wait":
        return env.world.wait(env, step.process, where)
    }
  }
  return run
}

/**
 * One thread's steps, in order. A step that fails with an unexpected error is
 * recorded and ends the thread; its later barriers are still passed, so it
 * leaves no other thread waiting.
 */
const threadSteps = (env: RunEnv, run: ReturnType<typeof exec>, meter: Budget.Meter, steps: ReadonlyArray<Step>, t: number) =>
  Effect.gen(function*() {
    // a thread that stops (a failed step, the budget spent) still passes its
    // later barriers, so it leaves no other thread waiting
    const passBarriers = (from: number, where: string) =>
      Effect.gen(function*() {
        for (let j = from; j < steps.length; j++) {
          const s = steps[j]!
          if (s.op === "barrier") yield* run(s, where).pipe(Effect.ignore)
        }
      })
    for (let i = 0; i < steps.length; i++) {
      const where = stepPath(env.scenario, t, i)
      if (yield* meter.spend) return yield* passBarriers(i, where)
      if (env.il.controlled) yield* env.il.note(`${where} ${steps[i]!.op}`)
      const exit = yield* Effect.exit(run(steps[i]!, where).pipe(stepSpan(steps[i]!.op, { thread: t, index: i, step: where })))
      if (Exit.isFailure(exit)) {
        env.failures.push({ step: where, detail: `${steps[i]!.op} failed: ${Expectations.describeExit(exit.cause).text}` })
        return yield* passBarriers(i + 1, where)
      }
      // kernel-semantics §11.17: the machine cannot do what the scenario asks (kernel page moves on the
      // native machine): the run is skipped, so the thread stops here rather than check what never happened
      if (env.world.skip.reason !== undefined) return yield* passBarriers(i + 1, where)
    }
  })

/**
 * Runs one scenario to a result. Never fails; a run that cannot even build its
 * stack reports that as a violation.
 *
 * @category running
 * @since 0.1.0
 */
export const run = (scenario: Scenario, factory: StackFactory, options: RunOptions = {}): Effect.Effect<ScenarioResult> =>
  Effect.gen(function*() {
    // Under the explorer (a controlled Interleaving) time is virtual, threads are
    // actors named t0, t1, … and deadlocks are the scheduler's to find, so the
    // wall-clock timeout is off and the duration is virtual time (replays match
    // byte for byte).
    const il = yield* Interleaving
    const now = il.controlled ? Clock.currentTimeMillis : Effect.sync(() => performance.now())
    const started = yield* now
    const failures: Array<ResultFailure> = []
    const violations: Array<ResultViolation> = []
    const body = Effect.gen(function*() {
      const scope = yield* Scope.Scope
      const request = requestOf(scenario, options)
      const recipe: Processes.VmRecipe = { config: request.config, driver: request.driver, policy: request.policy }
      const shared = { scenario, il, failures, violations }
      const specs = Processes.specsOf(scenario)
      // The first process's first VM is the factory's stack.
      const ctx = yield* Effect.context<ScenarioStack>()
      const firstVm: VmEnv = { name: specs[0]!.vms[0]!, gpu: Context.get(ctx, Gpu), svm: Context.get(ctx, GpuSvm), driver: Context.get(ctx, Driver) }
      const primary = yield* Processes.processOver(specs[0]!, true, ctx, firstVm, new Map(), recipe, scope)
      const barriers = yield* Barriers.make(shared)
      // No yield point of its own at a thread's start: a thread runs, when forked,
      // up to its first service call (whose yield point the explorer controls) or
      // its first barrier; a point here would only add schedules that differ in
      // when a thread reached a barrier nobody else had reached yet.
      const budget: Budget.WorkBudget = { ...Budget.DEFAULT_BUDGET, ...(options.timeoutMs === undefined ? {} : { ms: options.timeoutMs }), ...options.budget }
      let meter: Budget.Meter | undefined
      const world = Processes.makeWorld({
        shared,
        barriers,
        recipe,
        scope,
        specs,
        runThread: (env, t) => threadSteps(env, exec(env, barriers), meter!, scenario.threads[t]!.steps, t)
      })
      const env = viewOf({ ...shared, world: world.world }, primary, primary.vms[0]!)
      meter = Budget.meter(env, budget, now, started)
      // kernel-semantics §11.17: the other processes that start with the run share the machine (Machine.spawn)
      const others: Array<ProcessEnv> = []
      for (const spec of specs.slice(1)) {
        if (spec.forked) continue
        const pctx = yield* primary.machine.spawn.pipe(Effect.orDie)
        others.push(yield* Processes.processOver(spec, false, pctx, undefined, new Map(), recipe, scope))
      }
      yield* world.start(primary)
      for (const p of others) yield* world.start(p)
      const workers = world.join
      // kernel-semantics §11.17: `machine.kernel` runs the kernel actor next to the threads until they finish
      const kernel = scenario.machine?.kernel
      let threadsDone = false
      const threads = kernel === undefined ? workers : Effect.asVoid(Effect.all([
        Effect.ensuring(workers, Effect.sync(() => {
          threadsDone = true
        })),
        KernelSteps.daemon(env, kernel, request.seed ?? 0, () => threadsDone)
      ], { concurrency: "unbounded" }))
      // the wall-clock guard for a step that itself never ends (under the
      // explorer the scheduler's step bound does this)
      const finished = il.controlled ? yield* Effect.asSome(threads) : yield* threads.pipe(Effect.timeoutOption(budget.ms))
      if (Option.isNone(finished)) {
        yield* meter.timedOut
        yield* world.interrupt
      }
      const result = yield* Invariants.finish(env)
      return { ...result, durationMs: Math.round(((yield* now) - started) * 1000) / 1000 }
    })
    const result = yield* Effect.exit(Effect.scoped(Effect.provide(body, factory(requestOf(scenario, options)))))
    if (Exit.isSuccess(result)) return result.value
    return incompleteResult(
      scenario.name,
      [{ invariant: "runner", detail: `the run could not complete: ${String(result.cause)}` }],
      failures,
      Math.round(((yield* now) - started) * 1000) / 1000
    )
  })

/**
 * The result of a run that did not get to its snapshot (the machine could not
 * be built, the explorer ended it): not ok, the given violations and failures,
 * zero metrics, no ranges.
 *
 * @category functions
 */
export const incompleteResult = (
  name: string,
  violations: ReadonlyArray<ResultViolation>,
  failures: ReadonlyArray<ResultFailure>,
  durationMs: number
): ScenarioResult => ({
  scenario: name,
  ok: false,
  violations: [...violations],
  failures: [...failures],
  metrics: {
    faults: 0,
    faultRetries: { EAGAIN: 0, EBUSY: 0, EOPNOTSUPP: 0, EFAULT: 0, EPERM: 0 },
    rangesCreated: 0,
    rangesRemoved: 0,
    notifiersCreated: 0,
    notifiersRemoved: 0,
    invalidations: { unmap: 0, clear: 0, migrate: 0 },
    bytesToVram: 0,
    bytesToRam: 0,
    evictions: 0,
    gcRuns: 0,
    dmaMappingsLive: 0,
    deviceBytesLive: 0
  },
  ranges: [],
  notifiers: [],
  durationMs
})
