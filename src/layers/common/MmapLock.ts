/**
 * The mmap lock (`mm->mmap_lock`, an rw_semaphore) of an address space, shared
 * by the simulated and native machines: a `RwLock` (src/internal/RwLock.ts).
 *
 * - Readers (`mmap_read_lock`) wait while a writer holds the lock **or is
 *   queued**, so writers never starve.
 * - Writers (`mmap_write_lock`) wait for no writer and no reader.
 * - Not reentrant: a fiber holding the read lock that asks for it again while a
 *   writer is queued deadlocks, exactly like the kernel's rwsem. Do not nest.
 * - Interruption while waiting withdraws the request; the lock is always
 *   released when the protected effect ends (success, failure, interruption).
 *
 * @since 0.1.0
 */
import * as RwLock from "../../internal/RwLock.ts"

/**
 * The mmap lock: a read/write lock with writer preference.
 *
 * @category models
 */
export type MmapLock = RwLock.RwLock

/**
 * A fresh, unlocked mmap lock (`mmap_init_lock`).
 *
 * @category functions
 */
export const makeMmapLock = (options: RwLock.RwLockOptions = {}): MmapLock => RwLock.makeUnsafe(options)
