/**
 * `Mm`: what GPU SVM may ask of the mirrored address space (`struct mm_struct`).
 *
 * @since 0.1.0
 */
import type { Now } from "../domain/Now.ts"
import { Context, type Effect, type Option } from "effect"
import type { BadAddress } from "../domain/Errors.ts"
import type { Vma } from "../domain/Vma.ts"

/**
 * What `Mm.readNow`'s synchronous `vma_lookup` answers: the VMA's bounds, protection, kind and sharing.
 *
 * @category models
 * @since 0.5.0
 */
export type VmaView = Pick<Vma, "start" | "end" | "prot" | "kind" | "shared">

/**
 * The address space as seen by GPU SVM.
 *
 * @category services
 */
export class Mm extends Context.Service<Mm, {
  /** `mmget_not_zero(mm)`: fails with `BadAddress` once the process has exited. */
  readonly acquire: Effect.Effect<void, BadAddress>
  /** `mmput(mm)`: drops a reference taken by `acquire`. Every successful `acquire` must be paired with one. */
  readonly release: Effect.Effect<void>
  /** References currently held through `acquire` (for leak checks: 0 when no GPU SVM call is in flight). */
  readonly references: Effect.Effect<number>
  /**
   * `mmap_read_lock(mm)` … `mmap_read_unlock(mm)` around `e`: CPU changes
   * (munmap, mprotect, mremap, madvise, migration) wait until it is released.
   * Not reentrant against a writer queued meanwhile; do not nest.
   */
  readonly withReadLock: <A, E, R>(e: Effect.Effect<A, E, R>) => Effect.Effect<A, E, R>
  /** `vma_lookup(mm, addr)`: the VMA containing `addr`. */
  readonly vmaLookup: (addr: number) => Effect.Effect<Option.Option<Vma>>
  /** `find_vma_intersection(mm, start, end)`: the first VMA intersecting `[start, end)`. */
  readonly findVmaIntersection: (start: number, end: number) => Effect.Effect<Option.Option<Vma>>
  /** Every VMA, sorted by start (`/proc/<pid>/maps`). */
  readonly vmas: Effect.Effect<ReadonlyArray<Vma>>
  /**
   * Fast path (issue #16, `src/domain/Now.ts`): `mmget_not_zero`, `mmap_read_lock`, `f(vmaLookup)`,
   * `mmap_read_unlock`, `mmput` in the calling step, when the address space is alive, the mmap lock has no
   * writer holding or waiting and no schedule point would be passed; else `NOT_NOW` without running `f`.
   * `vmaLookup` is `vma_lookup` answered synchronously; its VMA is valid inside `f` only (do not keep it).
   * Absent on machines that cannot answer synchronously.
   */
  readonly readNow?: <A>(f: (vmaLookup: (addr: number) => VmaView | undefined) => Now<A>) => Now<A>
}>()("gpusvm/Mm") {}
