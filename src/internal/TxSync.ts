/**
 * Synchronous single-`TxRef` commits: the fast path of a one-ref transaction.
 *
 * `Effect.tx` costs several µs per call (a journal, a context with the
 * `Transaction` service, a retry loop), most of it wasted when the transaction
 * touches one ref and cannot need to wait. Because JavaScript runs one fiber
 * step at a time, reading `ref.value` and writing it back in one synchronous
 * step is atomic with respect to every other fiber; doing what Effect's own
 * commit does — bump `ref.version` (so any transaction that read the ref sees a
 * conflict and re-runs) and schedule the ref's pending waiters (so a
 * `txRetry` blocked on it re-checks) — keeps it a correct participant in the
 * STM protocol. Transactions that must wait still use `Effect.tx` + `txRetry`.
 *
 * @since 0.1.0
 */
import { Effect, Fiber, type TxRef } from "effect"

/**
 * Commits `next` into `ref` as Effect's commit would (version bump, waiters scheduled). Call only from a fiber step.
 *
 * @category functions
 */
export const commitSync = <A>(fiber: Fiber.Fiber<unknown, unknown>, ref: TxRef.TxRef<A>, next: A): void => {
  if (!Object.is(next, ref.value)) {
    ref.version = ref.version + 1
    ref.value = next
  }
  if (ref.pending.size > 0) {
    for (const wake of ref.pending.values()) fiber.currentDispatcher.scheduleTask(wake, 0)
    ref.pending.clear()
  }
}

/**
 * `TxRef.update` as one synchronous commit (one `Effect.sync` step; the running fiber from `Fiber.getCurrent`).
 *
 * @category functions
 */
export const update = <A>(ref: TxRef.TxRef<A>, f: (a: A) => A): Effect.Effect<void> =>
  Effect.sync(() => {
    commitSync(Fiber.getCurrent()!, ref, f(ref.value))
  })

/**
 * `TxRef.modify` as one synchronous commit.
 *
 * @category functions
 */
export const modify = <A, B>(ref: TxRef.TxRef<A>, f: (a: A) => readonly [B, A]): Effect.Effect<B> =>
  Effect.sync(() => modifyNow(ref, f))

/**
 * `TxRef.modify` as a plain call, for use inside a synchronous step of the running fiber (an
 * `Effect.sync` body, `RwLock.withReadSync`).
 *
 * @category functions
 */
export const modifyNow = <A, B>(ref: TxRef.TxRef<A>, f: (a: A) => readonly [B, A]): B => {
  const [b, next] = f(ref.value)
  commitSync(Fiber.getCurrent()!, ref, next)
  return b
}
