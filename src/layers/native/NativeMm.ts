/**
 * The native `Mm` service: `mmget_not_zero` / `mmput` counting, the Node-side
 * mmap read lock, and VMA look-ups from `/proc/<pid>/maps` (cached until the
 * next mapping change Node makes; hugetlb classified from smaps).
 *
 * @since 0.1.0
 */
import { Effect, Option } from "effect"
import { BadAddress } from "../../domain/Errors.ts"
import type { Vma } from "../../domain/Vma.ts"
import { Mm } from "../../services/Mm.ts"
import type { NativeState } from "./NativeState.ts"

/**
 * Builds the `Mm` service of machine `st`.
 *
 * @category functions
 */
export const makeMm = (st: NativeState): Mm["Service"] => {
  const acquire = Effect.suspend(() => {
    if (!st.alive) {
      const why = st.helper.dead === undefined ? "the address space has exited" : `the helper is gone (${st.helper.dead.message})`
      return Effect.fail(new BadAddress({ reason: `mmget_not_zero: ${why}` }))
    }
    st.mmRefs++
    return Effect.void
  })
  const release = Effect.sync(() => {
    if (st.mmRefs <= 0) {
      st.recordViolation({ invariant: "mmput-unbalanced", detail: "mmput without a matching mmget_not_zero" })
      return
    }
    st.mmRefs--
  })
  const find = (pred: (v: Vma) => boolean): Option.Option<Vma> => {
    const v = st.vmas().find(pred)
    return v === undefined ? Option.none() : Option.some(v)
  }
  return Mm.of({
    acquire,
    release,
    references: Effect.sync(() => st.mmRefs),
    withReadLock: (e) => st.lock.withRead(e),
    vmaLookup: (addr) => Effect.sync(() => find((v) => v.start <= addr && addr < v.end)),
    findVmaIntersection: (start, end) => Effect.sync(() => find((v) => v.start < end && start < v.end)),
    vmas: Effect.sync(() => st.vmas())
  })
}
