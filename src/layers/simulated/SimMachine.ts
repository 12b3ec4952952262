/**
 * The simulated `Machine` service: violations, fault injection and counters of
 * the shared machine state. No locking needed (each call is one synchronous
 * step); no errors.
 *
 * @since 0.1.0
 */
import { type Context, Effect } from "effect"
import { Machine, type Injection, type MachineServices } from "../../services/Machine.ts"
import type { MachineState } from "./MachineState.ts"

/**
 * Builds the `Machine` service of machine `st`.
 *
 * @category functions
 */
export const makeMachineService = (
  st: MachineState,
  servicesOf: (process: MachineState) => Context.Context<MachineServices>
): Machine["Service"] =>
  Machine.of({
    violations: Effect.sync(() => [...st.violations]),
    inject: (i: Injection) => Effect.sync(() => st.addInjection(i)),
    stats: Effect.sync(() => st.stats()),
    // kernel-semantics §11.17: a new process sharing the machine's memory, IOMMU and device memory
    spawn: Effect.sync(() => servicesOf(st.spawn()))
  })
