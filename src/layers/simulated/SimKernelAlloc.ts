/**
 * The simulated `KernelAlloc` service: every allocation succeeds except while
 * an `evictPfnAllocFail` injection is pending for `range_evict`'s pfn array
 * (kernel-semantics §11.16). A schedule yield point.
 *
 * @since 0.1.0
 */
import { Effect } from "effect"
import { type AllocSite, KernelAlloc } from "../../services/KernelAlloc.ts"
import type { MachineState } from "./MachineState.ts"

/**
 * Builds the `KernelAlloc` service of machine `st`.
 *
 * @category functions
 */
export const makeKernelAlloc = (st: MachineState): KernelAlloc["Service"] =>
  KernelAlloc.of({
    kvmallocArray: (site: AllocSite, _n: number) =>
      Effect.flatMap(st.schedule.point, () =>
        Effect.sync(() => {
          if (site === "range_evict" && st.inject.evictPfnAllocFail > 0) {
            st.inject.evictPfnAllocFail--
            return false
          }
          return true
        }))
  })
