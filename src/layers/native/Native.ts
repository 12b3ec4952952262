/**
 * The native machine (design §6): the same services as the simulated machine
 * over a real Linux process — the helper (`native/helper.c`) is the target
 * process; Node keeps its `/proc/<pid>/{maps,pagemap,mem}` and drives it.
 *
 * `Native.layer(options)` provides `Cpu`, `Mm`, `MmuNotifier`, `Hmm`, `Dma`,
 * `Machine`, `Gpu` (the simulated GPU's design, with physical addresses as a
 * checking oracle), `DevicePagemaps` / `DevicePagemap` (device bytes in Node,
 * migration by userfaultfd), the `Pagemaps` registry for the GPU SVM core,
 * and `NativeMachine` (pid, uffd counters, kill). Each build is a fresh helper
 * process; closing the layer's scope kills it and waits until it is reaped.
 *
 * Several processes (kernel-semantics §11.17): `Machine.spawn` starts another
 * helper, `Cpu.fork` forks one (`forkc`: a copy-on-write child that keeps
 * serving on its own socket). Each is a process of this machine — its own
 * `NativeState` (`/proc/<pid>` files, uffd, mmap lock, notifiers, GPU VM) over
 * the machine's one `NativeDevice` (device memory, migration lock, traffic,
 * violations, injections, invalidation counters) — and lives in the layer's
 * scope: closing it kills and reaps every one (fork children through their
 * parent, before it).
 *
 * Construction fails with a typed error naming what is missing (`NotLinux`,
 * `HelperUnavailable`, `UffdUnavailable`, `PfnHidden`); `Native.probe` says in
 * advance. `native` is the scenario runner's `MachineFactory` (construction
 * errors become a defect the runner reports; schedule seeds do not apply: the
 * interleaving is the real one).
 *
 * @since 0.1.0
 */
import { Context, Effect, Layer, Scope } from "effect"
import { InvalidArgument } from "../../domain/Errors.ts"
import type { Injection, MachineServices } from "../../services/Machine.ts"
import { HelperUnavailable, type NativeError, NotLinux, PfnHidden, UffdUnavailable } from "./Errors.ts"
import { eventLoop } from "./Events.ts"
import { Helper, helperBinary } from "./Helper.ts"
import { type BuildProcess, makeCpu } from "./NativeCpu.ts"
import { makeDma } from "./NativeDma.ts"
import { makeGpu } from "./NativeGpu.ts"
import { makeHmm } from "./NativeHmm.ts"
import { NativeMachine, makeMachineService, makeNativeMachine } from "./NativeMachine.ts"
import { makeMm } from "./NativeMm.ts"
import { makeMmuNotifier } from "./NativeMmuNotifier.ts"
import { makePagemap } from "./NativePagemap.ts"
import { type NativeConfig, NativeDevice, NativeState, type NotifierSource } from "./NativeState.ts"
import { machineContext } from "../common/MachineContext.ts"
import { ProcFiles } from "./Proc.ts"
import { type Capabilities, probe, require } from "./Probe.ts"

export { NativeMachine } from "./NativeMachine.ts"
export type { NativeMachineApi } from "./NativeMachine.ts"
export type { Capabilities } from "./Probe.ts"
export * from "./Errors.ts"

/**
 * Options of `Native.layer`.
 *
 * @category models
 */
export interface NativeOptions {
  /** Device memory of the pagemap in bytes (default 256 MiB; 0 = no device memory: `DevicePagemaps.all` is empty). */
  readonly vramBytes?: number
  /** Device-private owner of the pagemap (default `"native-gpu"`); GPU SVM's `devicePrivateOwner` must match it to keep pages on the device. */
  readonly devicePrivateOwner?: string
  /** Pagemap id (default `"native-vram"`). */
  readonly pagemapId?: string
  /**
   * Who raises invalidations of munmap / madvise / mremap: `"cpu"` (default:
   * the Cpu, before the change, like the simulated machine; uffd events
   * cross-check) or `"uffd"` (the userfaultfd events alone).
   */
  readonly notifier?: NotifierSource
  /** Initial fault injections. */
  readonly inject?: Injection
  /** Wall-clock bound on every helper request, in ms (default 10 000). */
  readonly timeoutMs?: number
  /** Require visible PFNs (default true: the DMA oracle needs them). */
  readonly requirePfns?: boolean
  /** The helper binary (default `native/build/gpusvm-helper`, built on demand). */
  readonly helperPath?: string
}

/**
 * Everything `Native.layer` provides (plus the `Pagemaps` reference).
 *
 * @category models
 */
export type NativeServices = MachineServices | NativeMachine

const checkCaps = (c: Capabilities, requirePfns: boolean): NativeError | undefined => {
  if (!c.linux) return new NotLinux({ reason: c.details.linux ?? "not Linux" })
  if (!c.helperBuilt) return new HelperUnavailable({ stage: "probe", stderr: c.details.helperBuilt ?? "helper not built" })
  if (!c.userfaultfd) return new UffdUnavailable({ errno: c.uffdErrno || "unknown" })
  if (requirePfns && !c.pfnVisible) return new PfnHidden({ reason: c.details.pfnVisible ?? "PFNs read as 0" })
  return undefined
}

/**
 * `Native.layer(options)`: a fresh helper process and every service over it.
 *
 * @category layers
 */
export const layer = (options: NativeOptions = {}): Layer.Layer<NativeServices, NativeError> =>
  Layer.effectContext(Effect.gen(function*() {
    const caps = yield* probe
    const missing = checkCaps(caps, options.requirePfns ?? true)
    if (missing !== undefined) return yield* Effect.fail(missing)
    const timeoutMs = options.timeoutMs ?? 10_000
    const vramBytes = options.vramBytes ?? 256 * 1024 * 1024
    const config: NativeConfig = {
      vramBytes,
      devicePrivateOwner: options.devicePrivateOwner ?? "native-gpu",
      pagemapId: options.pagemapId ?? "native-vram",
      notifier: options.notifier ?? "cpu",
      timeoutMs
    }
    // Every process of the machine (kernel-semantics §11.17) lives in this, the layer's, scope: a spawned
    // helper or a fork child made later is killed and reaped when the layer closes (before the first helper:
    // finalizers run last-in first-out, so a fork child's parent is still there to kill and reap it).
    const scope = yield* Effect.scope
    const device = new NativeDevice()
    const killOnRelease = (acquire: Effect.Effect<Helper, HelperUnavailable>) =>
      Effect.acquireRelease(acquire, (h) => Effect.promise(() => h.kill("SIGKILL", 5_000)))

    /** One process over a running helper: its state, services, event fiber and death watcher. */
    const processOf = (helper: Helper, inject: Injection | undefined): Effect.Effect<
      { readonly st: NativeState; readonly ctx: Context.Context<NativeServices> },
      HelperUnavailable | UffdUnavailable,
      Scope.Scope
    > =>
      Effect.gen(function*() {
        if (helper.hello.uffd !== 1) return yield* new UffdUnavailable({ errno: helper.hello.uffdErr || "unknown" })
        const proc = yield* Effect.acquireRelease(
          Effect.try({ try: () => new ProcFiles(helper.pid), catch: (e) => new HelperUnavailable({ stage: "proc", stderr: String(e) }) }),
          (p) => Effect.sync(() => p.close())
        )
        const st = new NativeState(helper, proc, config, inject, device)
        yield* Effect.addFinalizer(() => Effect.sync(() => device.processes.delete(st)))
        const pm = makePagemap(st)
        yield* Effect.forkScoped(eventLoop(st, pm, helper.inbox))
        // A helper that dies on its own (killed, crashed) went through exit_mmap in the kernel: its notifiers get
        // RELEASE then UNMAP over the whole space (§11.1), once the mmap lock is free. Interrupted with the scope
        // (closing the layer kills the helper after this fiber is gone: no events at teardown).
        yield* Effect.forkScoped(Effect.callback<void>((resume) => helper.whenDead(() => resume(Effect.void))).pipe(
          Effect.andThen(st.lock.withWrite(st.exitMmap(Effect.sync(() => {
            st.touchMaps()
            st.allocs.clear()
            st.workload = []
          }))))
        ))
        const all = vramBytes > 0 ? [pm] : []
        const ctx = machineContext({
          cpu: makeCpu(st, forkChild),
          mm: makeMm(st),
          mmu: makeMmuNotifier(st),
          hmm: makeHmm(st),
          dma: makeDma(st),
          machine: makeMachineService(st, spawn),
          gpu: makeGpu(st, all),
          pagemaps: all,
          primary: pm,
          mappers: new Map(all.map((p) => [p.id, p] as const))
        }).pipe(Context.add(NativeMachine, makeNativeMachine(st)))
        return { st, ctx }
      })

    /** In the layer's scope; a failure kills the new helper at once. */
    const inMachine = <A>(what: string, acquire: Effect.Effect<Helper, HelperUnavailable>, use: (h: Helper) => Effect.Effect<A, HelperUnavailable | UffdUnavailable, Scope.Scope>) =>
      Effect.mapError(
        Scope.provide(scope)(Effect.flatMap(killOnRelease(acquire), (h) => Effect.onError(use(h), () => Effect.promise(() => h.kill("SIGKILL", 5_000))))),
        (e) => new InvalidArgument({ reason: `${what}: ${e.message}` })
      )

    /** `Cpu.fork`'s child (already forked and connected) as a process of this machine. */
    const forkChild: BuildProcess = (helper) => inMachine("fork", Effect.succeed(helper), (h) => processOf(h, undefined))

    /** `Machine.spawn` (§11.17): another helper process, a new address space on the same device. */
    const spawn: Effect.Effect<Context.Context<MachineServices>, InvalidArgument> = Effect.suspend(() =>
      Effect.map(inMachine("spawn", Helper.spawn(options.helperPath ?? helperBinary, timeoutMs), (h) => processOf(h, undefined)), (p) => p.ctx)
    )

    const first = yield* processOf(yield* killOnRelease(Helper.spawn(options.helperPath ?? helperBinary, timeoutMs)), options.inject)
    return first.ctx
  }))

/**
 * The native machine's public API.
 *
 * @category functions
 */
export const Native = { layer, probe, require } as const
