/**
 * The processes and GPU VMs of a scenario run (kernel-semantics §11.17,
 * scenarios.md `processes`, `vms`, `fork`, `wait`): which processes a
 * scenario has, the GPU SVM instances (one `Driver.layer` per VM) built over
 * each process's machine services, and each process's lifecycle — its threads
 * run, then (every process but the first) it exits and its GPU SVMs are torn
 * down, which is what `wait` joins.
 *
 * The first process's first VM is the stack the caller's `StackFactory` built
 * (so the native machine runs unchanged); every other VM is a `Gpu.createVm`
 * with its own `Driver.layer`, and every other process comes from
 * `Machine.spawn` (at the run's start) or `Cpu.fork` (at its `fork` step). A
 * machine that cannot spawn or fork fails that step with its typed error.
 *
 * @since 0.4.0
 */
import { Context, Deferred, Effect, Fiber, Layer, type Scope } from "effect"
import type { Scenario } from "../../domain/Scenario.ts"
import { Cpu } from "../../services/Cpu.ts"
import { DevicePagemaps } from "../../services/DevicePagemap.ts"
import { Gpu } from "../../services/Gpu.ts"
import { GpuSvm } from "../../services/GpuSvm.ts"
import { asActor } from "../../services/Interleaving.ts"
import { Machine, type MachineServices } from "../../services/Machine.ts"
import { Mm } from "../../services/Mm.ts"
import { Driver } from "../Driver.ts"
import type { DriverOptions } from "../DriverState.ts"
import type { PolicyName } from "../MigrationPolicy.ts"
import type * as Barriers from "./Barriers.ts"
import { exitProcess } from "./MemorySteps.ts"
import { type Buffer, type ProcessEnv, type RunEnv, type RunWorld, type VmEnv, viewOf } from "./RunEnv.ts"
import type { StepError } from "./StepError.ts"
import type { GpuSvmConfigInput } from "../../domain/GpuSvmConfig.ts"

/**
 * The name of the process of the `steps` / `threads` forms.
 *
 * @category constants
 * @since 0.4.0
 */
export const DEFAULT_PROCESS = "p0"

/**
 * The name of a process's VM when it lists none.
 *
 * @category constants
 * @since 0.4.0
 */
export const DEFAULT_VM = "v0"

/**
 * One process of a scenario: its name, VM names, whether a `fork` step
 * creates it, and the indices of its threads in `scenario.threads`.
 *
 * @category models
 * @since 0.4.0
 */
export interface ProcessSpec {
  readonly name: string
  readonly vms: ReadonlyArray<string>
  readonly forked: boolean
  readonly threads: ReadonlyArray<number>
}

/**
 * The processes of `scenario`, the first one first: the listed ones (or the
 * one process of the `steps` / `threads` forms), then every `fork` child no
 * entry lists (it has no threads).
 *
 * @category functions
 * @since 0.4.0
 */
export const specsOf = (scenario: Scenario): Array<ProcessSpec> => {
  const forked = new Set(scenario.threads.flatMap((t) => t.steps.flatMap((s) => (s.op === "fork" ? [s.as] : []))))
  const listed = scenario.processes ?? [{ name: DEFAULT_PROCESS, ...(scenario.vms === undefined ? {} : { vms: scenario.vms }) }]
  const specs: Array<ProcessSpec> = listed.map((p, i) => ({
    name: p.name,
    vms: p.vms ?? [DEFAULT_VM],
    forked: forked.has(p.name),
    threads: scenario.threads.flatMap((t, j) => ((t.process ?? (i === 0 ? p.name : undefined)) === p.name ? [j] : []))
  }))
  for (const name of forked) if (!specs.some((s) => s.name === name)) specs.push({ name, vms: [DEFAULT_VM], forked: true, threads: [] })
  return specs
}

/**
 * What a run's processes need to build VMs: the GPU SVM config, the driver's options and the policy.
 *
 * @category models
 */
export interface VmRecipe {
  readonly config: GpuSvmConfigInput
  readonly driver: DriverOptions
  readonly policy: PolicyName
}

/** A fresh GPU SVM instance (`Driver.layer`) on GPU VM `gpu` of the process whose services are `ctx`. */
const buildVm = (name: string, ctx: Context.Context<MachineServices>, gpu: Gpu["Service"], recipe: VmRecipe, scope: Scope.Scope) =>
  Effect.gen(function*() {
    const built = yield* Layer.buildWithScope(Driver.layer(recipe.config, { ...recipe.driver, policy: recipe.policy }), scope).pipe(
      Effect.provide(Context.add(ctx, Gpu, gpu)),
      Effect.orDie // the factory built the same config already: a failure here is a defect
    )
    return { name, gpu, svm: Context.get(built, GpuSvm), driver: Context.get(built, Driver) } satisfies VmEnv
  })

/**
 * The process `spec` over machine services `ctx`: its first VM is `first` (the
 * factory's stack) or a GPU SVM on `ctx`'s own `Gpu`; every other VM a new
 * `Gpu.createVm` with its own GPU SVM; its buffers start as `buffers` (a fork
 * child's copy of its parent's).
 *
 * @category constructors
 * @since 0.4.0
 */
export const processOver = (
  spec: ProcessSpec,
  primary: boolean,
  ctx: Context.Context<MachineServices>,
  first: VmEnv | undefined,
  buffers: Map<string, Buffer>,
  recipe: VmRecipe,
  scope: Scope.Scope
): Effect.Effect<ProcessEnv> =>
  Effect.gen(function*() {
    const gpu = Context.get(ctx, Gpu)
    const vms: Array<VmEnv> = []
    for (const [i, name] of spec.vms.entries()) {
      if (i === 0 && first !== undefined) vms.push({ ...first, name })
      else vms.push(yield* buildVm(name, ctx, i === 0 ? gpu : yield* gpu.createVm, recipe, scope))
    }
    return {
      name: spec.name,
      primary,
      cpu: Context.get(ctx, Cpu),
      mm: Context.get(ctx, Mm),
      machine: Context.get(ctx, Machine),
      pagemaps: Context.get(ctx, DevicePagemaps).all,
      vms,
      buffers,
      bos: new Map(),
      exited: false,
      done: yield* Deferred.make<void>()
    }
  })

/**
 * The run's world: the processes, their start and lifecycle, `fork` and
 * `wait`. `runThread(env, t)` runs thread `t` of the scenario in view `env`
 * (the runner's thread interpreter). `start` runs a process's threads (as
 * actors `t<i>`), then exits it unless it is the first; `join` waits for every
 * process started so far, fork children included.
 *
 * @category constructors
 * @since 0.4.0
 */
export const makeWorld = (deps: {
  readonly shared: Pick<RunEnv, "scenario" | "il" | "failures" | "violations">
  readonly barriers: Barriers.Barriers
  readonly recipe: VmRecipe
  readonly scope: Scope.Scope
  readonly specs: ReadonlyArray<ProcessSpec>
  readonly runThread: (env: RunEnv, t: number) => Effect.Effect<void>
}) => {
  const { shared, barriers, recipe, scope, specs, runThread } = deps
  const processes = new Map<string, ProcessEnv>()
  const lifecycles: Array<Fiber.Fiber<void>> = []
  const specOf = (name: string) => specs.find((s) => s.name === name)!
  /** Completes when the process of that name has been created. */
  const born = new Map(specs.map((s) => [s.name, Deferred.makeUnsafe<ProcessEnv>()]))
  const register = (p: ProcessEnv) =>
    Effect.andThen(Effect.sync(() => processes.set(p.name, p)), Deferred.succeed(born.get(p.name)!, p))

  /**
   * The threads of `p`, concurrently, each in its own VM's view; then the exit
   * of every process but the first. For the deadlock check the last thread of
   * such a process stays a running party until its process has exited (a
   * `wait` for it can still end); a process with no threads is one party.
   */
  const lifecycle = (p: ProcessEnv): Effect.Effect<void> => {
    const spec = specOf(p.name)
    let left = spec.threads.length
    const ended = Effect.suspend(() => (--left > 0 || p.primary ? barriers.threadDone : Effect.void))
    const threads = Effect.forEach(spec.threads, (t) => {
      const vmName = shared.scenario.threads[t]!.vm
      const vm = p.vms.find((v) => v.name === vmName) ?? p.vms[0]!
      return asActor(Effect.ensuring(runThread(viewOf({ ...shared, world }, p, vm), t), ended), `t${t}`)
    }, { concurrency: "unbounded", discard: true })
    if (p.primary) return threads
    // kernel-semantics §11.17: a process's exit tears down only its own ranges
    return Effect.andThen(threads, asActor(Effect.ensuring(exitProcess(p), barriers.threadDone), p.name))
  }

  const world: RunWorld = {
    processes,
    skip: { reason: undefined },
    fork: (env, child, where) =>
      Effect.gen(function*() {
        const ctx = yield* env.cpu.fork
        const spec = specOf(child)
        const p = yield* processOver(spec, false, ctx, undefined, new Map(env.buffers), recipe, scope)
        yield* register(p)
        // its threads (or, with none, its teardown) are parties of the deadlock check from now on
        for (let i = 0; i < Math.max(spec.threads.length, 1); i++) yield* barriers.threadStarted
        lifecycles.push(yield* Effect.forkIn(lifecycle(p), scope, { startImmediately: true }))
        if (shared.il.controlled) yield* shared.il.note(`${where} forked ${child}`)
      }),
    wait: (_env, name, where) =>
      Effect.suspend((): Effect.Effect<void, StepError> => {
        const p = processes.get(name)
        if (p !== undefined && p.exited) return Effect.void
        // a fork child whose fork has not run yet: wait for its birth, then for its exit
        return barriers.block(where, `wait for process ${name}`, Effect.flatMap(Deferred.await(born.get(name)!), (q) => Deferred.await(q.done)))
      })
  }

  return {
    world,
    processes,
    /** Starts process `p` (its lifecycle in the run's scope). */
    start: (p: ProcessEnv) =>
      Effect.gen(function*() {
        yield* register(p)
        lifecycles.push(yield* Effect.forkIn(lifecycle(p), scope, { startImmediately: true }))
      }),
    /** Interrupts every lifecycle (the run timed out). */
    interrupt: Effect.suspend(() => Effect.forEach(lifecycles, Fiber.interrupt, { discard: true })),
    /** Waits for every lifecycle started so far, including those started while waiting. */
    join: Effect.gen(function*() {
      for (let i = 0; i < lifecycles.length; i++) yield* Fiber.join(lifecycles[i]!)
    })
  }
}
