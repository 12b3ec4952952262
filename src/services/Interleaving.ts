/**
 * `Interleaving`: the yield points of a run, and who is running.
 *
 * Every component that can interleave with another (the simulated machine's
 * service calls, lock acquisitions in the GPU SVM core and the driver, retry
 * loops, scenario threads) asks this reference for a *yield point* once, when
 * it is built, and passes through it at run time. Outside the explorer the
 * reference is {@link uncontrolled}: a point is `Effect.void` and costs one
 * step. Under the explorer (`src/explore/`), a point parks the calling fiber
 * until the explorer's strategy picks it to run next, so the explorer decides
 * every interleaving and can enumerate them.
 *
 * Rules for yield points (design of the explorer, docs/explorer.md):
 * - a point belongs *before* an operation another actor can observe or
 *   disturb (a service call, a lock acquisition, a retry round);
 * - a point may declare the {@link Footprint} of the step that follows it, for
 *   the explorer's partial-order reduction; without one the step is treated as
 *   touching everything;
 * - `blocking(what, effect)` marks a wait that only another actor can end (a
 *   barrier, a lock), so that a deadlock report can say what each actor waits
 *   for.
 *
 * `ActorName` names the fiber running a component (a scenario thread, the GC
 * worker); forked fibers inherit it. The explorer numbers actors in the order
 * they first reach a yield point, and disambiguates repeated names as
 * `name#2`, `name#3`.
 *
 * This is a contract with no kernel counterpart (the kernel's scheduler plays
 * this role); it lives in services so that programs and layers can use it
 * without importing the explorer.
 *
 * @since 0.2.0
 */
import { Context, Effect } from "effect"
import type { Footprint } from "../domain/Footprint.ts"

export type { Footprint } from "../domain/Footprint.ts"

/**
 * What a yield point may say about the step that follows it.
 *
 * - `footprint`: what the step reads and writes (for partial-order reduction);
 *   omitted, the step is dependent on everything.
 * - `spin`: the point is a round of a retry loop waiting for another actor
 *   (`cpu_relax()` / `cond_resched()` in a kernel loop). The explorer treats a
 *   switch away from a spinning actor as free (not a preemption) and prefers
 *   other actors after it, as CHESS's fair scheduling does, so that a bounded
 *   search does not spend its runs spinning.
 *
 * @since 0.2.0
 * @category models
 */
export interface PointOptions {
  readonly footprint?: Footprint
  readonly spin?: boolean
}

/** The yield-point source of a run. @since 0.2.0 @category models */
export interface InterleavingApi {
  /** Is a controlled scheduler deciding the interleaving? */
  readonly controlled: boolean
  /**
   * A yield point labelled `label` (shown in traces), optionally declaring the
   * footprint of the step that follows. Build it once and reuse the effect:
   * `const p = interleaving.point("cpu.munmap")`.
   */
  readonly point: (label: string, options?: PointOptions) => Effect.Effect<void>
  /** Runs `effect`, recording (for deadlock reports) that the fiber waits for `what` until it ends. */
  readonly blocking: <A, E, R>(what: string, effect: Effect.Effect<A, E, R>) => Effect.Effect<A, E, R>
  /** Records an event of the current step in the run's trace (no-op when uncontrolled). */
  readonly note: (text: string) => Effect.Effect<void>
}

/**
 * The slow-path hook of a lock (`RwLock` options, `Semaphore` waits): while
 * waiting the fiber is `blocking` on `name`; once it has the lock it passes a
 * yield point `name acquired`, so that a woken waiter's work is a step of its
 * own rather than part of the step that released the lock. Uncontrolled: the
 * wait itself.
 *
 * @since 0.2.0
 * @category combinators
 */
export const lockWait = (il: InterleavingApi, name: string): (wait: Effect.Effect<void>, mode?: "read" | "write") => Effect.Effect<void> => {
  if (!il.controlled) return (wait: Effect.Effect<void>): Effect.Effect<void> => wait
  const after = il.point(`${name} acquired`)
  return (wait: Effect.Effect<void>, mode?: "read" | "write"): Effect.Effect<void> =>
    Effect.andThen(il.blocking(mode === undefined ? name : `${name} (${mode})`, wait), after)
}

/**
 * Both lock hooks of a driver-side lock (the notifier lock, the driver SVM
 * lock): a yield point before every acquisition (`take <name>`), so that
 * another actor can run between the work before the lock and the critical
 * section, and {@link lockWait} on the slow path. Uncontrolled: no hooks.
 *
 * @since 0.2.0
 * @category combinators
 */
export const lockHooks = (il: InterleavingApi, name: string): {
  readonly before?: Effect.Effect<void>
  readonly slowPath?: (wait: Effect.Effect<void>, mode: "read" | "write") => Effect.Effect<void>
} => il.controlled ? { before: il.point(`take ${name}`), slowPath: lockWait(il, name) } : {}

/** The default: points cost nothing and never yield. @since 0.2.0 @category constructors */
export const uncontrolled: InterleavingApi = {
  controlled: false,
  point: () => Effect.void,
  blocking: (_what, effect) => effect,
  note: () => Effect.void
}

/**
 * The run's interleaving source, a `Context.Reference` defaulting to
 * {@link uncontrolled}. Read it when a component is built (`yield* Interleaving`)
 * and keep the points it returns.
 *
 * @since 0.2.0
 * @category services
 */
export const Interleaving: Context.Reference<InterleavingApi> = Context.Reference<InterleavingApi>("gpusvm/Interleaving", {
  defaultValue: () => uncontrolled
})

/**
 * The name of the actor a fiber runs as (inherited by forked fibers); `undefined`
 * names it after its position ("actor").
 *
 * @since 0.2.0
 * @category services
 */
export const ActorName: Context.Reference<string | undefined> = Context.Reference<string | undefined>("gpusvm/ActorName", {
  defaultValue: () => undefined
})

/**
 * Runs `effect` as the actor `name` (sets {@link ActorName} for it and the
 * fibers it forks).
 *
 * @since 0.2.0
 * @category combinators
 */
export const asActor: {
  (name: string): <A, E, R>(effect: Effect.Effect<A, E, R>) => Effect.Effect<A, E, R>
  <A, E, R>(effect: Effect.Effect<A, E, R>, name: string): Effect.Effect<A, E, R>
} = ((...args: Array<unknown>) => {
  if (args.length === 1) return (effect: Effect.Effect<unknown, unknown, unknown>) => Effect.provideService(effect, ActorName, args[0] as string)
  return Effect.provideService(args[0] as Effect.Effect<unknown, unknown, unknown>, ActorName, args[1] as string)
}) as never
