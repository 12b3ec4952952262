/**
 * The simulated `Mm` service: `mmget_not_zero`, the mmap read lock, and VMA
 * look-ups (`vma_lookup`, `find_vma_intersection`) on the shared machine.
 *
 * Look-ups do not take the lock themselves: like the kernel's, they expect the
 * caller to hold the mmap lock (`withReadLock`) when the answer must stay true.
 * `acquire` / `release` count references (`mmget_not_zero` / `mmput`); an
 * unbalanced `release` is recorded as `mmput-unbalanced`. Every call is a
 * schedule yield point. No errors except `acquire` after exit. `readNow` is the
 * synchronous fast path (issue #16) where no point would be passed.
 *
 * @since 0.1.0
 */
import { Effect, Option } from "effect"
import { BadAddress } from "../../domain/Errors.ts"
import { NOT_NOW, type Now, withNow } from "../../domain/Now.ts"
import type { Vma } from "../../domain/Vma.ts"
import { Mm, type VmaView } from "../../services/Mm.ts"
import type { MachineState } from "./MachineState.ts"
import { afterPoint, afterPointConst } from "./SeededYields.ts"
import { toVma } from "./Vmas.ts"

/**
 * Builds the `Mm` service of machine `st`.
 *
 * @category functions
 */
export const makeMm = (st: MachineState): Mm["Service"] => {
  const point = st.schedule.at("mm")
  // Without a schedule or explorer the points are `Effect.void` and skipped (SeededYields.afterPoint).
  const acquire = afterPointConst(
    point,
    Effect.suspend(() => {
      if (!st.alive) return Effect.fail(new BadAddress({ reason: "mmget_not_zero: the address space has exited" }))
      st.mmRefs++
      return Effect.void
    })
  )
  const release = afterPointConst(
    point,
    Effect.sync(() => {
      if (st.mmRefs <= 0) {
        st.recordViolation({ invariant: "mmput-unbalanced", detail: "mmput without a matching mmget_not_zero" })
        return
      }
      st.mmRefs--
    })
  )
  const references = Effect.sync(() => st.mmRefs)
  const withReadLock = <A, E, R>(e: Effect.Effect<A, E, R>): Effect.Effect<A, E, R> =>
    afterPoint(point, () => st.lock.withRead(e))
  const vmaLookup = (addr: number): Effect.Effect<Option.Option<Vma>> =>
    afterPoint(point, () =>
      Effect.sync(() => {
        const r = Number.isFinite(addr) ? st.vmas.find(addr) : undefined
        return r === undefined ? Option.none() : Option.some(toVma(r))
      }))
  const findVmaIntersection = (start: number, end: number): Effect.Effect<Option.Option<Vma>> =>
    Effect.flatMap(point, () =>
      Effect.sync(() => {
        const r = Number.isFinite(start) && Number.isFinite(end) ? st.vmas.firstIntersecting(start, end) : undefined
        return r === undefined ? Option.none() : Option.some(toVma(r))
      }))
  const vmas = Effect.flatMap(point, () => Effect.sync(() => st.vmas.snapshot()))
  // issue #16: the fast path only where every point is void (no schedule, no explorer: none is passed)
  // the machine's own record, read-only for the length of the step (no copy per lookup)
  const lookupNow = (addr: number): VmaView | undefined => (Number.isFinite(addr) ? st.vmas.find(addr) : undefined)
  const readNow = <A>(f: (vmaLookup: (addr: number) => VmaView | undefined) => Now<A>): Now<A> => {
    if (point !== Effect.void || !st.alive || !st.lock.canReadNow()) return NOT_NOW
    // the reference and the read lock are held for the length of this step only: no other fiber can
    // observe them (the same reasoning as RwLock.withReadSync), so neither is taken
    return f(lookupNow)
  }
  return withNow(Mm.of({ acquire, release, references, withReadLock, vmaLookup, findVmaIntersection, vmas }), { readNow })
}
