/**
 * `gpusvm/testing`: a kit for testing a GPU SVM driver (or a migration
 * policy) on the simulated machine.
 *
 * - `GpuSvmTest.layer(options)`: the whole stack in one call, test defaults,
 *   optional wrappers of the GPU and the pagemap registry.
 * - `Workload`, `WorkloadOp`, `arbitrary`, `runWorkload`: random
 *   mmap/munmap/mprotect/madvise/access programs as effect `Schema` values
 *   (generated and shrunk by effect's `Arbitrary`), and their interpreter
 *   checking every read against a model of the memory.
 * - `assertCoherent`, `assertNoLeaks`, `assertNoViolations`: the invariants
 *   of design.md §8 as Effects failing with typed errors.
 * - `explore(program, options)`: the explorer inside `it.effect`, failing with
 *   the counterexample's schedule and trace.
 *
 * @since 0.2.0
 */
export { GpuSvmTest, layer, layerWithState } from "./GpuSvmTest.ts"
export type { TestOptions, Wrappers } from "./GpuSvmTest.ts"
export { arbitrary, runWorkload, Workload, WorkloadDiverged, WorkloadOp } from "./Workload.ts"
export type { Outcome, Span, WorkloadOptions, WorkloadRun } from "./Workload.ts"
export { assertCoherent, assertNoLeaks, assertNoViolations, Broken, IncoherentView, LeakDetected, MachineViolations } from "./Assertions.ts"
export { explore, ExploreFailed } from "./Explore.ts"
export type { ExploreOptions } from "./Explore.ts"
