/**
 * The native `Machine` service (violations, fault injection, counters) and
 * `NativeMachine`, the native-only view: the helper's pid and hello, the
 * capabilities, uffd counters, a raw pagemap read, and `kill` (for tests of
 * a helper that dies mid-operation).
 *
 * @since 0.1.0
 */
import { Context, Effect } from "effect"
import { Machine, type Injection } from "../../services/Machine.ts"
import type { Hello } from "./Helper.ts"
import type { NativeState, UffdCounters } from "./NativeState.ts"
import type { PagemapEntry } from "./Proc.ts"

/**
 * The native-only API of a native machine.
 *
 * @category models
 */
export interface NativeMachineApi {
  /** The helper's pid (the only process this layer reads or writes). */
  readonly pid: number
  /** The helper's hello line (uffd mode, features, staging buffers). */
  readonly hello: Hello
  /** How invalidations are raised (`cpu` or `uffd`). */
  readonly notifierSource: "cpu" | "uffd"
  /** uffd counters: events, confirmations, unsolicited events, page faults, pagemap changes found on retry. */
  readonly uffd: Effect.Effect<UffdCounters>
  /** Decoded `/proc/<pid>/pagemap` entries of `[start, end)` (an oracle for tests). */
  readonly pagemap: (start: number, end: number) => Effect.Effect<ReadonlyArray<PagemapEntry>>
  /** Sends a signal to the helper (default SIGKILL); for SIGKILL / SIGTERM, waits until it is reaped. */
  readonly kill: (signal?: NodeJS.Signals) => Effect.Effect<void>
  /** Is the helper process still running? */
  readonly helperAlive: Effect.Effect<boolean>
  /** A raw helper request behind the machine's back (tests of changes Node did not initiate). */
  readonly raw: (cmd: string, args: ReadonlyArray<number>) => Effect.Effect<{ readonly ok: boolean; readonly err?: string | undefined }>
}

/**
 * The native machine's own service.
 *
 * @category services
 */
export class NativeMachine extends Context.Service<NativeMachine, NativeMachineApi>()("gpusvm/native/NativeMachine") {}

/**
 * Builds the `Machine` service of process `st` (its violations, injections
 * and counters are the machine's: `NativeDevice`); `spawn` starts another
 * helper process on the same machine (kernel-semantics §11.17).
 *
 * @category functions
 */
export const makeMachineService = (st: NativeState, spawn: Machine["Service"]["spawn"]): Machine["Service"] =>
  Machine.of({
    violations: Effect.sync(() => [...st.violations]),
    inject: (i: Injection) => Effect.sync(() => st.addInjection(i)),
    stats: Effect.sync(() => st.stats()),
    // §11.17: another helper process on the same device (Native.ts)
    spawn,
    // kernel-semantics §11.17: the host kernel moves pages when it likes; nothing asks it to on demand
    kernelMove: () => Effect.succeed({ _tag: "Unsupported", reason: KERNEL_MOVES_SIMULATED_ONLY } as const)
  })

/**
 * Why the native machine answers `Unsupported` to `Machine.kernelMove` (kernel-semantics §11.17).
 *
 * @category constants
 */
export const KERNEL_MOVES_SIMULATED_ONLY = "kernel page moves are simulated-only"

/**
 * Builds the `NativeMachine` service of machine `st`.
 *
 * @category functions
 */
export const makeNativeMachine = (st: NativeState): NativeMachineApi => ({
  pid: st.helper.pid,
  hello: st.helper.hello,
  notifierSource: st.config.notifier,
  uffd: Effect.sync(() => ({ ...st.uffd, byKind: { ...st.uffd.byKind } })),
  pagemap: (start, end) => Effect.sync(() => (st.alive ? st.proc.pagemap(start, end) : [])),
  kill: (signal) => Effect.promise(() => st.helper.kill(signal ?? "SIGKILL", signal === undefined || signal === "SIGKILL" || signal === "SIGTERM" ? 5_000 : 0)),
  helperAlive: Effect.sync(() => st.helper.dead === undefined),
  raw: (cmd, args) =>
    Effect.map(Effect.result(st.helper.request(cmd, args)), (r) =>
      r._tag === "Success" ? { ok: r.success.ok === 1, err: r.success.err } : { ok: false, err: r.failure.message }).pipe(
        Effect.tap(() => Effect.sync(() => st.touchMaps()))
      )
})
