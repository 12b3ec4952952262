/**
 * The mmap lock (`mm->mmap_lock`, an rw_semaphore) of the simulated address
 * space, built from one `TxRef` and `Effect.txRetry`.
 *
 * - Readers (`mmap_read_lock`) wait while a writer holds the lock **or is
 *   queued**, so writers never starve: once a writer queues, new readers wait
 *   and the writer gets the lock when current readers leave.
 * - Writers (`mmap_write_lock`) wait for no writer and no reader.
 * - Not reentrant: a fiber holding the read lock that asks for it again while a
 *   writer is queued deadlocks, exactly like the kernel's rwsem. Do not nest.
 * - Interruption while waiting withdraws the request; the lock is always
 *   released when the protected effect ends (success, failure, interruption).
 *
 * @since 0.1.0
 */
import { Effect, TxRef } from "effect"

interface LockState {
  readonly readers: number
  readonly writer: boolean
  readonly waitingWriters: number
}

/** A read/write lock with writer preference. */
export interface MmapLock {
  /** `mmap_read_lock` … `mmap_read_unlock` around `e`. */
  readonly withRead: <A, E, R>(e: Effect.Effect<A, E, R>) => Effect.Effect<A, E, R>
  /** `mmap_write_lock` … `mmap_write_unlock` around `e`. */
  readonly withWrite: <A, E, R>(e: Effect.Effect<A, E, R>) => Effect.Effect<A, E, R>
  /** Current state (for tests and assertions). */
  readonly peek: () => LockState
}

/** Creates an unlocked lock. */
export const makeMmapLock = (): MmapLock => {
  const ref = TxRef.makeUnsafe<LockState>({ readers: 0, writer: false, waitingWriters: 0 })

  const acquireRead = Effect.tx(
    Effect.flatMap(TxRef.get(ref), (s) =>
      s.writer || s.waitingWriters > 0 ? Effect.txRetry : TxRef.set(ref, { ...s, readers: s.readers + 1 }))
  )
  const releaseRead = TxRef.update(ref, (s) => ({ ...s, readers: s.readers - 1 }))
  const queueWriter = TxRef.update(ref, (s) => ({ ...s, waitingWriters: s.waitingWriters + 1 }))
  const unqueueWriter = TxRef.update(ref, (s) => ({ ...s, waitingWriters: s.waitingWriters - 1 }))
  const acquireWrite = Effect.tx(
    Effect.flatMap(TxRef.get(ref), (s) =>
      s.writer || s.readers > 0
        ? Effect.txRetry
        : TxRef.set(ref, { readers: 0, writer: true, waitingWriters: s.waitingWriters - 1 }))
  )
  const releaseWrite = TxRef.update(ref, (s) => ({ ...s, writer: false }))

  const withRead = <A, E, R>(e: Effect.Effect<A, E, R>): Effect.Effect<A, E, R> =>
    Effect.uninterruptibleMask((restore) =>
      Effect.flatMap(restore(acquireRead), () => Effect.ensuring(restore(e), releaseRead)))

  const withWrite = <A, E, R>(e: Effect.Effect<A, E, R>): Effect.Effect<A, E, R> =>
    Effect.uninterruptibleMask((restore) =>
      Effect.flatMap(queueWriter, () =>
        Effect.flatMap(
          Effect.onInterrupt(restore(acquireWrite), () => unqueueWriter),
          () => Effect.ensuring(restore(e), releaseWrite)
        )))

  return { withRead, withWrite, peek: () => ref.value }
}
