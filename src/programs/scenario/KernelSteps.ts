/**
 * The kernel page-move steps of a scenario and the kernel actor
 * (kernel-semantics §11.17): `kernel-reclaim`, `kernel-compact`,
 * `kernel-collapse`, `kernel-ksm-merge` and `kernel-split-thp` are each one
 * `Machine.kernelMove` over a buffer window; `machine.kernel` rates run
 * {@link daemon}, the "kernel" actor (kswapd, kcompactd, khugepaged, ksmd in
 * one fiber) that interleaves with the scenario's threads and the GC worker.
 * A machine that cannot move pages on demand (the native one) answers
 * `Unsupported`; the run then reports `skipped: kernel page moves are
 * simulated-only` (the CLI skips such scenarios on the native machine before
 * running them, `cli/load.ts`).
 *
 * @since 0.3.0
 */
import { Effect } from "effect"
import { PAGE_SIZE } from "../../domain/Address.ts"
import type { InvalidArgument } from "../../domain/Errors.ts"
import { mulberry32 } from "../../domain/Prng.ts"
import type { KernelStep } from "../../domain/scenario/Step.ts"
import { type KernelBlock, KERNEL_STEP_KINDS } from "../../domain/scenario/steps/Kernel.ts"
import { asActor } from "../../services/Interleaving.ts"
import type { KernelMoveKind, KernelMoveOutcome } from "../../services/Machine.ts"
import { type Interpreter, type RunEnv, windowOf } from "./RunEnv.ts"
import { UnknownBuffer } from "./StepError.ts"

/**
 * The ops this family runs.
 *
 * @category models
 * @since 0.3.0
 */
export const KERNEL_OPS = ["kernel-reclaim", "kernel-compact", "kernel-collapse", "kernel-ksm-merge", "kernel-split-thp"] as const

/**
 * The errors of this family.
 *
 * @category errors
 * @since 0.3.0
 */
export type KernelStepError = InvalidArgument | UnknownBuffer

/**
 * The reason a run that asked for kernel page moves on a machine that cannot make them is skipped.
 *
 * @category constants
 * @since 0.3.0
 */
export const SKIP_REASON = "kernel page moves are simulated-only"

/** Notes an `Unsupported` outcome: the run is reported skipped (first reason wins). */
const noteOutcome = (env: RunEnv, o: KernelMoveOutcome): void => {
  if (o._tag === "Unsupported" && env.world.skip.reason === undefined) env.world.skip.reason = SKIP_REASON
}

/**
 * Runs one kernel page-move step: `Machine.kernelMove` of its kind over the
 * window. Errors: `UnknownBuffer`, or the machine's `InvalidArgument`.
 *
 * @category interpreters
 * @since 0.3.0
 */
export const run: Interpreter<KernelStep, KernelStepError> = (env, step) => {
  const w = windowOf(env, step.buf, step.offset, step.length)
  if (w instanceof UnknownBuffer) return Effect.fail(w)
  return Effect.map(env.machine.kernelMove(KERNEL_STEP_KINDS[step.op], w.addr, w.addr + w.length), (o) => noteOutcome(env, o))
}

/** The `machine.kernel` rate of each move kind, in the order the actor draws them. */
const RATES: ReadonlyArray<readonly [KernelMoveKind, keyof KernelBlock]> = [
  ["reclaim", "reclaim"],
  ["compact", "compaction"],
  ["collapse", "khugepaged"],
  ["ksm-merge", "ksm"],
  ["split-thp", "thpSplit"]
]

/**
 * The actor's turns when `machine.kernel.turns` is not given.
 *
 * @category constants
 * @since 0.3.0
 */
export const DEFAULT_TURNS = 64

/** A random window of a random live buffer for a move of `kind`: 2 MiB blocks for collapse / split, else up to 512 pages. */
const pickWindow = (env: RunEnv, kind: KernelMoveKind, rand: () => number): readonly [number, number] | undefined => {
  const names = [...env.buffers.keys()].sort()
  if (names.length === 0) return undefined
  const b = env.buffers.get(names[Math.floor(rand() * names.length)]!)!
  const pages = Math.floor(b.length / PAGE_SIZE)
  if (pages === 0) return undefined
  if (kind === "collapse" || kind === "split-thp") return [b.addr, b.addr + pages * PAGE_SIZE] // every block it touches
  const first = Math.floor(rand() * pages)
  const n = 1 + Math.floor(rand() * Math.min(pages - first, 512))
  return [b.addr + first * PAGE_SIZE, b.addr + (first + n) * PAGE_SIZE]
}

/**
 * The kernel actor of `machine.kernel` (kernel-semantics §11.17): up to
 * `turns` turns, each behind a yield point (the explorer's choice under a
 * controlled `Interleaving`; `Effect.yieldNow` otherwise, so the threads'
 * seeded yield points interleave with it), stopping once `done()` says the
 * threads have finished. At each turn, for each move kind in a fixed order,
 * with the kind's probability, it moves a random window of a random live
 * buffer (`Machine.kernelMove`; a window unmapped meanwhile moves nothing, a
 * typed error is ignored, as a kernel daemon skips what it cannot move). Its
 * draws come from a PRNG seeded by `seed` alone, so a run is deterministic
 * for a seed (and a schedule). Runs as the actor `"kernel"`.
 *
 * @category interpreters
 * @since 0.3.0
 */
export const daemon = (env: RunEnv, block: KernelBlock, seed: number, done: () => boolean): Effect.Effect<void> => {
  const rand = mulberry32((seed + 0x6b65726e) % 2 ** 32)
  const point = env.il.controlled ? env.il.point("kernel daemon") : Effect.yieldNow
  const turns = block.turns ?? DEFAULT_TURNS
  const turn: Effect.Effect<boolean> = Effect.suspend(() => {
    if (done() || env.world.skip.reason !== undefined) return Effect.succeed(false)
    const picks: Array<readonly [KernelMoveKind, number, number]> = []
    for (const [kind, key] of RATES) {
      const rate = block[key] as number | undefined
      if (rate === undefined || rate <= 0 || rand() >= rate) continue
      const w = pickWindow(env, kind, rand)
      if (w !== undefined) picks.push([kind, w[0], w[1]])
    }
    return Effect.as(
      Effect.forEach(picks, ([kind, s, e]) =>
        Effect.matchEffect(env.machine.kernelMove(kind, s, e), {
          onFailure: () => Effect.void,
          onSuccess: (o) => Effect.sync(() => noteOutcome(env, o))
        }), { discard: true }),
      true
    )
  })
  const loop = (left: number): Effect.Effect<void> =>
    left <= 0 ? Effect.void : Effect.flatMap(Effect.andThen(point, turn), (more) => (more ? loop(left - 1) : Effect.void))
  return asActor(loop(turns), "kernel")
}
