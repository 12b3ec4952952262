/**
 * The simulated `Machine` service: violations, fault injection and counters of
 * the shared machine state. No locking needed (each call is one synchronous
 * step); no errors but `kernelMove`'s `InvalidArgument` (`KernelMoves.ts`, kernel-semantics §11.17).
 *
 * @since 0.1.0
 */
import { type Context, Effect } from "effect"
import { Machine, type Injection, type KernelMoveKind, type MachineServices } from "../../services/Machine.ts"
import type { MachineState } from "./MachineState.ts"
import { kernelMove } from "./KernelMoves.ts"
import { afterPoint } from "./SeededYields.ts"

/**
 * Builds the `Machine` service of machine `st`.
 *
 * @category functions
 */
export const makeMachineService = (
  st: MachineState,
  servicesOf: (process: MachineState) => Context.Context<MachineServices>
): Machine["Service"] => {
  // a kernel page move is a service call like any other: a yield point first (kernel-semantics §11.17)
  const point = st.schedule.at("kernel move")
  return Machine.of({
    violations: Effect.sync(() => [...st.violations]),
    inject: (i: Injection) => Effect.sync(() => st.addInjection(i)),
    stats: Effect.sync(() => st.stats()),
    // kernel-semantics §11.17: a new process sharing the machine's memory, IOMMU and device memory
    spawn: Effect.sync(() => servicesOf(st.spawn())),
    kernelMove: (kind: KernelMoveKind, start: number, end: number) => afterPoint(point, () => kernelMove(st, kind, start, end))
  })
}
