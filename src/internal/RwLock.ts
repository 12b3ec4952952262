/**
 * A transactional read/write lock (the kernel's `rw_semaphore`) built from one
 * `TxRef` and `Effect.txRetry`: the primitive behind GPU SVM's notifier lock
 * (`gpusvm->notifier_lock`) and the machines' mmap lock (`mmap_lock`).
 *
 * Why not `TxReentrantLock`: it tracks per-fiber reentrancy, which neither lock
 * needs (GPU SVM never re-enters the notifier lock: the invalidate callback calls
 * `rangeUnmapPages` with `inNotifier`, which skips it, exactly as in C; nor does
 * the kernel allow recursive mmap locking), and it costs far more per
 * acquire/release pair (the bench rows "notifier lock" measure both). Here the
 * state is `{ readers, writer, waitingWriters }`; an uncontended acquire and
 * every release is one synchronous single-ref commit (`TxSync.ts`: same
 * version/waiter protocol as `Effect.tx`, a fraction of the cost); a contended
 * acquire is a prebuilt transaction that `txRetry`s until the lock frees. No
 * closure or generator is allocated per call, and
 * readers wait while a writer holds *or waits for* the lock, so a stream of
 * readers (faults) cannot starve an invalidation — the writer preference of
 * `rw_semaphore`.
 *
 * Waiting is interruptible; holding is paired with release under an
 * uninterruptible mask, so an interrupted fiber never leaks the lock, and an
 * interrupted waiting writer withdraws its place in the queue.
 *
 * @since 0.1.0
 */
import { Effect, Fiber, TxRef } from "effect"
import { commitSync } from "./TxSync.ts"

/**
 * The lock's state.
 *
 * @category models
 */
export interface LockState {
  readonly readers: number
  readonly writer: boolean
  readonly waitingWriters: number
}

/**
 * A read/write lock.
 *
 * @category models
 */
export interface RwLock {
  /** `down_read` … `up_read` around `e`. Must not be nested inside the write side. */
  readonly withRead: <A, E, R>(e: Effect.Effect<A, E, R>) => Effect.Effect<A, E, R>
  /** `down_write` … `up_write` around `e`. */
  readonly withWrite: <A, E, R>(e: Effect.Effect<A, E, R>) => Effect.Effect<A, E, R>
  /**
   * `down_read`; `f()`; `up_read` for a synchronous `f`: uncontended (no writer holds or waits), `f` runs in
   * one step without touching the lock's state — no other fiber can run between the acquire and the release
   * of a synchronous section, so nothing can observe the difference (issue #16: one step instead of a
   * dozen). Contended, it is `withRead(Effect.sync(f))`. The `before` point still runs first.
   */
  readonly withReadSync: <A>(f: () => A) => Effect.Effect<A>
  /**
   * May a synchronous section run now as a reader without taking the lock (no writer holds or waits,
   * and no `before` point is installed)? The caller then runs it in the same step: the same reasoning as
   * {@link RwLock.withReadSync} (issue #16, the `…Now` fast paths of `src/domain/Now.ts`).
   */
  readonly canReadNow: () => boolean
  /** May a synchronous section run now as the writer (no reader or writer holds it, none waits, no `before` point)? */
  readonly canWriteNow: () => boolean
  /** The committed state, for tests and assertions. */
  readonly peek: () => LockState
}

/**
 * Options of a lock. `slowPath` wraps every wait for the lock (the fast,
 * uncontended paths are untouched): the explorer uses it to record what a
 * blocked fiber waits for and to add a yield point right after a waiter gets
 * the lock (`Interleaving.lockWait`).
 *
 * @category models
 */
export interface RwLockOptions {
  readonly slowPath?: (wait: Effect.Effect<void>, mode: "read" | "write") => Effect.Effect<void>
  /** Runs before every acquisition, uncontended or not (the explorer's yield point before taking the lock). */
  readonly before?: Effect.Effect<void>
}

/**
 * Builds a lock (`init_rwsem`); synchronous, as it allocates only.
 *
 * @category functions
 */
export const makeUnsafe = (options: RwLockOptions = {}): RwLock => {
  const ref = TxRef.makeUnsafe<LockState>({ readers: 0, writer: false, waitingWriters: 0 })
  // Slow paths: transactions that wait (txRetry) until the lock can be taken.
  const slow = options.slowPath
  const waitReadTx = Effect.tx(
    Effect.flatMap(TxRef.get(ref), (s) =>
      s.writer || s.waitingWriters > 0 ? Effect.txRetry : TxRef.set(ref, { ...s, readers: s.readers + 1 }))
  )
  const waitRead = slow === undefined ? waitReadTx : slow(waitReadTx, "read")
  const waitWriteTxRaw = Effect.tx(
    Effect.flatMap(TxRef.get(ref), (s) =>
      s.writer || s.readers > 0
        ? Effect.txRetry
        : TxRef.set(ref, { readers: 0, writer: true, waitingWriters: s.waitingWriters - 1 }))
  )
  const waitWriteTx = slow === undefined ? waitWriteTxRaw : slow(waitWriteTxRaw, "write")
  // Fast paths: one synchronous single-ref commit each (see TxSync.ts).
  const acquireRead = Effect.withFiber((fiber) => {
    const s = ref.value
    if (s.writer || s.waitingWriters > 0) return waitRead
    commitSync(fiber, ref, { ...s, readers: s.readers + 1 })
    return Effect.void
  })
  // Releases are one `Effect.sync` step each (the running fiber from `Fiber.getCurrent`, issue #16).
  const releaseRead = Effect.sync(() => {
    const s = ref.value
    commitSync(Fiber.getCurrent()!, ref, { ...s, readers: s.readers - 1 })
  })
  const queueWriter = Effect.withFiber((fiber) => {
    const s = ref.value
    commitSync(fiber, ref, { ...s, waitingWriters: s.waitingWriters + 1 })
    return Effect.void
  })
  const unqueueWriter = Effect.withFiber((fiber) => {
    const s = ref.value
    commitSync(fiber, ref, { ...s, waitingWriters: s.waitingWriters - 1 })
    return Effect.void
  })
  const acquireWrite = Effect.withFiber((fiber) => {
    const s = ref.value
    if (s.writer || s.readers > 0) return waitWriteTx
    commitSync(fiber, ref, { readers: 0, writer: true, waitingWriters: s.waitingWriters - 1 })
    return Effect.void
  })
  const releaseWrite = Effect.sync(() => {
    commitSync(Fiber.getCurrent()!, ref, { ...ref.value, writer: false })
  })
  const waitWrite = Effect.onInterrupt(acquireWrite, () => unqueueWriter)
  // The uncontended acquire is fused into the masked step that registers the release (issue #16: three
  // Effect steps less per section). Interruption: the fiber is uninterruptible from the acquire until
  // `ensuring` is on its stack, and a pending interrupt then fails `restore(e)`, which releases, so the
  // lock is never leaked; the contended path is the one it always was.
  const withRead: RwLock["withRead"] = (e) =>
    Effect.uninterruptibleMask((restore) =>
      Effect.withFiber((fiber) => {
        const s = ref.value
        if (s.writer || s.waitingWriters > 0) return Effect.andThen(restore(acquireRead), Effect.ensuring(restore(e), releaseRead))
        commitSync(fiber, ref, { ...s, readers: s.readers + 1 })
        return Effect.ensuring(restore(e), releaseRead)
      })
    )
  const withWrite: RwLock["withWrite"] = (e) =>
    Effect.uninterruptibleMask((restore) =>
      Effect.withFiber((fiber) => {
        const s = ref.value
        if (s.writer || s.readers > 0 || s.waitingWriters > 0) {
          return Effect.andThen(queueWriter, Effect.andThen(restore(waitWrite), Effect.ensuring(restore(e), releaseWrite)))
        }
        // queueWriter + acquireWrite in one commit: the same end state
        commitSync(fiber, ref, { readers: 0, writer: true, waitingWriters: s.waitingWriters })
        return Effect.ensuring(restore(e), releaseWrite)
      })
    )
  const withReadSync: RwLock["withReadSync"] = (f) =>
    Effect.withFiber(() => {
      const s = ref.value
      return s.writer || s.waitingWriters > 0 ? withRead(Effect.sync(f)) : Effect.succeed(f())
    })
  const before = options.before
  return {
    withRead: before === undefined ? withRead : (e) => Effect.andThen(before, withRead(e)),
    withReadSync: before === undefined ? withReadSync : (f) => Effect.andThen(before, withReadSync(f)),
    withWrite: before === undefined ? withWrite : (e) => Effect.andThen(before, withWrite(e)),
    canReadNow: before === undefined ? () => !ref.value.writer && ref.value.waitingWriters === 0 : () => false,
    canWriteNow: before === undefined ? () => !ref.value.writer && ref.value.readers === 0 && ref.value.waitingWriters === 0 : () => false,
    peek: () => ref.value
  }
}

/**
 * A fresh, unlocked lock, as an effect.
 *
 * @category functions
 */
export const make: Effect.Effect<RwLock> = Effect.sync(() => makeUnsafe())

/**
 * `down_read` … `up_read` around `e`.
 *
 * @category functions
 */
export const withRead = <A, E, R>(l: RwLock, e: Effect.Effect<A, E, R>): Effect.Effect<A, E, R> => l.withRead(e)

/**
 * `down_write` … `up_write` around `e`.
 *
 * @category functions
 */
export const withWrite = <A, E, R>(l: RwLock, e: Effect.Effect<A, E, R>): Effect.Effect<A, E, R> => l.withWrite(e)

/**
 * `down_read`; `f()`; `up_read` for a synchronous `f` (see {@link RwLock.withReadSync}).
 *
 * @category functions
 */
export const withReadSync = <A>(l: RwLock, f: () => A): Effect.Effect<A> => l.withReadSync(f)
